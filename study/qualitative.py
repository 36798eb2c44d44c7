"""What the taggers actually predict (§5.1, qualitative results), from stored test predictions.

The paper compared one of its networks with the GBT baseline and the ground truth and saw two
things: the network favours popular tags, and the per-tag GBT models score mutually exclusive tags
(East/West Coast rap, baroque/classical period) highly together where the network does not.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from study.metrics import POSITIVE_THRESHOLD
from study.report import BASELINE, choose_run
from study.results import load_predictions, run_path


def aligned_predictions(first: Mapping[str, Any], second: Mapping[str, Any]) -> tuple[dict, dict]:
    """Two runs' predictions restricted to the test clips and tags they share, in the same order."""
    second_ids, second_tags = set(second["track_ids"]), set(second["tags"])
    shared_ids = [t for t in first["track_ids"] if t in second_ids]
    shared_tags = [t for t in first["tags"] if t in second_tags]
    if not shared_ids or not shared_tags:
        raise ValueError("the two runs share no test clips or no tags: were they evaluated on the same data?")

    def take(pred: Mapping[str, Any]) -> dict:
        row_of = {t: i for i, t in enumerate(pred["track_ids"])}
        col_of = {t: j for j, t in enumerate(pred["tags"])}
        rows, cols = [row_of[t] for t in shared_ids], [col_of[t] for t in shared_tags]
        return {"track_ids": shared_ids, "tags": shared_tags, "y_true": np.asarray(pred["y_true"])[np.ix_(rows, cols)],
                "y_score": np.asarray(pred["y_score"])[np.ix_(rows, cols)],
                "is_regression": np.asarray(pred["is_regression"])[cols]}

    return take(first), take(second)


def qualitative_predictions(runs: pd.DataFrame, *, model: str, train_size: int | None = None,
                            seed: int | None = None, results_dir: str | Path = "results") -> dict[str, dict]:
    """{model: ..., 'gbt': ...}: the test predictions of one network and of the GBT baseline (§5.1),
    on the clips and tags they share; empty, with a note, while either run is not stored yet."""
    try:
        network = choose_run(runs, model=model, train_size=train_size, seed=seed)
        baseline = choose_run(runs, model=BASELINE)
    except LookupError as missing:
        print(f"nothing to compare yet: {missing}")
        return {}
    print(f"network: {network['run_id']}\nbaseline: {baseline['run_id']}")
    first, second = aligned_predictions(load_predictions(run_path(results_dir, network["run_id"])),
                                        load_predictions(run_path(results_dir, baseline["run_id"])))
    return {model: first, BASELINE: second}


def _reference(predictions: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    """The predictions whose ground truth is used (all share it); no clips and no tags when there are none."""
    empty = {"track_ids": [], "tags": [], "y_true": np.zeros((0, 0)), "y_score": np.zeros((0, 0)),
             "is_regression": np.zeros(0, dtype=bool)}
    return next(iter(predictions.values()), empty)


def _classification(pred: Mapping[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tag names, truth (positive or not) and scores of the classification tags only."""
    keep = ~np.asarray(pred["is_regression"], dtype=bool)
    tags = [t for t, k in zip(pred["tags"], keep) if k]
    return tags, np.asarray(pred["y_true"])[:, keep] >= POSITIVE_THRESHOLD, np.asarray(pred["y_score"])[:, keep]


def example_predictions(predictions: Mapping[str, Mapping[str, Any]], *, n_examples: int = 5,
                        top_k: int = 5) -> pd.DataFrame:
    """A few test clips (spread over the sorted ids): ground-truth tags and each model's top-k tags."""
    first = _reference(predictions)
    tags, truth, _ = _classification(first)
    count = len(first["track_ids"])
    picks = np.unique(np.linspace(0, count - 1, num=min(n_examples, count)).round().astype(int))
    rows = []
    for index in picks:
        row = {"track_id": first["track_ids"][index],
               "ground truth": ", ".join(t for t, on in zip(tags, truth[index]) if on) or "(none)"}
        for name, pred in predictions.items():
            _, _, scores = _classification(pred)
            best = np.argsort(-scores[index])[:top_k]
            row[name] = ", ".join(f"{tags[j]} {scores[index, j]:.2f}" for j in best)
        rows.append(row)
    return pd.DataFrame(rows, columns=["track_id", "ground truth", *predictions])


def exclusive_pairs(predictions: Mapping[str, Mapping[str, Any]], *, min_positives: int = 5,
                    top: int = 8) -> pd.DataFrame:
    """Classification tags that never occur together in the ground truth, most frequent pairs first."""
    tags, truth, _ = _classification(_reference(predictions))
    counts = truth.sum(axis=0)
    together = truth.T.astype(int) @ truth.astype(int)  # (tags, tags) co-occurrence counts
    rows = [{"tag_a": tags[a], "tag_b": tags[b], "positives_a": int(counts[a]), "positives_b": int(counts[b])}
            for a in range(len(tags)) for b in range(a + 1, len(tags))
            if together[a, b] == 0 and counts[a] >= min_positives and counts[b] >= min_positives]
    table = pd.DataFrame(rows, columns=["tag_a", "tag_b", "positives_a", "positives_b"])
    order = np.argsort(-np.minimum(table["positives_a"], table["positives_b"]).to_numpy(), kind="stable")
    return table.iloc[order[:top]].reset_index(drop=True)


def exclusive_pair_scores(predictions: Mapping[str, Mapping[str, Any]], pairs: pd.DataFrame, *,
                          threshold: float = 0.5) -> pd.DataFrame:
    """How often each model scores both tags of a never-together pair highly (§5.1: the GBT baseline does).

    ``both_high``: share of test clips with both scores >= threshold; ``joint_score``: mean of the
    smaller of the two scores.  Lower is better: the ground truth has 0 for both.
    """
    columns = ["pair"] + [f"{name} {what}" for name in predictions for what in ("both_high", "joint_score")]
    rows = []
    for pair in pairs.itertuples(index=False):
        line = {"pair": f"{pair.tag_a} / {pair.tag_b}"}
        for name, pred in predictions.items():
            tags, _, scores = _classification(pred)
            a, b = scores[:, tags.index(pair.tag_a)], scores[:, tags.index(pair.tag_b)]
            line[f"{name} both_high"] = float(((a >= threshold) & (b >= threshold)).mean())
            line[f"{name} joint_score"] = float(np.minimum(a, b).mean())
        rows.append(line)
    return pd.DataFrame(rows, columns=columns)


def popularity_bias(predictions: Mapping[str, Mapping[str, Any]], *, top_k: int = 5) -> pd.DataFrame:
    """Per tag: how common it is in the ground truth, and how often each model puts it in a clip's top-k.

    The §5.1 observation ('biased towards predicting the popular tags') shows as top-k rates that
    grow faster than the tag's prevalence.  ``truth top_k`` ranks the ground truth the same way.
    """
    tags, truth, _ = _classification(_reference(predictions))
    table = pd.DataFrame({"tag": tags, "prevalence": truth.sum(axis=0) / max(len(truth), 1)})
    table["truth top_k"] = _top_k_rate(truth.astype(float), top_k)
    for name, pred in predictions.items():
        _, _, scores = _classification(pred)
        table[f"{name} top_k"] = _top_k_rate(scores, top_k)
        table[f"{name} mean_score"] = scores.mean(axis=0)
    return table.sort_values("prevalence", ascending=False, kind="stable").reset_index(drop=True)


def _top_k_rate(scores: np.ndarray, top_k: int) -> np.ndarray:
    """Share of clips whose k highest-scored tags include each tag (ties broken by tag order)."""
    best = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    chosen = np.zeros_like(scores, dtype=bool)
    np.put_along_axis(chosen, best, True, axis=1)
    return chosen.sum(axis=0) / max(len(chosen), 1)


def popular_share(bias: pd.DataFrame, *, popular: int = 5) -> pd.DataFrame:
    """Share of all top-k slots taken by the ``popular`` most common tags, per model and in the truth."""
    columns = [c for c in bias.columns if c.endswith(" top_k")]
    head = bias.head(popular)
    return pd.DataFrame([{"ranking": c[:-len(" top_k")], "share_of_top_k_slots": head[c].sum() / bias[c].sum()}
                         for c in columns if bias[c].sum() > 0], columns=["ranking", "share_of_top_k_slots"])


def plot_popularity_bias(bias: pd.DataFrame) -> plt.Figure:
    """Top-k rate against prevalence per tag; on the diagonal = predicted as often as it occurs."""
    figure, ax = plt.subplots(figsize=(5, 4))
    columns = [c for c in bias.columns if c.endswith(" top_k")]
    for column in columns:
        ax.scatter(bias["prevalence"], bias[column], s=14, label=column[:-len(" top_k")], alpha=0.8)
    ax.plot([0, 1], [0, 1], color="0.5", linestyle=":", linewidth=1)
    ax.set_xlabel("prevalence in the test ground truth")
    ax.set_ylabel("share of clips with the tag in the top-k")
    if bias.empty:
        ax.text(0.5, 0.5, "no stored runs to compare yet", transform=ax.transAxes, ha="center")
    else:
        ax.legend(fontsize=7)
    figure.tight_layout()
    return figure
