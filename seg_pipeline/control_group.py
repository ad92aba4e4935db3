"""The control group: a stable, salted share of customers left out of every audience.

A customer is in it when the first 16 hex digits of sha256(SEG_CONTROL_SALT + customer_id) (UTF-8), read as
an unsigned 64-bit integer, are below SEG_CONTROL_SHARE x 2^64. That depends on nothing but the id, the salt
and the share, so a customer stays in or out across versions and whatever action is recommended. DuckDB's
`sha256` hashes in bulk; a version reuses the previous version's flags and hashes only new customers.
"""

import hashlib

import duckdb
import polars as pl

COLUMN = "in_control_group"


def settings_key(share: float, salt: str) -> dict:
    """What the flags depend on, as recorded in a version's metrics (the salt only as a digest)."""
    return {"share": share, "salt_sha256": hashlib.sha256(salt.encode()).hexdigest()[:16]}


def control_flags(
    con: duckdb.DuckDBPyConnection, customers: pl.Series, share: float, salt: str, previous: pl.DataFrame
) -> pl.Series:
    """`in_control_group` for `customers`, in their order; `previous` (customer_id, in_control_group) holds
    flags made with the same share and salt, reused as they are."""
    frame = customers.to_frame("customer_id").join(previous, on="customer_id", how="left", maintain_order="left")
    new = frame.filter(pl.col(COLUMN).is_null()).select("customer_id")  # noqa: F841 (read by DuckDB)
    hashed = con.sql(
        "select customer_id, ('0x' || left(sha256($salt || customer_id), 16))::ubigint < $cut as flag from new",
        params={"salt": salt, "cut": int(share * 2**64)},
    ).pl()
    flags = frame.join(hashed, on="customer_id", how="left", maintain_order="left")
    return flags[COLUMN].fill_null(flags["flag"]).alias(COLUMN)
