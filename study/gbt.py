"""The paper's baseline (§5.1, Table 1): handcrafted descriptors + one gradient-boosted tree model per tag.

"By predicting each tag individually, one aims to turn a hard problem into multiple (hopefully
simpler) problems."  Classification tags get a classifier, regression tags (the 1.2M set's
pseudo-uniform ones) a regressor on [0, 1].  The baseline is trained on the same nested training
subsets and scored with the same metrics on the same test split as the networks, and written to
the results store with model name 'gbt' so that tables treat it like any run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from study import data, features
from study.config import RunConfig, add_run_arguments, config_from_args
from study.data.cache import default_workers, ensure_cache
from study.data.collection import SPLITS
from study.locks import run_lock
from study.metrics import POSITIVE_THRESHOLD
from study.models import GBT
from study.results import record_run, reusable_run


@dataclass(frozen=True)
class GBTConfig:
    """Tree-ensemble settings (the paper does not give [22]'s; these are scikit-learn's usual ones)."""

    max_iter: int = 300  # boosting rounds, cut short by early stopping on the validation split
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    n_iter_no_change: int = 10


class ConstantModel:
    """Stands in for a tag whose training labels are all equal: predicts that value."""

    def __init__(self, value: float) -> None:
        self.value = float(value)
        self.n_iter_ = 0

    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.value, dtype=np.float32)


def _score(model, x: np.ndarray) -> np.ndarray:
    """Probability of the tag (classifier) or its value clipped to [0, 1] (regressor)."""
    if isinstance(model, ConstantModel):
        return model.predict_scores(x)
    if hasattr(model, "predict_proba"):  # a classifier
        return model.predict_proba(x)[:, list(model.classes_).index(1)].astype(np.float32)
    return np.clip(model.predict(x), 0.0, 1.0).astype(np.float32)


def _fit_one(train_x: np.ndarray, target: np.ndarray, regression: bool, settings: dict,
             valid_x: np.ndarray | None, valid_target: np.ndarray | None):
    """One tag's model, fitted on one thread: tags run in parallel instead (tree threads spin on small data)."""
    # imported where used, as joblib in fit_tag_models: scikit-learn's ensembles and the thread-pool tools
    # take seconds to import, which every `study` command would otherwise pay through the command line
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    if not regression and target.min() == target.max():  # nothing to learn: always this class
        return ConstantModel(target[0])
    model = (HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier)(**settings)
    with threadpool_limits(limits=1, user_api="openmp"):
        if valid_x is not None:
            model.fit(train_x, target, X_val=valid_x, y_val=valid_target)
        else:
            model.fit(train_x, target)
    return model


def fit_tag_models(train_x: np.ndarray, train_y: np.ndarray, is_regression: np.ndarray, *, params: GBTConfig,
                   seed: int, valid_x: np.ndarray | None = None, valid_y: np.ndarray | None = None,
                   workers: int = 1) -> list:
    """One model per tag column of ``train_y`` (n_train, n_tags), ``workers`` tags at a time.

    Classification labels are thresholded at POSITIVE_THRESHOLD, regression targets clipped to [0, 1]; early
    stopping watches the validation split, as the networks' early stopping does (none without one).
    """
    # a leaf holds at most a tenth of the training clips, so that small nested subsets can still split
    min_leaf = max(1, min(params.min_samples_leaf, len(train_x) // 10))
    use_valid = valid_x is not None and len(valid_x) > 0
    settings = dict(learning_rate=params.learning_rate, max_iter=params.max_iter, max_leaf_nodes=params.max_leaf_nodes,
                    min_samples_leaf=min_leaf, l2_regularization=params.l2_regularization,
                    n_iter_no_change=params.n_iter_no_change, random_state=seed, early_stopping=use_valid,
                    validation_fraction=None)

    def targets(y: np.ndarray, column: int) -> np.ndarray:
        values = y[:, column]
        return np.clip(values, 0.0, 1.0) if is_regression[column] else (values >= POSITIVE_THRESHOLD).astype(int)

    from joblib import Parallel, delayed  # imported where used (see _fit_one)

    jobs = [delayed(_fit_one)(train_x, targets(train_y, j), bool(is_regression[j]), settings,
                              valid_x if use_valid else None, targets(valid_y, j) if use_valid else None)
            for j in range(len(is_regression))]
    if workers > 1 and len(jobs) > 1:
        return Parallel(n_jobs=workers)(jobs)
    return [function(*args, **kwargs) for function, args, kwargs in jobs]


def predict_tag_models(models: list, x: np.ndarray) -> np.ndarray:
    """(n_clips, n_tags) scores in [0, 1]."""
    return np.stack([_score(model, x) for model in models], axis=1)


def gbt_run_id(cfg: RunConfig, params: GBTConfig = GBTConfig()) -> str:
    """The run id of the baseline: the config's own with model 'gbt'; non-default tree settings add a hash."""
    run_id = cfg.with_overrides(model=GBT).run_id
    if params != GBTConfig():
        run_id += "-" + hashlib.sha1(json.dumps(asdict(params), sort_keys=True).encode()).hexdigest()[:6]
    return run_id


def descriptor_cache_path(cache) -> Path:
    """``<audio cache folder>-descriptors-v<N>.npz``: beside the decoded audio it was computed from."""
    folder = Path(cache.directory)
    return folder.parent / f"{folder.name}-descriptors-v{features.FEATURE_VERSION}.npz"


@contextmanager
def _timed(timings: dict[str, float], name: str):
    started = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - started


def run_gbt(cfg: RunConfig, *, results_dir: str | Path = "results", force: bool = False,
            params: GBTConfig = GBTConfig(), workers: int | None = None) -> Path:
    """Fit and score the baseline at ``cfg.data.train_size`` and write the run; skips a run complete for these data.

    ``workers`` processes (default: one per core, at most 8) extract the descriptors (cached beside
    the audio cache and reused by every training size) and then fit the tags' models.
    """
    cfg = cfg.with_overrides(model=GBT)
    run_id = gbt_run_id(cfg, params)
    with run_lock(results_dir, run_id):  # a second worker on the same store waits, then skips it
        return _fit_and_score(cfg, run_id, results_dir=results_dir, force=force, params=params, workers=workers)


def _fit_and_score(cfg: RunConfig, run_id: str, *, results_dir: str | Path, force: bool, params: GBTConfig,
                   workers: int | None) -> Path:
    timings: dict[str, float] = {}
    with _timed(timings, "data"):
        collection = data.load_collection(cfg.data)
        stored = reusable_run(results_dir, run_id, collection.manifest_hash(), force=force)
        if stored is not None:
            return stored
        print(f"{cfg}\ngbt: {params}")
        workers = default_workers() if workers is None else workers
        collection.ids("train", cfg.data.train_size)  # a train_size beyond the split is refused before decoding
        cache, collection = ensure_cache(collection, cfg)
    ids = {split: collection.ids(split, cfg.data.train_size if split == "train" else 0) for split in SPLITS}
    with _timed(timings, "features"):
        matrix = features.extract_features(cache, [t for split in SPLITS for t in ids[split]], workers=workers,
                                           cache_path=descriptor_cache_path(cache), sample_rate=cfg.audio.sample_rate)
    bounds = np.cumsum([0] + [len(ids[split]) for split in SPLITS])
    x = {split: matrix[bounds[i]:bounds[i + 1]] for i, split in enumerate(SPLITS)}  # (clips, descriptors) per split
    y = {split: collection.label_rows(ids[split]) for split in SPLITS}  # (clips, tags) per split
    with _timed(timings, "train"):
        models = fit_tag_models(x["train"], y["train"], collection.is_regression, params=params, seed=cfg.train.seed,
                                valid_x=x["valid"], valid_y=y["valid"], workers=workers)
    with _timed(timings, "test"):
        y_score = predict_tag_models(models, x["test"])  # (test clips, tags)
    protocol = {
        "predictor": "gbt: one gradient-boosted tree model per tag (§5.1)",
        "aggregation": "none: one descriptor vector per whole clip",
        "descriptors": {"version": features.FEATURE_VERSION, "count": matrix.shape[1], "n_fft": features.N_FFT,
                        "hop": features.HOP, "families": ["timbre", "rhythm", "harmony"]},
        "early_stopping": "validation split" if len(ids["valid"]) else "none (no validation split)",
        "train_size": len(ids["train"]), "sample_rate": cfg.audio.sample_rate,
    }
    return record_run(results_dir, run_id, config=cfg, collection=collection, test_ids=ids["test"], scores=y_score,
                      protocol=protocol, timings=timings, extra_config={"gbt": asdict(params)},
                      per_tag_columns={"gbt_iterations": [model.n_iter_ for model in models]})


# ---- command line ----------------------------------------------------------------------------
def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "gbt", help="fit and score the GBT + descriptors baseline (Table 1)",
        description="Fit one gradient-boosted tree model per tag on handcrafted descriptors and write "
                    "results/runs/<run_id> (model 'gbt'), e.g. study gbt --preset default --train_size 500.")
    add_run_arguments(parser)  # the same --preset / --<field> options as `study train`
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for descriptors and tree fitting (default: one per core, at most 8)")
    trees = parser.add_argument_group("tree settings (GBTConfig)")
    for field in fields(GBTConfig):
        trees.add_argument(f"--gbt-{field.name.replace('_', '-')}", type=type(field.default), default=field.default,
                           dest=f"gbt_{field.name}", help=f"default {field.default}")
    parser.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    params = GBTConfig(**{f.name: getattr(args, f"gbt_{f.name}") for f in fields(GBTConfig)})
    run_gbt(config_from_args(args), results_dir=args.results_dir, force=args.force, params=params,
            workers=args.workers)
    return 0
