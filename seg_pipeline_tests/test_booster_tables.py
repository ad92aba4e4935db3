import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from seg_pipeline.core.booster_tables import BoosterTables

SIZES = (40, 7, 255, 5, 3)  # three binned numeric inputs, then two categorical ones
CATEGORICAL = [False, False, False, True, True]


def _discrete(rng: np.random.Generator, n: int, sizes: tuple[int, ...], missing: float = 0.05) -> np.ndarray:
    x = np.column_stack([rng.integers(0, size, n) for size in sizes]).astype(float)
    x[rng.random(x.shape) < missing] = np.nan
    return x


def _codes(x: np.ndarray, sizes: tuple[int, ...] = SIZES) -> np.ndarray:
    """The integer codes of a float input matrix: NaN -> the column's size."""
    return np.where(np.isnan(x), np.asarray(sizes), x).astype(np.int32)


def _fit(rng: np.random.Generator, max_depth: int, sizes: tuple[int, ...] = SIZES) -> HistGradientBoostingRegressor:
    x = _discrete(rng, 6000, sizes)
    interaction = np.where(np.isnan(x[:, 3]), 0.5, (x[:, 3] == 2) * np.nan_to_num(x[:, 0]) / 40)
    y = np.nan_to_num(x[:, 2]) / 255 - interaction + rng.normal(0, 0.1, len(x))
    booster = HistGradientBoostingRegressor(
        max_depth=max_depth, max_iter=60, learning_rate=0.2, min_samples_leaf=20,
        categorical_features=CATEGORICAL, monotonic_cst=[0, 0, 1, 0, 0], random_state=0,
    )  # fmt: skip
    return booster.fit(x, y)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tables_score_like_the_booster_on_every_kind_of_input(seed: int) -> None:
    rng = np.random.default_rng(seed)
    booster = _fit(rng, max_depth=2)
    tables = BoosterTables.from_booster(booster, SIZES)
    x = _discrete(rng, 20_000, SIZES, missing=0.2)
    np.testing.assert_allclose(tables.predict(_codes(x)), booster.predict(x), rtol=0, atol=1e-12)
    assert any(len(columns) == 2 for columns, _ in tables.tables)  # pair interactions are tabulated


def test_categories_never_seen_in_training_score_as_missing() -> None:
    rng = np.random.default_rng(5)
    booster = _fit(rng, max_depth=2, sizes=(40, 7, 255, 4, 3))  # category 4 of column 3 never occurs
    tables = BoosterTables.from_booster(booster, SIZES)
    x = _discrete(rng, 2000, SIZES)
    x[:, 3] = 4.0
    missing = x.copy()
    missing[:, 3] = np.nan
    np.testing.assert_allclose(tables.predict(_codes(x)), booster.predict(x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(tables.predict(_codes(x)), tables.predict(_codes(missing)), rtol=0, atol=1e-12)


def test_deeper_trees_are_refused() -> None:
    booster = _fit(np.random.default_rng(0), max_depth=3)
    with pytest.raises(ValueError, match="depth <= 2"):
        BoosterTables.from_booster(booster, SIZES)


def test_inputs_are_the_columns_that_change_a_score() -> None:
    rng = np.random.default_rng(4)
    booster = _fit(rng, max_depth=1)  # stumps: some inputs are never split on
    tables = BoosterTables.from_booster(booster, SIZES)
    assert tables.inputs and tables.inputs < set(range(len(SIZES)))
    x = _discrete(rng, 2000, SIZES)
    others = [c for c in range(len(SIZES)) if c not in tables.inputs]
    blanked = x.copy()
    blanked[:, others] = np.nan
    np.testing.assert_allclose(booster.predict(blanked), booster.predict(x), rtol=0, atol=1e-12)
    for c in tables.inputs:  # and each input does change some score
        changed = x.copy()
        changed[:, c] = np.nan
        assert not np.allclose(booster.predict(changed), booster.predict(x))


def test_merged_tables_score_and_split_contributions_as_the_tables_do() -> None:
    rng = np.random.default_rng(6)
    booster = _fit(rng, max_depth=2)
    tables = BoosterTables.from_booster(booster, SIZES)
    merged, starts = tables.merged()
    assert sum(merged.sizes) < sum(SIZES) / 4  # a few split points per input, not every code
    x = _discrete(rng, 20_000, SIZES, missing=0.2)
    codes = _codes(x)
    as_merged = np.column_stack([
        np.where((codes[:, c] == size) | (len(run) == 0), len(run), np.searchsorted(run, codes[:, c], side="right") - 1)
        for c, (run, size) in enumerate(zip(starts, SIZES, strict=True))
    ])  # fmt: skip
    np.testing.assert_allclose(merged.predict(as_merged), tables.predict(codes), rtol=0, atol=1e-12)
    base, parts = tables.contributions(codes)
    merged_base, merged_parts = merged.contributions(as_merged)
    assert merged_base == pytest.approx(base, abs=1e-12)
    np.testing.assert_allclose(merged_parts, parts, rtol=0, atol=1e-12)
