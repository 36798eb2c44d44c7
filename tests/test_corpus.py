"""The embedded corpus: determinism, tags a listener could check, tag kinds and the Collection."""
from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys

import librosa
import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from study.config import DataConfig
from study.data.corpus import (EXCLUSIVE_GROUPS, REGRESSION_TAGS, TAGS, clip_plan, corpus_table, generate_clip,
                               listen_examples, load_corpus, track_id)
from study.data.corpus import taxonomy as tx
from study.data.corpus.arrange import arrange
from study.data.corpus.instruments import VOWELS, VOWEL_NAMES, vowel_tables
from study.data.corpus.plan import plan_clips, plan_row
from study.data.corpus.render import _STYLES, render_clip
from study.data.corpus.score import make_frame

SEED = 0
SR = 16000
SECONDS = 6.0
TABLE_SIZE = 20_000


@pytest.fixture(scope="module")
def table():
    tracks, labels = corpus_table(SEED, TABLE_SIZE)
    return tracks, labels, plan_clips(SEED, np.arange(TABLE_SIZE))


def column(labels: np.ndarray, tag: str) -> np.ndarray:
    return labels[:, TAGS.index(tag)]


def pick(mask: np.ndarray, n: int) -> np.ndarray:
    """n clips spread over the table (not n neighbours of one artist)."""
    found = np.nonzero(mask)[0]
    assert len(found) >= n, f"only {len(found)} clips match"
    return found[np.linspace(0, len(found) - 1, n).astype(int)]


_RENDERED: dict = {}


def render(plans: dict, index: int, stems: bool = False):
    if index not in _RENDERED:
        _RENDERED[index] = render_clip(plan_row(plans, index), SECONDS, SR, return_stems=True)
    mix, parts = _RENDERED[index]
    return (mix, parts) if stems else mix


# ---- determinism and format ----------------------------------------------------------------------------
def test_same_seed_and_index_give_identical_audio_and_tags():
    audio_a, tags_a = generate_clip(SEED, 1234, 2.0)
    audio_b, tags_b = generate_clip(SEED, 1234, 2.0)
    assert audio_a.tobytes() == audio_b.tobytes()
    assert tags_a == tags_b


def test_other_index_or_seed_gives_other_audio():
    audio, _ = generate_clip(SEED, 1234, 2.0)
    assert not np.allclose(audio, generate_clip(SEED, 1235, 2.0)[0])
    assert not np.allclose(audio, generate_clip(SEED + 1, 1234, 2.0)[0])


def test_audio_is_identical_in_a_fresh_process():
    code = ("import hashlib; from study.data.corpus import generate_clip; "
            "print(hashlib.sha1(generate_clip(3, 77, 2.0)[0].tobytes()).hexdigest())")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert fresh == hashlib.sha1(generate_clip(3, 77, 2.0)[0].tobytes()).hexdigest()


@pytest.mark.parametrize("seconds, sample_rate", [(SECONDS, SR), (0.5, SR), (1.0, 22050)])
def test_clip_is_mono_float32_in_range(seconds, sample_rate):
    audio, tags = generate_clip(SEED, 42, seconds, sample_rate)
    assert audio.dtype == np.float32 and audio.shape == (int(round(seconds * sample_rate)),)
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    assert np.sqrt(np.mean(audio ** 2)) > 1e-3, "silent clip"
    assert set(tags) == set(TAGS)


def test_tags_do_not_depend_on_corpus_size_or_on_rendering(table):
    _, labels, _ = table
    _, small = corpus_table(SEED, 150)
    np.testing.assert_array_equal(small, labels[:150])
    _, tags = generate_clip(SEED, 9_999, 0.5)
    np.testing.assert_array_equal([tags[t] for t in TAGS], labels[9_999])
    assert clip_plan(SEED, 9_999)["artist"] == plan_clips(SEED, np.arange(10_000))["artist"][-1]


# ---- every tag is audible -------------------------------------------------------------------------------
def test_instrument_and_voice_tags_are_the_audible_stems(table):
    _, labels, plans = table
    stem_tag = {stem: stem for stem in tx.INSTRUMENTS + ("percussion", "choir")}
    for index in pick(np.ones(TABLE_SIZE, dtype=bool), 30):
        mix, stems = render(plans, index, stems=True)
        loudest = max(np.sqrt(np.mean(s ** 2)) for s in stems.values())
        heard = {name for name, s in stems.items() if np.sqrt(np.mean(s ** 2)) > 0.1 * loudest}  # within 20 dB
        assert heard == set(stems), f"clip {index}: stems too quiet to hear: {set(stems) - heard}"
        for stem, tag in stem_tag.items():
            assert (stem in stems) == bool(labels[index, TAGS.index(tag)]), f"clip {index}: {tag}"
        drums = labels[index, TAGS.index("drum_kit")] + labels[index, TAGS.index("electronic_drums")]
        assert ("drums" in stems) == bool(drums)
        assert ("vocals" in stems) == bool(plans["lead_vocals"][index])


def _pulse_clarity(audio: np.ndarray) -> float:
    """Peak of the onset envelope's autocorrelation at beat-like lags (0.25-2 s)."""
    envelope = librosa.onset.onset_strength(y=audio, sr=SR, hop_length=256)
    centred = envelope - envelope.mean()
    autocorrelation = np.correlate(centred, centred, "full")[len(centred) - 1:]
    return float(autocorrelation[int(0.25 * SR / 256):int(2 * SR / 256)].max() / autocorrelation[0])


def _percussive_share(audio: np.ndarray) -> float:
    """Share of the energy in the percussive part of a harmonic/percussive separation."""
    harmonic, percussive = librosa.decompose.hpss(librosa.stft(audio, n_fft=1024))
    return float((np.abs(percussive) ** 2).sum() / ((np.abs(harmonic) ** 2).sum() + (np.abs(percussive) ** 2).sum()))


def test_drum_clips_are_percussive_with_a_clearer_pulse(table):
    _, labels, plans = table
    drums = (column(labels, "drum_kit") + column(labels, "electronic_drums")) > 0
    chosen = np.concatenate([pick(drums, 12), pick(~drums, 12)])
    assert roc_auc_score(drums[chosen], [_percussive_share(render(plans, i)) for i in chosen]) >= 0.85
    assert roc_auc_score(drums[chosen], [_pulse_clarity(render(plans, i)) for i in chosen]) >= 0.6


def test_tempo_tag_matches_the_tempo_librosa_hears(table):
    _, labels, plans = table
    chosen = pick((plans["drums"] > 0) & (plans["meter"] == 0), 16)
    bpm = plans["bpm"][chosen]
    np.testing.assert_allclose(column(labels, "tempo")[chosen], np.clip((bpm - 50) / 150, 0, 1), atol=1e-6)
    estimated = np.array([librosa.feature.tempo(y=render(plans, i), sr=SR)[0] for i in chosen])
    ratio = estimated / bpm
    error = np.min(np.abs(np.log2(ratio[:, None] * np.array([[1.0, 2.0, 0.5]]))), axis=1)  # octave errors allowed
    assert np.mean(error < np.log2(1.08)) >= 0.75, np.round(np.c_[bpm, estimated], 1)


def test_distorted_guitars_add_harmonics(table):
    _, labels, plans = table
    guitar = column(labels, "guitar") > 0
    distorted = column(labels, "guitar_distortion") > 0
    chosen = np.concatenate([pick(distorted, 12), pick(guitar & ~distorted, 12)])
    mid = (librosa.fft_frequencies(sr=SR, n_fft=1024) > 300) & (librosa.fft_frequencies(sr=SR, n_fft=1024) < 4000)
    flatness = [np.mean(librosa.feature.spectral_flatness(S=np.abs(librosa.stft(render(plans, i), n_fft=1024))[mid]))
                for i in chosen]  # dense clipping harmonics fill the mid band between the partials
    assert roc_auc_score(distorted[chosen], flatness) >= 0.8
    crest = [np.abs(g).max() / np.sqrt(np.mean(g ** 2)) for g in (render(plans, i, True)[1]["guitar"] for i in chosen)]
    assert roc_auc_score(distorted[chosen], -np.array(crest)) >= 0.9  # clipping flattens the peaks


def test_swing_moves_offbeats_late(table):
    _, labels, plans = table
    swung = (column(labels, "swing") + column(labels, "shuffle")) > 0
    grid = np.array([style.grid for style in _STYLES])[plans["subgenre"]]
    usable = (plans["meter"] == 0) & (grid == 2) & (plans["drums"] > 0)
    chosen = np.concatenate([pick(usable & swung, 8), pick(usable & ~swung, 8)])
    offbeat = []
    for i in chosen:
        envelope = librosa.onset.onset_strength(y=render(plans, i), sr=SR, hop_length=64, n_fft=512)
        beat = 60.0 / plans["bpm"][i]
        lead_in = plans["start"][i] * plans["beats"][i] * beat
        phase = ((np.arange(len(envelope)) * 64 / SR + lead_in) / beat) % 1.0
        centres = np.arange(0.42, 0.72, 0.04)  # between the straight and the swung 16ths
        strength = [envelope[np.abs(phase - c) < 0.02].mean() for c in centres]
        offbeat.append(centres[int(np.argmax(strength))])  # straight: 1/2 beat, swung: 2/3
    assert roc_auc_score(swung[chosen], offbeat) >= 0.9


def test_live_clips_have_an_audience_under_the_music(table):
    _, labels, plans = table
    live = column(labels, "live") > 0
    chosen = np.concatenate([pick(live, 10), pick(~live, 10)])
    speech_band = (librosa.fft_frequencies(sr=SR, n_fft=1024) > 300) & (librosa.fft_frequencies(sr=SR, n_fft=1024) < 3000)
    floor = []
    for i in chosen:  # the crowd's noise fills the gaps between the partials
        power = np.log10(np.abs(librosa.stft(render(plans, i), n_fft=1024))[speech_band] ** 2 + 1e-12)
        floor.append(np.percentile(power, 10) - np.median(power))
    assert roc_auc_score(live[chosen], floor) >= 0.85


_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _chroma_from_tonic(audio: np.ndarray, key: int) -> np.ndarray:
    return np.roll(librosa.feature.chroma_stft(y=audio, sr=SR, n_fft=2048, hop_length=512).mean(axis=1), -key)


def test_major_and_minor_tags_match_the_key_profile(table):
    _, labels, plans = table
    major = column(labels, "major") > 0
    chosen = np.concatenate([pick(major, 10), pick(~major, 10)])
    heard = [np.corrcoef(c, _MAJOR_PROFILE)[0, 1] > np.corrcoef(c, _MINOR_PROFILE)[0, 1]
             for c in (_chroma_from_tonic(render(plans, i), plans["key"][i]) for i in chosen)]
    assert np.mean(np.array(heard) == major[chosen]) >= 0.75


def test_chromatic_clips_leave_the_key(table):
    _, labels, plans = table
    chromatic = column(labels, "chromatic") > 0
    chosen = np.concatenate([pick(chromatic, 12), pick(~chromatic, 12)])
    outside = []
    for i in chosen:
        chroma = _chroma_from_tonic(render(plans, i), plans["key"][i])
        scale = [0, 2, 4, 5, 7, 9, 11] if plans["major"][i] else [0, 2, 3, 5, 7, 8, 10, 11]
        outside.append(1.0 - chroma[scale].sum() / chroma.sum())
    assert roc_auc_score(chromatic[chosen], outside) >= 0.75


def test_brightness_and_energy_follow_the_spectrum_and_loudness(table):
    _, labels, plans = table
    chosen = pick(np.ones(TABLE_SIZE, dtype=bool), 30)
    centroid = [np.mean(librosa.feature.spectral_centroid(y=render(plans, i), sr=SR)) for i in chosen]
    loudness = [np.sqrt(np.mean(render(plans, i) ** 2)) for i in chosen]
    assert spearmanr(column(labels, "brightness")[chosen], centroid)[0] >= 0.4
    assert spearmanr(column(labels, "energy")[chosen], loudness)[0] >= 0.9


def test_sung_vowels_have_their_formants():
    f0 = np.full(len(VOWEL_NAMES), 110.0)
    tables = vowel_tables(f0, np.arange(len(VOWEL_NAMES)), 1.0, SR)
    harmonics = np.abs(np.fft.rfft(tables, axis=1))[:, 1:40]  # harmonic h at bin h
    for row, name in enumerate(VOWEL_NAMES):
        first, second = VOWELS[name][:2]
        low = harmonics[row, :int(1000 / 110)]  # below 1 kHz: the first formant
        assert abs((np.argmax(low) + 1) * 110 - first) <= 110, name
        band = slice(int((second - 400) / 110), int((second + 400) / 110))
        assert harmonics[row, band].max() > 2 * np.median(harmonics[row, :30]), name


def test_syncopated_clips_play_more_offbeat_onsets(table):
    _, _, plans = table
    wins = 0
    chosen = pick(plans["meter"] == 0, 10)
    for i in chosen:
        counts = []
        for syncopated in (False, True):
            row = plan_row(plans, i)
            row["syncopation"] = syncopated
            rng = np.random.default_rng(0)
            frame = make_frame(row, _STYLES[row["subgenre"]], 8, rng)
            parts = arrange(row, _STYLES[row["subgenre"]], frame, lambda stream: 0.5, rng)
            ticks = np.concatenate([p.notes.tick for p in parts if p.notes is not None and p.stem != "sitar"])
            counts.append(np.mean((ticks % 12) != 0))
        wins += counts[1] > counts[0]
    assert wins >= 9


# ---- kinds of tag ---------------------------------------------------------------------------------------------
def test_regression_tags_spread_over_zero_to_one(table):
    _, labels, _ = table
    for tag in REGRESSION_TAGS:
        values = column(labels, tag)
        assert values.min() >= 0 and values.max() <= 1
        assert values.std() >= 0.15, tag
        shares = np.histogram(values, bins=5, range=(0, 1))[0] / len(values)
        assert (shares >= 0.05).sum() >= 4, (tag, shares)


def test_binary_tags_are_bimodal_popular_ones_common_most_rare(table):
    _, labels, _ = table
    binary = [t for t in TAGS if t not in REGRESSION_TAGS]
    values = labels[:, [TAGS.index(t) for t in binary]]
    assert set(np.unique(values)) <= {0.0, 1.0}
    rates = values.mean(axis=0)
    assert rates.min() >= 0.005, binary[int(np.argmin(rates))]  # every tag has positives
    assert rates.max() < 1.0
    assert (rates >= 0.3).sum() >= 5, "popular tags"
    assert np.mean(rates < 0.1) >= 0.5, "most tags rare"


def test_mutually_exclusive_tags_never_co_occur(table):
    _, labels, _ = table
    for group in EXCLUSIVE_GROUPS:
        together = labels[:, [TAGS.index(t) for t in group]].sum(axis=1)
        assert together.max() <= 1, group
    assert (labels[:, [TAGS.index(g) for g in tx.GENRES]].sum(axis=1) == 1).all()
    for genre, sub, _, _ in tx.SUBGENRES:
        if sub != genre:
            assert (column(labels, genre)[column(labels, sub) > 0] == 1).all(), sub
    implied = {"low_register_vocals": "vocals", "high_register_vocals": "vocals", "rapped_vocals": "vocals",
               "choir": "vocals", "acoustic_guitar": "guitar", "guitar_distortion": "guitar",
               "guitar_distortion ": "distortion", "four_on_the_floor": "duple_meter"}
    for tag, parent in implied.items():
        assert (column(labels, parent)[column(labels, tag.strip()) > 0] == 1).all(), (tag, parent)


def test_artists_keep_their_style(table):
    tracks, _, plans = table
    groups = tracks.groupby("artist")
    assert TABLE_SIZE / 12 <= groups.ngroups <= TABLE_SIZE / 5
    assert (groups["subgenre"].nunique() == 1).all()
    spread = groups["bpm"].agg(lambda bpm: bpm.max() / bpm.min())
    assert spread.quantile(0.9) <= 1.15  # an artist keeps to a tempo


# ---- the collection ---------------------------------------------------------------------------------------------
def test_load_corpus_builds_the_collection():
    collection = load_corpus(DataConfig(corpus_size=200, corpus_seed=SEED, clip_seconds=1.0))
    assert collection.name == "corpus" and len(collection) == 200
    assert collection.regression_tags == frozenset(REGRESSION_TAGS) and collection.tags == list(TAGS)
    assert {"version", "seed", "size", "clip_seconds"} <= set(collection.description)
    assert set(collection.tracks.columns) >= {"split", "artist", "path", "clip_index", "genre", "bpm"}
    assert sorted(collection.train_order) == sorted(collection.ids("train"))
    first = collection.tracks.index[17]
    loader = pickle.loads(pickle.dumps(collection.loader))
    np.testing.assert_array_equal(loader(first, collection.tracks.loc[first]), generate_clip(SEED, 17, 1.0)[0])
    assert first == track_id(17)
    with pytest.raises(ValueError, match="corpus_size"):
        load_corpus(DataConfig(corpus_size=50))


def test_listen_examples_pick_positives_and_a_ladder():
    collection = load_corpus(DataConfig(corpus_size=300, corpus_seed=SEED, clip_seconds=1.0))
    ids = listen_examples(collection, "piano", 3)
    assert len(ids) == 3 and (collection.label_rows(ids)[:, TAGS.index("piano")] == 1).all()
    ladder = collection.label_rows(listen_examples(collection, "tempo", 4))[:, TAGS.index("tempo")]
    assert len(ladder) == 4 and (np.diff(ladder) >= 0).all() and ladder[-1] > ladder[0]
    with pytest.raises(ValueError, match="no tag"):
        listen_examples(collection, "kazoo")
