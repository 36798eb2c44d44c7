"""Stratified artist-filtered splits and nested training orders (paper §3, footnote 3, §5.1)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from study.config import DataConfig
from study.data.corpus import REGRESSION_TAGS, load_corpus
from study.data.splits import artist_filtered_split, nested_train_order


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(DataConfig(corpus_size=8000, corpus_seed=1, clip_seconds=1.0))


def _binary_columns(collection):
    return [j for j, t in enumerate(collection.tags) if t not in REGRESSION_TAGS]


def test_no_artist_in_two_splits_and_shares_near_80_10_10(corpus):
    splits_per_artist = corpus.tracks.groupby("artist")["split"].nunique()
    assert (splits_per_artist == 1).all()
    shares = corpus.tracks["split"].value_counts(normalize=True)
    np.testing.assert_allclose([shares["train"], shares["valid"], shares["test"]], [0.8, 0.1, 0.1], atol=0.02)


def test_splits_are_stratified(corpus):
    overall = corpus.labels.mean(axis=0)
    for split in ("valid", "test"):
        rates = corpus.label_rows(corpus.ids(split)).mean(axis=0)
        for j in _binary_columns(corpus):
            if overall[j] >= 0.2:  # common tags: within a few points
                assert abs(rates[j] - overall[j]) <= 0.035, (split, corpus.tags[j], rates[j], overall[j])
            elif overall[j] * len(corpus) >= 160:  # rarer tags with about 20 artists or more: within half
                assert abs(rates[j] - overall[j]) <= 0.5 * overall[j], (split, corpus.tags[j], rates[j], overall[j])
    for tag in REGRESSION_TAGS:  # continuous tags are stratified by thirds
        j = corpus.tags.index(tag)
        means = [corpus.label_rows(corpus.ids(split))[:, j].mean() for split in ("train", "valid", "test")]
        assert np.ptp(means) < 0.03, (tag, means)


def test_stratification_beats_a_random_artist_split(corpus):
    """The iterative stratification must do better than assigning artists at random."""
    artists = corpus.tracks["artist"].unique()
    rng = np.random.default_rng(0)
    shuffled = dict(zip(artists, rng.choice(["train", "valid", "test"], size=len(artists), p=[0.8, 0.1, 0.1])))
    random_split = corpus.tracks["artist"].map(shuffled).to_numpy()
    columns = _binary_columns(corpus)
    overall = corpus.labels[:, columns].mean(axis=0)

    def deviation(split_names):
        return np.mean([np.abs(corpus.labels[split_names == s][:, columns].mean(axis=0) - overall).mean()
                        for s in ("valid", "test")])
    assert deviation(corpus.tracks["split"].to_numpy()) < 0.5 * deviation(random_split)


def test_valid_and_test_stay_fixed_while_train_grows_by_nesting(corpus):
    cfg = DataConfig(corpus_size=8000, corpus_seed=1, clip_seconds=1.0)
    again = load_corpus(dataclasses.replace(cfg, train_size=500))
    for split in ("valid", "test"):
        assert corpus.ids(split) == again.ids(split)
    small, large, full = corpus.ids("train", 300), corpus.ids("train", 1200), corpus.ids("train")
    assert large[:300] == small and full[:1200] == large
    assert set(full) == set(corpus.tracks.index[corpus.tracks["split"] == "train"])


def test_nested_prefixes_keep_the_tag_proportions(corpus):
    train = corpus.ids("train")
    columns = _binary_columns(corpus)
    full = corpus.label_rows(train)[:, columns].mean(axis=0)
    rng = np.random.default_rng(0)
    for share in (1 / 8, 0.1, 1 / 4):
        size = int(len(train) * share)
        nested = np.abs(corpus.label_rows(train[:size])[:, columns].mean(axis=0) - full)
        shuffled = np.abs(corpus.label_rows(list(rng.permutation(train)[:size]))[:, columns].mean(axis=0) - full)
        assert nested.mean() < 0.7 * shuffled.mean(), share  # better than a random subset of that size
        assert nested.max() <= 0.02, (share, corpus.tags[columns[int(np.argmax(nested))]])
    prefix = corpus.label_rows(train[: len(train) // 8])[:, columns].sum(axis=0)
    assert (prefix[full * len(train) >= 20] > 0).all()  # rare tags are not left out of small training sets


def test_splits_and_orders_are_seeded():
    tracks = pd.DataFrame({"artist": [f"a{i // 4}" for i in range(400)]}, index=[f"t{i}" for i in range(400)])
    labels = (np.random.default_rng(0).random((400, 6)) < 0.2).astype(np.float32)
    first = artist_filtered_split(tracks, labels, seed=3)
    assert first.equals(artist_filtered_split(tracks, labels, seed=3))
    assert not first.equals(artist_filtered_split(tracks, labels, seed=4))
    ids = list(tracks.index)
    assert nested_train_order(ids, labels, seed=3) == nested_train_order(ids, labels, seed=3)
    assert nested_train_order(ids, labels, seed=3) != nested_train_order(ids, labels, seed=4)
    assert sorted(nested_train_order(ids, labels, seed=3)) == sorted(ids)


def test_unknown_artists_regression_labels_and_tiny_inputs():
    tracks = pd.DataFrame({"artist": [""] * 30}, index=[f"t{i}" for i in range(30)])
    labels = np.random.default_rng(1).random((30, 2)).astype(np.float32)  # regression tags only
    split = artist_filtered_split(tracks, labels, seed=0)
    assert set(split) == {"train", "valid", "test"}  # each unknown artist is a group of one
    three = pd.DataFrame({"artist": ["a", "a", "b", "c", "c", "c"]}, index=list("uvwxyz"))
    split = artist_filtered_split(three, np.zeros((6, 1)), seed=0)
    assert set(split) == {"train", "valid", "test"} and split["u"] == split["v"]


def test_bad_arguments_are_explained():
    tracks = pd.DataFrame({"artist": ["a", "b", "c"]}, index=["x", "y", "z"])
    with pytest.raises(ValueError, match="fractions"):
        artist_filtered_split(tracks, np.zeros((3, 1)), fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="artist"):
        artist_filtered_split(tracks.rename(columns={"artist": "band"}), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="do not match"):
        artist_filtered_split(tracks, np.zeros((4, 1)))
    with pytest.raises(ValueError, match="do not match"):
        nested_train_order(["x", "y"], np.zeros((3, 1)))
