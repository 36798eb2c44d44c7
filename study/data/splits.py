"""Stratified, artist-filtered splits and nested training subsets (paper §3 and footnote 3).

The paper's partitions are "stratified and artist-filtered", with validation and test sets "kept
the same throughout the experiments" while the training set grows (100k, 500k, 1M songs, §5.1).
``artist_filtered_split`` assigns whole artists to train/valid/test with iterative
stratification (Sechidis et al., 2011) at the artist level; ``nested_train_order`` orders the
training tracks so that every prefix keeps the tag proportions, and the first N tracks are the
training set of size N.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

SPLIT_NAMES = ("train", "valid", "test")


def _label_array(labels, n_rows: int, what: str) -> np.ndarray:
    array = np.asarray(labels.values if isinstance(labels, pd.DataFrame) else labels)
    if array.ndim != 2 or array.shape[0] != n_rows:
        raise ValueError(f"splits.py: {what} labels of shape {array.shape} do not match {n_rows} tracks")
    return np.nan_to_num(array.astype(np.float32, copy=False))


def _is_classification(labels: np.ndarray) -> np.ndarray:
    """Columns holding only 0 and 1: the classification tags (the rest are regression tags)."""
    return ((labels == 0.0) | (labels == 1.0)).all(axis=0)


def _strata(labels: np.ndarray, rows: sparse.csr_matrix) -> np.ndarray:
    """Per group of ``rows``: counts of each classification tag and of each tercile of each regression tag."""
    classification = _is_classification(labels)
    counts = [np.asarray(rows @ labels)[:, classification]]
    for j in np.nonzero(~classification)[0]:  # regression tags: low / middle / high thirds
        edges = np.quantile(labels[:, j], [1 / 3, 2 / 3])
        third = np.searchsorted(edges, labels[:, j], side="right")
        onehot = sparse.csr_matrix((np.ones(len(third), dtype=np.float32), (np.arange(len(third)), third)),
                                   shape=(len(third), 3))
        counts.append((rows @ onehot).toarray())
    return np.concatenate(counts, axis=1).astype(np.float32)


def _greedy_assign(counts: np.ndarray, sizes: np.ndarray, fractions: np.ndarray, order: np.ndarray,
                   rng: np.random.Generator, chunks: int = 500) -> np.ndarray:
    """Assign groups (rows of ``counts``) to parts, each where it most reduces the misfit to the targets.

    The misfit of a part is sum over strata of (count - target)^2 / target (a chi-square), plus the
    same for its size; groups are taken in ``order`` (rarest strata first) in up to ``chunks``
    batches, each batch judged against the parts as filled by the earlier ones.
    """
    target = fractions[:, None] * counts.sum(axis=0)[None, :] + 1.0  # (parts, strata)
    target_size = fractions * sizes.sum() + 1.0
    size_weight = max(counts.shape[1], 1) / 4.0
    current = np.zeros_like(target)
    current_size = np.zeros_like(target_size)
    assignment = np.empty(len(counts), dtype=np.int64)
    for batch in np.array_split(order, min(chunks, max(len(order), 1))):
        c, s = counts[batch].astype(np.float64)[:, None, :], sizes[batch][:, None]  # (b, 1, strata), (b, 1)
        misfit = (c * (2.0 * (current - target)[None] + c) / target[None]).sum(axis=2)
        misfit += size_weight * s * (2.0 * (current_size - target_size)[None] + s) / target_size[None]
        misfit += 1e-9 * rng.random(misfit.shape)  # ties: random, but seeded
        misfit[:, fractions == 0] = np.inf
        choice = np.argmin(misfit, axis=1)
        assignment[batch] = choice
        np.add.at(current, choice, counts[batch])
        current_size += np.bincount(choice, weights=sizes[batch], minlength=len(fractions))
    return assignment


def _refine(assignment: np.ndarray, counts: np.ndarray, sizes: np.ndarray, fractions: np.ndarray,
            rng: np.random.Generator, passes: int = 2) -> None:
    """Local search after the greedy pass: move a group to another part wherever that lowers the misfit."""
    parts = len(fractions)
    target = fractions[:, None] * counts.sum(axis=0)[None, :] + 1.0
    target_size = fractions * sizes.sum() + 1.0
    size_weight = max(counts.shape[1], 1) / 4.0
    current = np.zeros_like(target)
    np.add.at(current, assignment, counts)
    current_size = np.bincount(assignment, weights=sizes, minlength=parts).astype(np.float64)
    allowed = fractions > 0
    for _ in range(passes):
        moved = 0
        for group in rng.permutation(len(assignment)):
            here = assignment[group]
            c, s = counts[group].astype(np.float64), sizes[group]
            leave = (c * (c - 2.0 * (current[here] - target[here])) / target[here]).sum() \
                + size_weight * s * (s - 2.0 * (current_size[here] - target_size[here])) / target_size[here]
            join = (c[None, :] * (2.0 * (current - target) + c[None, :]) / target).sum(axis=1) \
                + size_weight * s * (2.0 * (current_size - target_size) + s) / target_size
            join[here] = np.inf
            join[~allowed] = np.inf
            best = int(np.argmin(join))
            if leave + join[best] < -1e-9:
                assignment[group] = best
                current[here] -= c
                current[best] += c
                current_size[here] -= s
                current_size[best] += s
                moved += 1
        if not moved:
            break


def _rarest_first(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows ordered by the frequency of their rarest stratum (random among equals)."""
    frequency = counts.sum(axis=0)
    rarest = np.where(counts > 0, frequency[None, :], np.inf).min(axis=1)
    return np.lexsort((rng.random(len(counts)), rarest))


def artist_filtered_split(tracks: pd.DataFrame, labels, *, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> pd.Series:
    """Split name per track: no artist in two splits, tag proportions alike in all three.

    ``tracks`` needs an ``artist`` column ('' = unknown: the track is its own artist); ``labels``
    (n_tracks, n_tags) are aligned with its rows, classification tags as 0/1 and regression tags in [0, 1].
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.shape != (3,) or (fractions < 0).any() or abs(fractions.sum() - 1.0) > 1e-6:
        raise ValueError(f"splits.py: fractions {tuple(fractions)} must be three shares (train, valid, test) summing to 1")
    if "artist" not in tracks.columns:
        raise ValueError(f"splits.py: tracks need an 'artist' column; got columns {list(tracks.columns)}")
    n = len(tracks)
    label_array = _label_array(labels, n, "split")
    artist = tracks["artist"].astype(str).to_numpy()
    unknown = artist == ""
    artist = np.where(unknown, np.char.add("\x00track:", tracks.index.astype(str).to_numpy()), artist)
    codes, names = pd.factorize(artist, sort=True)
    rows = sparse.csr_matrix((np.ones(n, dtype=np.float32), (codes, np.arange(n))), shape=(len(names), n))
    counts = _strata(label_array, rows)  # (artists, strata)
    sizes = np.bincount(codes, minlength=len(names)).astype(np.float64)
    rng = np.random.default_rng(seed)
    assignment = _greedy_assign(counts, sizes, fractions, _rarest_first(counts, rng), rng)
    _refine(assignment, counts, sizes, fractions, rng)
    _fill_empty_splits(assignment, sizes, fractions)
    return pd.Series(np.array(SPLIT_NAMES)[assignment[codes]], index=tracks.index, name="split")


def _fill_empty_splits(assignment: np.ndarray, sizes: np.ndarray, fractions: np.ndarray) -> None:
    """With few artists a wanted split can end up empty: give it the smallest artist of the largest split."""
    for split in range(3):
        if fractions[split] > 0 and not (assignment == split).any() and len(assignment) >= 3:
            totals = np.bincount(assignment, weights=sizes, minlength=3)
            donor = int(np.argmax(totals))
            candidates = np.nonzero(assignment == donor)[0]
            if len(candidates) > 1:
                assignment[candidates[np.argmin(sizes[candidates])]] = split


# Nested blocks of the training order: every prefix of 1/64, 1/32, ..., 1/2 of it is a union of blocks.
NESTED_BLOCKS = np.array([1, 1, 2, 4, 8, 16, 32], dtype=np.float64) / 64


def nested_train_order(train_ids, labels, *, seed: int = 0) -> list[str]:
    """A fixed order of the training tracks whose every prefix keeps the tag proportions.

    Tracks are dealt into nested blocks (1/64, 1/64, 1/32, ... 1/2 of the set) by the same
    stratified assignment as the splits, so the first 1/64, 1/32, ..., 1/2 of the order are each
    stratified; inside a block, each track's rarest positive tag spreads those tracks evenly.
    """
    train_ids = [str(t) for t in train_ids]
    label_array = _label_array(labels, len(train_ids), "training")
    if not train_ids:
        return []
    n = len(train_ids)
    counts = _strata(label_array, sparse.identity(n, dtype=np.float32, format="csr"))
    rng = np.random.default_rng(seed)
    block = _greedy_assign(counts, np.ones(n), NESTED_BLOCKS, _rarest_first(counts, rng), rng, chunks=2000)
    present = counts > 0
    frequency = present.sum(axis=0)
    stratum = np.where(present.any(axis=1), np.argmin(np.where(present, frequency, np.iinfo(np.int64).max), axis=1), -1)
    shuffled = rng.permutation(n)
    frame = pd.DataFrame({"block": block[shuffled], "stratum": stratum[shuffled]})
    groups = frame.groupby(["block", "stratum"])
    position = (groups.cumcount().to_numpy() + rng.random(n)) / groups["stratum"].transform("size").to_numpy()
    order = shuffled[np.lexsort((position, block[shuffled]))]
    return [train_ids[i] for i in order]
