"""The control group: a stable, salted share of customers left out of every audience.

A customer is in it when `control_hash(customer_id)` is below SEG_CONTROL_SHARE x 2^64. The hash is
64-bit FNV-1a over the UTF-8 bytes of SEG_CONTROL_SALT + customer_id, followed by MurmurHash3's fmix64
finaliser (FNV-1a alone barely changes its high bits with the last byte, so ids that differ only in their
last digit would mostly share a flag). Both are fixed, public algorithms on plain bytes, computed with
numpy: the flags depend on nothing but the id, the salt and the share, are the same on every machine and
library version, and so a customer stays in or out across versions and whatever action is recommended.
"""

import hashlib

import numpy as np
import polars as pl
import pyarrow as pa

COLUMN = "in_control_group"
#: the hash scheme, recorded with the settings in a version's metrics
SCHEME = "fnv1a64+fmix64"
FNV_OFFSET_BASIS = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
_FMIX = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))


def settings_key(share: float, salt: str) -> dict:
    """What the flags depend on, as recorded in a version's metrics (the salt only as a digest)."""
    return {"share": share, "salt_sha256": hashlib.sha256(salt.encode()).hexdigest()[:16], "hash": SCHEME}


def fnv1a64(values: pl.Series, prefix: str = "") -> np.ndarray:
    """64-bit FNV-1a of the UTF-8 bytes of `prefix` + each string of `values` (no nulls), as uint64.

    Vectorised per byte position: the strings are grouped by byte length, and each group's hashes take
    one byte column at a time straight from the Arrow data buffer.
    """
    state = FNV_OFFSET_BASIS
    for byte in prefix.encode():
        state = ((state ^ byte) * FNV_PRIME) % 2**64
    array = values.to_arrow(compat_level=pl.CompatLevel.oldest())
    array = (array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array).cast(pa.large_string())
    if array.null_count:
        raise ValueError("fnv1a64 hashes strings, not nulls")
    _, offsets, data = array.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(data or b"", dtype=np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    hashes = np.full(len(array), state, dtype=np.uint64)
    prime = np.uint64(FNV_PRIME)
    groups = np.flatnonzero(np.bincount(lengths))
    for length in groups:
        rows = slice(None) if len(groups) == 1 else np.flatnonzero(lengths == length)
        group, group_starts = hashes[rows], starts[rows]
        for position in range(length):
            group ^= data[group_starts + position]
            group *= prime
        hashes[rows] = group
    return hashes


def fmix64(hashes: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (every input bit reaches every output bit), on a uint64 array."""
    shift, first, second = _FMIX
    hashes = hashes ^ (hashes >> shift)
    hashes *= first
    hashes ^= hashes >> shift
    hashes *= second
    hashes ^= hashes >> shift
    return hashes


def control_hash(customer_ids: pl.Series, salt: str) -> np.ndarray:
    """fmix64(FNV-1a 64(salt + customer_id)) of each id, as uint64."""
    return fmix64(fnv1a64(customer_ids, salt))


def control_flags(customer_ids: pl.Series, share: float, salt: str) -> pl.Series:
    """`in_control_group` of each id, in order: its control hash is below `share` x 2^64."""
    cut = np.uint64(min(int(share * 2**64), 2**64 - 1))
    return pl.Series(COLUMN, control_hash(customer_ids, salt) < cut, dtype=pl.Boolean)
