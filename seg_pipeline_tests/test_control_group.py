"""The control group's hash: FNV-1a 64 + fmix64 over salt + id bytes, the same everywhere, pinned to known values."""

import numpy as np
import polars as pl
import pytest

from seg_pipeline.core import control_group


def reference_hash(customer_id: str, salt: str) -> int:
    """The documented hash, one id at a time in plain Python (as in the README)."""
    h = control_group.FNV_OFFSET_BASIS
    for byte in (salt + customer_id).encode():
        h = ((h ^ byte) * control_group.FNV_PRIME) % 2**64
    for multiplier in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, None):
        h ^= h >> 33
        h = h if multiplier is None else h * multiplier % 2**64
    return h


def test_fnv1a64_matches_the_published_test_vectors():
    hashes = control_group.fnv1a64(pl.Series(["", "a", "foobar"]))
    assert hashes.tolist() == [0xCBF29CE484222325, 0xAF63DC4C8601EC8C, 0x85944171F73967E8]
    assert control_group.fnv1a64(pl.Series(["bar"]), "foo").tolist() == [0x85944171F73967E8]  # prefix = salt


def test_control_hash_of_known_ids_is_pinned():
    ids = pl.Series(["C0000001", "C0000002", "C1000000", "customer-42", ""])
    assert control_group.control_hash(ids, "seg_pipeline").tolist() == [
        1199588062550677309,
        4368580822557866884,
        4873463190509882490,
        9298050086225421149,
        4388160015974234620,
    ]
    assert control_group.control_flags(ids, 0.5, "seg_pipeline").to_list() == [True, True, True, False, True]


@pytest.mark.parametrize("salt", ["seg_pipeline", "", "sél"])
def test_vectorised_hash_equals_the_reference_on_any_ids(salt):
    ids = pl.Series(["", "a", "C0000001", "ünïcode-ιδ", "x" * 40, "C12", "C0000001", "42"])
    expected = [reference_hash(c, salt) for c in ids]
    assert control_group.control_hash(ids, salt).tolist() == expected
    # a slice (an Arrow array with an offset) and a frame of several chunks hash the same ids the same
    assert control_group.control_hash(ids.slice(2, 4), salt).tolist() == expected[2:6]
    chunked = pl.concat([ids.slice(0, 3), ids.slice(3)], rechunk=False)
    assert chunked.n_chunks() == 2 and control_group.control_hash(chunked, salt).tolist() == expected


def test_flags_are_the_share_spread_evenly_and_depend_on_the_id_alone():
    ids = pl.Series([f"C{i:07d}" for i in range(1, 100_001)])
    flags = control_group.control_flags(ids, 0.1, "seg_pipeline")
    assert abs(flags.mean() - 0.1) < 0.005
    # ids that differ only in their last digit are not held out together (plain FNV-1a would: ~99% of blocks)
    blocks = flags.to_numpy().reshape(-1, 10).sum(axis=1)
    assert abs(np.isin(blocks, (0, 10)).mean() - (0.9**10 + 0.1**10)) < 0.02
    assert not control_group.control_flags(ids, 0.0, "seg_pipeline").any()
    # the same id gets the same flag whatever else is hashed with it
    shuffled = ids.sample(fraction=1.0, shuffle=True, seed=1)
    again = pl.DataFrame({"customer_id": shuffled, "flag": control_group.control_flags(shuffled, 0.1, "seg_pipeline")})
    assert pl.DataFrame({"customer_id": ids, "flag": flags}).equals(again.sort("customer_id"))
    # another salt draws another group
    other = control_group.control_flags(ids, 0.1, "another salt")
    assert (flags & other).mean() < 0.02
