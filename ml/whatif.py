"""Exact, fast what-if predictions for the calibrated gradient-boosted churn model.

The reasons (`ml.reasons`) ask, per customer and driver group, "what would the risk be if
this group were at its reference values?". Asked naively, that is one full prediction of
every tree for every customer and group: at a million customers, seven groups and ~180
trees, over a billion tree walks (34 s of the daily run). Most of them are wasted:

* a tree changes its answer for a customer only if the customer's path through it tests a
  feature of the group *and* goes the other way than the reference value would. Which
  leaves of a tree have such a path is known from the tree alone, so the tree is walked
  again only for customers in those leaves (about one pair in six);
* the walk itself runs on the booster's binned inputs (one byte per feature), where a
  split is a comparison of bins, about twice as fast as on the raw floats.

Results are bit-for-bit those of `predict_proba`: each tree's leaf is the one scikit-learn
would reach (split thresholds are bin edges, so comparing bins decides every split the way
comparing the raw values does), and the per-customer sum of leaf values is formed in
scikit-learn's order (baseline, then tree after tree), before the same calibrator.
`WhatIf.for_artifact` checks this on a sample of rows against the model's own prediction
and returns None (callers then use the plain predictions) if the model is of another kind
or a scikit-learn release computes it differently.
"""

from __future__ import annotations

import logging
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ml.registry import ModelArtifact

log = logging.getLogger(__name__)

#: rows checked against the model's own prediction before the fast path is used
SELF_CHECK_ROWS = 2_000
#: tree walks over fewer rows run on one thread: starting an OpenMP team costs more than it
#: saves there, and on a busy machine each start can take milliseconds (measured: 17 ms a call)
PARALLEL_ROWS = 100_000


class WhatIf:
    """Leaf-level view of a calibrated `HistGradientBoostingClassifier` pipeline."""

    def __init__(self, artifact: ModelArtifact):
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        prep, booster, calibrator = artifact._parts()
        if getattr(booster, "n_trees_per_iteration_", 1) != 1:
            raise TypeError("only binary boosters are supported")
        self._prep, self._booster, self._calibrator = prep, booster, calibrator
        self._make = TreePredictor
        self._n_threads = _openmp_effective_n_threads
        self._bins = booster._bin_mapper
        self._missing_bin = self._bins.missing_values_bin_idx_
        self._baseline = float(np.asarray(booster._baseline_prediction).ravel()[0])
        self._trees = [iteration[0] for iteration in booster._predictors]
        self._values = [tree.nodes["value"].copy() for tree in self._trees]
        # the same trees, answering with the index of the leaf reached instead of its value
        self._leaf_trees = [self._with_nodes(tree, tree.nodes) for tree in self._trees]
        n_nodes = max((len(tree.nodes) for tree in self._trees), default=1)
        self._leaf_dtype = np.uint8 if n_nodes <= 256 else np.uint16
        # column order inside the booster: it moves categorical columns first
        names = list(prep.get_feature_names_out()) if prep is not None else artifact.features
        is_cat = np.asarray(booster.is_categorical_, dtype=bool) if booster.is_categorical_ is not None else None
        if is_cat is None:
            self._internal = names
        else:
            self._internal = [names[i] for i in np.flatnonzero(is_cat)] + [names[i] for i in np.flatnonzero(~is_cat)]
        self._artifact = artifact

    @classmethod
    def for_artifact(cls, artifact: ModelArtifact, frame: pd.DataFrame | None = None) -> WhatIf | None:
        """A `WhatIf` for the model, or None if it is not a calibrated booster this module reproduces exactly.

        With `frame` (a `build_features` frame), up to `SELF_CHECK_ROWS` of its rows are
        predicted both ways and must agree bit for bit.
        """
        try:
            if artifact._parts() is None:
                return None
            what_if = cls(artifact)
            if frame is not None and len(frame):
                sample = frame.iloc[: SELF_CHECK_ROWS]
                with threadpool_limits(1):
                    binned = what_if.bin(artifact.transform(sample))
                    fast = what_if.risk(what_if.raw(what_if.leaves(binned)))
                    if not np.array_equal(fast, artifact.predict_risk(sample)):
                        log.warning("fast reasons disagree with the model's own prediction: using the plain way")
                        return None
            return what_if
        except (ImportError, AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
            # scikit-learn internals this relies on moved (an upgrade): slower, same answers
            log.warning("fast reasons unavailable (%s: %s): using the plain way", type(exc).__name__, exc)
            return None

    def _with_nodes(self, tree, nodes: np.ndarray):
        """A copy of `tree` with `nodes`, whose leaves answer with their own node index."""
        nodes = nodes.copy()
        nodes["value"] = np.arange(len(nodes), dtype=float)
        return self._make(nodes, tree.binned_left_cat_bitsets, tree.raw_left_cat_bitsets)

    def _threads(self, n_rows: int) -> int:
        return self._n_threads() if n_rows >= PARALLEL_ROWS else 1

    def column(self, name: str) -> int:
        """Index of a model input column in the binned matrix."""
        return self._internal.index(name)

    def bin(self, Z: pd.DataFrame) -> np.ndarray:
        """Preprocessed inputs (`ModelArtifact.transform`) as the booster's bins, one byte per feature."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            X = self._booster._preprocess_X(Z, reset=False)
        return np.ascontiguousarray(self._bins.transform(np.ascontiguousarray(X, dtype=np.float64)))

    def leaves(self, binned: np.ndarray) -> np.ndarray:
        """(n_trees, n_rows) index of the leaf each row reaches in each tree."""
        out = np.empty((len(self._trees), len(binned)), dtype=self._leaf_dtype)
        workers = self._threads(len(binned))

        def block(start: int, stop: int) -> None:
            part = binned[start:stop]
            for t, tree in enumerate(self._leaf_trees):
                out[t, start:stop] = tree.predict_binned(part, self._missing_bin, 1)

        # one block of rows per thread (the walks release the GIL), rather than an OpenMP team
        # per tree: on a busy machine each team start waits for a free core (measured 2x slower)
        edges = np.linspace(0, len(binned), workers + 1).astype(int)
        if workers == 1:
            block(0, len(binned))
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(block, edges[:-1], edges[1:]))
        return out

    def raw(self, leaves: np.ndarray) -> np.ndarray:
        """Decision function from leaf indices, summed in scikit-learn's order (baseline, then tree by tree)."""
        raw = np.zeros(leaves.shape[1]) + self._baseline
        for t, values in enumerate(self._values):
            raw += values.take(leaves[t])
        return raw

    def risk(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated churn probability from the decision function, as `ModelArtifact.risk_from_transformed`."""
        return np.clip(self._calibrator.predict(raw), 0.0, 1.0)

    def reference_bins(self, reference: pd.DataFrame) -> np.ndarray:
        """Bins of a one-row reference frame (preprocessed like `bin` takes it)."""
        return self.bin(reference)[0]

    def _goes_left(self, tree, node, bin_value: int) -> bool:
        if node["is_categorical"]:
            bitset = tree.binned_left_cat_bitsets[node["bitset_idx"]]
            return bool((int(bitset[bin_value // 32]) >> (bin_value % 32)) & 1)
        if bin_value == self._missing_bin:
            return bool(node["missing_go_to_left"])
        return bin_value <= node["bin_threshold"]

    def _pruned(self, t: int, columns: set[int], ref_bins: np.ndarray):
        """Tree `t` with the columns fixed at their reference bins, and where that moves each leaf's rows.

        Returns None if the tree does not test the columns, else (pruned tree, target) with
        `target[leaf]` = -2 if rows reaching `leaf` stay there with the reference values (no
        split on the columns along its path sends the reference the other way), the leaf
        they reach instead if that does not depend on their other values, else -1 (walk the
        pruned tree for them).
        """
        tree = self._trees[t]
        nodes = tree.nodes
        tested = [i for i in range(len(nodes)) if not nodes[i]["is_leaf"] and int(nodes[i]["feature_idx"]) in columns]
        if not tested:
            return None
        pruned = nodes.copy()
        ref_child = {}
        for i in tested:
            left = self._goes_left(tree, nodes[i], int(ref_bins[nodes[i]["feature_idx"]]))
            ref_child[i] = int(nodes[i]["left"] if left else nodes[i]["right"])
            pruned["left"][i] = pruned["right"][i] = ref_child[i]  # both ways lead where the reference goes
            pruned["is_categorical"][i] = 0

        def landing(i: int) -> int:
            while i in ref_child:
                i = ref_child[i]
            return i if nodes[i]["is_leaf"] else -1

        target = np.full(len(nodes), -2, dtype=np.int64)
        stack = [(0, -2)]
        while stack:
            i, moved_to = stack.pop()
            node = nodes[i]
            if node["is_leaf"]:
                target[i] = moved_to
                continue
            for child in (int(node["left"]), int(node["right"])):
                if moved_to == -2 and i in ref_child and child != ref_child[i]:
                    stack.append((child, landing(ref_child[i])))
                else:
                    stack.append((child, moved_to))
        return self._with_nodes(tree, pruned), target

    def swapped_raw(
        self, binned: np.ndarray, leaves: np.ndarray, rows: np.ndarray, columns: list[str], ref_bins: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decision function of `rows` with `columns` set to the reference, where it changes.

        Returns (changed, raw): the rows (a sorted subset of `rows`) whose leaf changes in at
        least one tree, and their decision function with the swap. Every other row of `rows`
        keeps its decision function exactly.
        """
        cols = {self.column(c) for c in columns}
        everyone = len(rows) == leaves.shape[1]
        new_leaves: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for t in range(len(self._trees)):
            pruned = self._pruned(t, cols, ref_bins)
            if pruned is None:
                continue
            tree, target = pruned
            moved_to = target.take(leaves[t] if everyone else leaves[t].take(rows))
            moves = np.flatnonzero(moved_to != -2)
            if len(moves) == 0:
                continue
            need, new = rows.take(moves), moved_to.take(moves)
            walk = np.flatnonzero(new == -1)
            if len(walk):
                new[walk] = tree.predict_binned(binned.take(need.take(walk), axis=0), self._missing_bin,
                                                self._threads(len(walk)))
            keep = new != leaves[t].take(need)
            new_leaves[t] = (need[keep], new[keep].astype(leaves.dtype))
        new_leaves = {t: v for t, v in new_leaves.items() if len(v[0])}
        if not new_leaves:
            return np.empty(0, dtype=np.int64), np.empty(0)
        is_changed = np.zeros(leaves.shape[1], dtype=bool)
        for need, _ in new_leaves.values():
            is_changed[need] = True
        changed = np.flatnonzero(is_changed)
        position = np.empty(leaves.shape[1], dtype=np.int64)
        position[changed] = np.arange(len(changed))
        raw = np.zeros(len(changed)) + self._baseline
        for t, values in enumerate(self._values):
            leaf = leaves[t].take(changed)
            if t in new_leaves:
                need, new = new_leaves[t]
                leaf[position.take(need)] = new
            raw += values.take(leaf)
        return changed, raw
