"""A fitted shallow HistGradientBoostingRegressor as lookup tables over discrete inputs: same scores, faster.

The churn correction's booster only ever sees discrete values (bin indices, category codes) or NaN, and its
trees have depth <= 2, so each leaf tests at most two inputs. The whole ensemble is then a constant plus
one table per input or pair of inputs that some leaf tests:
``score = baseline + sum of table[code_i(, code_j)]``, a few dozen gathers per row instead of walking
every tree per row. A leaf's table is its value times the indicator of its path over the inputs' codes,
worked out from the trees' own split rules (thresholds, category bitsets, missing-value direction).
``merged`` folds the codes no table tells apart, so that the tables are small and the codes cheap to find.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

MAX_INPUTS_PER_LEAF = 2


@dataclass(frozen=True)
class BoosterTables:
    """Lookup tables equal to a booster's raw prediction on integer codes.

    ``sizes[c]``: the number of values of input column c; code ``sizes[c]`` stands for missing (NaN).
    """

    baseline: float
    sizes: tuple[int, ...]
    tables: tuple[tuple[tuple[int, ...], np.ndarray], ...]  # (input columns, table over their codes)

    @classmethod
    def from_booster(cls, booster: HistGradientBoostingRegressor, sizes: tuple[int, ...]) -> BoosterTables:
        """Tables of a fitted single-output booster whose inputs in column c take values 0..sizes[c]-1 or NaN."""
        rules = _SplitRules.of(booster, sizes)
        sums: dict[tuple[int, ...], np.ndarray] = {}
        baseline = float(np.asarray(booster._baseline_prediction).ravel()[0])
        for (tree,) in booster._predictors:
            for masks, value in _leaves(tree, rules):
                if len(masks) > MAX_INPUTS_PER_LEAF:
                    raise ValueError(f"a leaf tests {len(masks)} inputs; only trees of depth <= 2 can be tabulated")
                columns = tuple(sorted(masks))
                table = np.asarray(value)
                for column in columns:
                    table = np.multiply.outer(table, masks[column])
                if columns:
                    sums[columns] = sums.get(columns, 0.0) + table
                else:
                    baseline += value
        return cls(baseline, tuple(sizes), tuple(sorted(sums.items())))

    def same_as(self, other: BoosterTables | None) -> bool:
        """Whether ``other`` holds the very same numbers."""
        return (
            other is not None and self.baseline == other.baseline and self.sizes == other.sizes
            and len(self.tables) == len(other.tables)
            and all(c == d and np.array_equal(t, u) for (c, t), (d, u) in zip(self.tables, other.tables, strict=True))
        )  # fmt: skip

    @property
    def inputs(self) -> frozenset[int]:
        """The input columns some table reads (the others never change a score)."""
        return frozenset(column for columns, _ in self.tables for column in columns)

    def merged(self) -> tuple[BoosterTables, tuple[np.ndarray, ...]]:
        """(the same tables over merged codes, per input column the first code of each merged code's run).

        Adjacent codes of a column that every table reading it scores alike share one merged code, numbered in
        code order (the booster splits a binned input at a few of its edges only: a handful of merged codes
        instead of hundreds); missing stays a code of its own, the last. The merged tables hold the very same
        numbers, so they score and split contributions on merged codes as these do on the codes merged. A column
        no table reads has no run: missing (0) is its only merged code.
        """
        starts = []
        for c, size in enumerate(self.sizes):
            read = [np.moveaxis(t, cols.index(c), 0).reshape(size + 1, -1) for cols, t in self.tables if c in cols]
            if not read or not size:
                starts.append(np.zeros(0, dtype=np.intp))
                continue
            values = np.concatenate(read, axis=1)[:size]  # missing (the last code) apart
            starts.append(np.concatenate([[0], 1 + np.flatnonzero((values[1:] != values[:-1]).any(axis=1))]))
        kept = [np.append(run, size).astype(np.intp) for run, size in zip(starts, self.sizes, strict=True)]
        tables = tuple((columns, table[np.ix_(*(kept[c] for c in columns))]) for columns, table in self.tables)
        return BoosterTables(self.baseline, tuple(len(run) for run in starts), tables), tuple(starts)

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """The booster's raw prediction (up to float rounding) for integer `codes` (missing = the column's size)."""
        out = np.full(len(codes), self.baseline)
        for columns, table in self.tables:
            if len(columns) == 1:
                out += table[codes[:, columns[0]]]
            else:
                first, second = columns
                out += table.ravel()[codes[:, first] * (self.sizes[second] + 1) + codes[:, second]]
        return out

    def code_frequencies(self, codes: np.ndarray) -> dict[int, np.ndarray]:
        """The frequency of each code of every input a table reads, over the rows of `codes`: a reference of
        ``contributions`` (e.g. of a sample of the population, for rows scored shard by shard)."""
        read = sorted({column for columns, _ in self.tables for column in columns})
        rows = max(len(codes), 1)
        return {c: np.bincount(codes[:, c].astype(np.intp), minlength=self.sizes[c] + 1) / rows for c in read}

    def contributions(
        self, codes: np.ndarray, into: np.ndarray | None = None, width: int | None = None,
        frequencies: dict[int, np.ndarray] | None = None,
    ) -> tuple[float, np.ndarray]:  # fmt: skip
        """(base, per-input contributions of shape (rows, inputs)) with base + row sum = ``predict(codes)``.

        Each one-input table counts against its mean over the reference; a pair table's value T[i, j] is split
        between its two inputs as Shapley values with the inputs' code frequencies over the reference:
        i gets ((T[i, j] - E_i' T[i', j]) + (E_j' T[i, j'] - E T)) / 2, j the mirror, and E T goes to the base.
        The reference: `frequencies` (``code_frequencies`` of other rows), by default the rows' own.
        ``into`` (an output column per input) with ``width`` columns: the inputs' contributions summed into those
        columns instead. A pair table whose two inputs share a column adds its centred value there in one gather.
        """
        into = np.arange(len(self.sizes)) if into is None else np.asarray(into)
        width = len(self.sizes) if width is None else width
        out = np.zeros((len(codes), width), order="F")  # column-wise adds: columns contiguous
        base = self.baseline
        if not len(codes):
            return base, out
        inputs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def read(column: int) -> tuple[np.ndarray, np.ndarray]:
            """(the input's codes as gather indices, their frequencies over the rows), worked out once per input."""
            if column not in inputs:
                index = codes[:, column].astype(np.intp)  # native indices: numpy gathers with them fastest
                weights = (
                    np.bincount(index, minlength=self.sizes[column] + 1) / len(codes)
                    if frequencies is None
                    else frequencies[column]
                )
                inputs[column] = index, weights
            return inputs[column]

        for columns, table in self.tables:
            if len(columns) == 1:
                i, w_i = read(columns[0])
                mean = float(w_i @ table)
                out[:, into[columns[0]]] += (table - mean)[i]
                base += mean
                continue
            first, second = columns
            (i, w_i), (j, w_j) = read(first), read(second)
            by_i, by_j = (table @ w_j)[:, None], (w_i @ table)[None, :]
            mean = float(w_i @ by_i[:, 0])
            flat = i * table.shape[1] + j
            to_first = 0.5 * ((table - by_j) + (by_i - mean))
            to_second = 0.5 * ((table - by_i) + (by_j - mean))
            if into[first] == into[second]:
                out[:, into[first]] += (to_first + to_second).ravel()[flat]
            else:
                out[:, into[first]] += to_first.ravel()[flat]
                out[:, into[second]] += to_second.ravel()[flat]
            base += mean
        return base, out


@dataclass(frozen=True)
class _SplitRules:
    """Which codes of an input go left at a node, decided as the booster's predictor does.

    The booster reorders and re-encodes its inputs (categorical ones first, ordinal-encoded: a category
    never seen in training becomes missing), so each internal input j reads original column ``column[j]``
    and sees ``seen[j][code]`` for each of its codes.
    """

    column: np.ndarray
    seen: list[np.ndarray]

    @classmethod
    def of(cls, booster: HistGradientBoostingRegressor, sizes: tuple[int, ...]) -> _SplitRules:
        n = len(sizes)
        codes = np.arange(max(sizes) + 1, dtype=np.float64)[:, None]
        probe = np.where(codes < np.asarray(sizes), codes, np.nan)  # row r: code r of every column, else missing
        column = np.arange(n)
        if (pre := getattr(booster, "_preprocessor", None)) is not None:
            column = np.concatenate([np.arange(n)[cols] for _, step, cols in pre.transformers_ if step != "drop"])
            probe = pre.transform(probe)
        return cls(column, [probe[: sizes[c] + 1, j] for j, c in enumerate(column)])

    def goes_left(self, node: np.void, left_cat_bitsets: np.ndarray) -> np.ndarray:
        """Boolean over the codes 0..sizes[c] of the node's original column c (the last code is missing)."""
        values = self.seen[int(node["feature_idx"])]
        missing = np.isnan(values)
        if node["is_categorical"]:
            left = _in_bitset(left_cat_bitsets[node["bitset_idx"]], np.where(missing, 0, values).astype(np.int64))
        else:
            left = values <= node["num_threshold"]
        return np.where(missing, bool(node["missing_go_to_left"]), left)


def _in_bitset(bitset: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Whether each value's bit is set in a bitset of 32-bit words (sklearn's category bitsets)."""
    return ((bitset[values // 32] >> (values % 32).astype(bitset.dtype)) & 1).astype(bool)


def _leaves(tree, rules: _SplitRules, node: int = 0, masks: dict | None = None) -> Iterator[tuple[dict, float]]:
    """(per tested column: boolean mask of its codes reaching the leaf, leaf value) for every leaf under `node`."""
    masks = masks or {}
    here = tree.nodes[node]
    if here["is_leaf"]:
        yield masks, float(here["value"])
        return
    column = int(rules.column[here["feature_idx"]])
    left = rules.goes_left(here, tree.raw_left_cat_bitsets)
    for child, mask in ((here["left"], left), (here["right"], ~left)):
        yield from _leaves(tree, rules, int(child), {**masks, column: masks.get(column, True) & mask})
