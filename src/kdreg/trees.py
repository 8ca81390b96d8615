"""Fitting boosted trees (scikit-learn's ``HistGradientBoostingRegressor``) without torch, in this process or in
worker processes: the part of a tree teacher (:mod:`kdreg.gbdt`) that runs where the fits run.

Why workers: on small tables a fit is ~0.3–0.8 s of mostly single-threaded Python in scikit-learn's tree grower
(its OpenMP threads add nothing at a few thousand rows, measured), while a teacher job holds ``--threads`` cores.
The folds of a round and the models of a job are independent fits, so they run side by side, one OpenMP thread
each. A fit's result does not depend on the number of threads (scikit-learn's histograms and sums are exact in
their order; tested), so the trees are the same bytes whichever way they ran.

A fit returns plain numpy arrays (:func:`export_trees`), never a fitted scikit-learn object: what crosses from a
worker is data, and a checkpoint made of it is tensors.
"""
from __future__ import annotations

from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
import multiprocessing

import numpy as np

# Defaults of ``teacher.gbdt`` (absent keys). The number of trees is an upper bound: the kept number is the
# iteration with the lowest validation median absolute error, as the network teachers' early stopping.
GBDT_DEFAULTS = {"loss": "squared_error", "quantile": 0.5, "max_iter": 300, "learning_rate": 0.05,
                 "max_leaf_nodes": 15, "min_samples_leaf": 10, "l2_regularization": 0.0}
GBDT_LOSSES = ("squared_error", "absolute_error", "quantile")
# per node, the field and its dtype (a TreeEnsemble's buffers)
NODE_FIELDS = {"feature": np.int64, "threshold": np.float64, "left": np.int64, "right": np.int64,
               "is_leaf": np.bool_, "missing_left": np.bool_, "value": np.float64}

_workers = 1  # processes that fit trees side by side (set_tree_workers); 1: in this process


def gbdt_options(config: dict) -> dict:
    """``teacher.gbdt`` with its defaults, refusing unknown keys and bad values (the params check says the same)."""
    opts = dict(config.get("gbdt") or {})
    unknown = sorted(set(opts) - set(GBDT_DEFAULTS))
    if unknown:
        raise ValueError(f"teacher.gbdt: unknown key {unknown[0]!r}; known: {sorted(GBDT_DEFAULTS)}")
    opts = {**GBDT_DEFAULTS, **opts}
    if opts["loss"] not in GBDT_LOSSES:
        raise ValueError(f"teacher.gbdt.loss must be one of {list(GBDT_LOSSES)}, got {opts['loss']!r}")
    if not 0 < float(opts["quantile"]) < 1:
        raise ValueError(f"teacher.gbdt.quantile must be in (0, 1), got {opts['quantile']!r}")
    return opts


def export_trees(models: list, kept: list[int]) -> dict[str, np.ndarray]:
    """The first ``kept[d]`` trees of each dimension's fitted regressor as arrays: per node ``NODE_FIELDS``
    (``(M,)``, nodes of all trees concatenated), per tree ``root`` and ``dim`` (``(T,)``), ``depth`` (the deepest
    leaf) and ``baseline`` (``(D,)``, each dimension's starting prediction)."""
    fields = {f: [] for f in NODE_FIELDS}
    root, dim, depth, offset = [], [], 0, 0
    for d, (model, n_trees) in enumerate(zip(models, kept)):
        for (predictor,) in model._predictors[:n_trees]:  # one tree per iteration for a regressor
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("gbdt teacher: categorical splits are not supported (kdreg one-hot encodes)")
            fields["feature"].append(nodes["feature_idx"])
            fields["threshold"].append(nodes["num_threshold"])
            # leaves' children are 0 in scikit-learn: point them at themselves (never followed)
            own = np.arange(len(nodes), dtype=np.int64) + offset
            leaf = nodes["is_leaf"].astype(bool)
            fields["left"].append(np.where(leaf, own, nodes["left"].astype(np.int64) + offset))
            fields["right"].append(np.where(leaf, own, nodes["right"].astype(np.int64) + offset))
            fields["is_leaf"].append(leaf)
            fields["missing_left"].append(nodes["missing_go_to_left"])
            fields["value"].append(nodes["value"])
            root.append(offset)
            dim.append(d)
            depth = max(depth, int(nodes["depth"].max()))
            offset += len(nodes)
    state = {f: (np.concatenate(v) if v else np.zeros(0)).astype(NODE_FIELDS[f]) for f, v in fields.items()}
    state.update(root=np.array(root, dtype=np.int64), dim=np.array(dim, dtype=np.int64),
                 depth=np.array(depth, dtype=np.int64),
                 baseline=np.array([float(np.ravel(m._baseline_prediction)[0]) for m in models], dtype=np.float64))
    return state


def fit_trees(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, options: dict,
              seed: int) -> tuple[dict[str, np.ndarray], list[int]]:
    """One regressor per label dimension on ``(x, y)`` (``(N, F)``, ``(N, D)``, standardized), each cut to the
    number of trees whose prediction of ``y_val`` (the noisy validation labels, standardized) has the lowest
    median absolute error. Returns the trees' arrays (:func:`export_trees`) and the kept number per dimension."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    opts = gbdt_options({"gbdt": options})
    models, kept = [], []
    for d in range(y.shape[1]):
        model = HistGradientBoostingRegressor(
            loss=opts["loss"], quantile=float(opts["quantile"]) if opts["loss"] == "quantile" else None,
            max_iter=int(opts["max_iter"]), learning_rate=float(opts["learning_rate"]),
            max_leaf_nodes=int(opts["max_leaf_nodes"]), min_samples_leaf=int(opts["min_samples_leaf"]),
            l2_regularization=float(opts["l2_regularization"]), early_stopping=False, random_state=seed)
        model.fit(x.astype(np.float64), y[:, d].astype(np.float64))
        errors = [np.median(np.abs(p - y_val[:, d])) for p in model.staged_predict(x_val.astype(np.float64))]
        models.append(model)
        kept.append(int(np.argmin(errors)) + 1)   # the first of equal minima: the smallest model
    return export_trees(models, kept), kept


def set_tree_workers(n: int) -> None:
    """Fit boosted trees in ``n`` worker processes side by side (1: in this process). The CLI sets it to a job's
    ``--threads``, so a job uses the cores it holds and no more."""
    global _workers
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"tree workers must be an integer >= 1, got {n!r}")
    _workers = n


def _one_thread() -> None:
    """A worker's start: scikit-learn's OpenMP (and the BLAS) to one thread, so n workers hold n cores. The trees'
    module first: a limit reaches only the runtimes already loaded (measured: set before it, each worker ran the
    job's OMP_NUM_THREADS threads, and the fits took longer than in one process)."""
    import sklearn.ensemble  # noqa: F401 (loads scikit-learn's OpenMP runtime)
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)


def fit_threads() -> dict[str, int]:
    """The threads a fit runs on in this process: the most of any loaded runtime, per kind (``openmp``: scikit-learn's
    trees; ``blas``), with scikit-learn's trees loaded."""
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_info
    threads = {}
    for pool in threadpool_info():
        threads[pool["user_api"]] = max(threads.get(pool["user_api"], 0), pool["num_threads"])
    return threads


class _InProcess:
    """``submit`` that runs the call at once, here: the one-worker pool (no process to start)."""

    @staticmethod
    def submit(fn, *args) -> Future:
        done = Future()
        try:
            done.set_result(fn(*args))
        except Exception as err:  # raised where .result() is read, as a pool's future does
            done.set_exception(err)
        return done


@contextmanager
def tree_pool(fits: int):
    """Where ``fits`` independent tree fits run: ``set_tree_workers`` processes (spawned: nothing of this
    process's threads or state is inherited), or this process. Leaving early cancels the fits not yet started."""
    workers = min(_workers, fits)
    if workers <= 1:
        yield _InProcess()
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread)
    try:
        yield pool
    except BrokenProcessPool as err:
        raise RuntimeError("a process fitting boosted trees died (killed for memory?); rerun with --threads 1 to "
                           "fit them one at a time in the job's own process") from err
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
