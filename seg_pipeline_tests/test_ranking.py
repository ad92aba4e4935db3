import numpy as np
import polars as pl
import pytest

from seg_pipeline.core.ranking import rank_by


@pytest.mark.parametrize("descending", [False, True])
def test_rank_by_value_then_customer_id_with_or_without_sorted_ids(descending: bool) -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(0, 5, 500).astype(float)
    values[rng.random(500) < 0.1] = np.nan
    frame = pl.DataFrame({"customer_id": [f"c{i:04d}" for i in range(500)], "v": values}).with_columns(
        pl.col("v").fill_nan(None)
    )
    key = [(v is None, (-v if descending else v) if v is not None else 0, c) for c, v in frame.iter_rows()]
    expected = {c: r + 1 for r, (_, _, c) in enumerate(sorted(key))}  # nulls last, ties by id

    for candidate in (frame, frame.sample(fraction=1.0, shuffle=True, seed=1)):
        ranks = rank_by(candidate, pl.col("v"), descending=descending)
        assert dict(zip(candidate["customer_id"], ranks, strict=True)) == expected
