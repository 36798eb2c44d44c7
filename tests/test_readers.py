"""Readers of the real datasets (study/data/{files,mtt,msd,jamendo,catalogue}.py) on tiny fixtures.

Each test writes the dataset's own layout into tmp_path (quoted TSV, Python-2 pickles, CRLF
split files, numpy split arrays) with 1 s generated mp3 clips, and checks what a user would
trip over: counts per split, labels landing on the right tag *name* whatever the column order,
the broken-clip and untagged-clip drops, the sota row indexing, missing and corrupt audio.
"""
from __future__ import annotations

import csv
import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile

from study.audio import AudioError
from study.config import DataConfig
from study.data import files, jamendo, load_collection, msd, mtt
from study.data.catalogue import load_catalogue

RATE = 16000


def write_mp3(path: Path, seconds: float = 1.0, pitch: float = 220.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * RATE)) / RATE
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32), RATE, format="MP3")


def write_quoted_tsv(path: Path, header: list[str], rows: list[list]) -> None:
    """MTT's format: tab-separated, every field double-quoted."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[str(v) for v in row] for row in rows])


def labels_by_name(collection, track_id: str) -> dict[str, float]:
    return dict(zip(collection.tags, collection.label_rows([track_id])[0]))


# ---- FileLoader and the missing-file report --------------------------------------------------------
def test_file_loader_pickles_decodes_and_names_bad_files(tmp_path):
    write_mp3(tmp_path / "a" / "good.mp3")
    (tmp_path / "a" / "corrupt.mp3").write_bytes(b"ID3" + bytes(range(256)) * 4)
    loader = pickle.loads(pickle.dumps(files.FileLoader(tmp_path)))
    audio = loader("good", {"path": "a/good.mp3"})
    assert audio.dtype == np.float32 and audio.ndim == 1 and abs(len(audio) - RATE) < 0.1 * RATE
    with pytest.raises(AudioError, match="corrupt.mp3"):
        loader("corrupt", {"path": "a/corrupt.mp3"})
    with pytest.raises(AudioError, match="absent.mp3"):
        loader("absent", {"path": "a/absent.mp3"})


def test_check_audio_files_reports_missing_and_refuses_a_wrong_root(tmp_path, capsys):
    write_mp3(tmp_path / "x.mp3")
    missing = files.check_audio_files("demo", tmp_path, ["x.mp3", "y.mp3"])
    assert missing == [str(tmp_path / "y.mp3")]
    assert "y.mp3" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="none of the 2 audio files"):
        files.check_audio_files("demo", tmp_path / "elsewhere", ["x.mp3", "y.mp3"])


# ---- MagnaTagATune ----------------------------------------------------------------------------------
EXTRA_TAGS = ["jazz", "bongos", "xylophone", "zither"]  # the 'other 138' tags, rarer than the top 50
# (clip_id, mp3 folder); clip ids have gaps and never equal annotation row numbers
MTT_CLIPS = [(2, "0"), (6, "3"), (10, "b"), (14, "c"), (19, "c"), (25, "d"), (29, "f"), (33, "a"),
             (35644, "9"), (55753, "e"), (57881, "f"), (40, "1"), (44, "c"), (48, "e"), (51, "7")]
UNTAGGED = {40, 44, 48}  # no top-50 tag (40 has a rare one)


def mtt_truth() -> dict[int, dict[str, int]]:
    """clip -> tag -> 0/1: every top-50 tag on >= 2 clips, columns pairwise distinct."""
    rng = np.random.default_rng(7)
    tagged = [c for c, _ in MTT_CLIPS if c not in UNTAGGED]
    while True:
        top = (rng.random((len(tagged), len(mtt.MTT_TOP50))) < 0.35).astype(int)
        if top.sum(axis=0).min() >= 2 and len({tuple(col) for col in top.T}) == top.shape[1]:
            break
    truth = {c: {t: 0 for t in [*mtt.MTT_TOP50, *EXTRA_TAGS]} for c, _ in MTT_CLIPS}
    for i, clip in enumerate(tagged):
        truth[clip].update(zip(mtt.MTT_TOP50, top[i]))
    truth[40]["jazz"] = 1
    return truth


def mtt_path(clip: int, folder: str) -> str:
    return f"{folder}/artist{clip % 4}_band-some_album-01-song_{clip}-0-29.mp3"


def make_mtt(root: Path, *, seed: int = 0, audio_dir: str = "") -> dict:
    """annotations_final.csv (tag columns shuffled), clip_info_final.csv and the mp3 folders."""
    truth = mtt_truth()
    tags = [*mtt.MTT_TOP50, *EXTRA_TAGS]
    tags = [tags[i] for i in np.random.default_rng(seed).permutation(len(tags))]
    root.mkdir(parents=True, exist_ok=True)
    write_quoted_tsv(root / "annotations_final.csv", ["clip_id", *tags, "mp3_path"],
                     [[c, *[truth[c][t] for t in tags], mtt_path(c, f)] for c, f in MTT_CLIPS])
    info_header = ["clip_id", "track_number", "title", "artist", "album", "url", "segmentStart", "segmentEnd",
                   "original_url", "mp3_path"]
    write_quoted_tsv(root / "clip_info_final.csv", info_header,
                     [[c, 1, f'Song "{c}"', f"Artist {c % 4}", "Some Album", "http://x", 0, 29, "http://y",
                       mtt_path(c, f)] for c, f in MTT_CLIPS])
    for clip, folder in MTT_CLIPS:
        if clip != 35644:  # missing in the real dataset too
            write_mp3(root / audio_dir / mtt_path(clip, folder), pitch=200 + clip % 300)
    return truth


def expected_counts(drop: set[int]) -> dict[str, int]:
    counts = {"train": 0, "valid": 0, "test": 0}
    for clip, folder in MTT_CLIPS:
        if clip not in drop:
            counts[mtt.FOLDER_SPLIT[folder]] += 1
    return counts


def test_mtt_top_tags_break_ties_by_name_not_column():
    labels = np.array([[1, 1, 1, 0], [1, 0, 1, 1], [0, 0, 1, 1]], dtype=np.float32)
    tags = ["metal", "b", "a", "female voice"]
    order = [2, 0, 3, 1]
    assert mtt.top_tags(tags, labels, 3) == ["a", "female voice", "metal"]
    assert mtt.top_tags([tags[j] for j in order], labels[:, order], 3) == ["a", "female voice", "metal"]


@pytest.mark.parametrize("seed", [0, 1])
def test_mtt_pons2018_counts_labels_by_name_and_broken_clips(tmp_path, seed, capsys):
    truth = make_mtt(tmp_path, seed=seed, audio_dir="mp3" if seed else "")
    collection = mtt.load_mtt(DataConfig(dataset="mtt", data_root=str(tmp_path)))
    broken = {int(c) for c in mtt.BROKEN_CLIPS}
    assert collection.counts() == expected_counts(broken)
    assert "loaded train 6, valid 3, test 3 tracks" in capsys.readouterr().out
    assert sorted(collection.tags) == sorted(mtt.MTT_TOP50)
    assert not set(collection.tracks.index) & set(mtt.BROKEN_CLIPS)
    for clip in (2, 29, 40, 51):
        got = labels_by_name(collection, str(clip))
        assert got == {t: float(truth[clip][t]) for t in mtt.MTT_TOP50}, clip
    assert collection.tracks.loc["6", "artist"] == "Artist 2"  # from clip_info_final.csv, not the file name
    assert collection.description["missing"] == []
    assert len(collection.load_audio("14")) > 0.9 * RATE


def test_mtt_clean_drops_clips_without_top50_tags(tmp_path):
    make_mtt(tmp_path)
    collection = mtt.load_mtt(DataConfig(dataset="mtt", data_root=str(tmp_path), split_convention="clean"))
    assert collection.counts() == expected_counts({int(c) for c in mtt.BROKEN_CLIPS} | UNTAGGED)
    assert (collection.labels.sum(axis=1) > 0).all()
    assert collection.description["untagged_dropped"] == len(UNTAGGED)


def test_mtt_missing_audio_is_reported_and_skipped(tmp_path, capsys):
    make_mtt(tmp_path)
    gone = tmp_path / mtt_path(25, "d")
    gone.unlink()
    collection = mtt.load_mtt(DataConfig(dataset="mtt", data_root=str(tmp_path)))
    assert collection.description["missing"] == [str(gone)]
    assert "25" not in collection.tracks.index
    left_out = collection.excluded_table()  # what every run of this collection lists in excluded_clips.tsv
    assert left_out[["track_id", "split", "path", "reason"]].values.tolist() == [["25", "test", mtt_path(25, "d"),
                                                                                "missing"]]
    assert collection.counts()["test"] == expected_counts({int(c) for c in mtt.BROKEN_CLIPS})["test"] - 1
    assert str(gone) in capsys.readouterr().out


def test_mtt_wrong_data_root_says_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotations_final.csv"):
        mtt.load_mtt(DataConfig(dataset="mtt", data_root=str(tmp_path)))
    with pytest.raises(ValueError, match="needs data_root"):
        mtt.load_mtt(DataConfig(dataset="mtt"))
    make_mtt(tmp_path)
    with pytest.raises(ValueError, match="unknown split_convention"):
        mtt.load_mtt(DataConfig(dataset="mtt", data_root=str(tmp_path), split_convention="folds"))


def write_musicnn_mtt(root: Path, truth: dict, order: list[str]) -> None:
    """index_mtt.tsv + {train,val,test}_gt_mtt.tsv with vectors in ``order``."""
    index = root / "index"
    index.mkdir()
    (index / "index_mtt.tsv").write_text("".join(f"{c}\t{mtt_path(c, f)}\n" for c, f in MTT_CLIPS))
    for split, prefix in (("train", "train"), ("valid", "val"), ("test", "test")):
        lines = [f"{c}\t{[float(truth[c][t]) for t in order]}\n" for c, f in MTT_CLIPS
                 if mtt.FOLDER_SPLIT[f] == split and str(c) not in mtt.BROKEN_CLIPS]
        (index / f"{prefix}_gt_mtt.tsv").write_text("".join(lines))


def test_mtt_musicnn_files_named_by_content_when_the_order_differs(tmp_path, capsys):
    truth = make_mtt(tmp_path)
    swapped = list(mtt.MTT_TOP50)
    i, j = swapped.index("metal"), swapped.index("female voice")
    swapped[i], swapped[j] = swapped[j], swapped[i]  # the other published order of the tie
    write_musicnn_mtt(tmp_path, truth, swapped)
    collection = mtt.load_mtt(DataConfig(dataset="mtt", data_root=str(tmp_path), split_convention="musicnn"))
    assert collection.counts() == expected_counts({int(c) for c in mtt.BROKEN_CLIPS})
    assert "named by content" in capsys.readouterr().out
    for clip in (2, 14, 29):
        assert labels_by_name(collection, str(clip)) == {t: float(truth[clip][t]) for t in mtt.MTT_TOP50}


def test_mtt_sota_split_indexes_annotation_rows_not_clip_ids(tmp_path):
    truth = make_mtt(tmp_path)
    split_dir = tmp_path / "split" / "mtat"
    split_dir.mkdir(parents=True)
    tags = list(reversed(mtt.MTT_TOP50))
    np.save(split_dir / "tags.npy", np.array(tags))
    np.save(split_dir / "binary.npy", np.array([[truth[c][t] for t in tags] for c, _ in MTT_CLIPS]))
    rows = {"train": [0, 1, 2], "valid": [3, 12], "test": [5, 6]}
    for split, chosen in rows.items():
        np.save(split_dir / f"{split}.npy", np.array([f"{r}\t{mtt_path(*MTT_CLIPS[r])}" for r in chosen]))
    collection = mtt.load_mtt(DataConfig(dataset="mtt", data_root=str(tmp_path), split_convention="sota"))
    assert collection.counts() == {s: len(r) for s, r in rows.items()}
    assert collection.ids("valid") == ["14", "44"]  # rows 3 and 12 hold clips 14 and 44
    assert labels_by_name(collection, "29") == {t: float(truth[29][t]) for t in mtt.MTT_TOP50}
    np.save(split_dir / "valid.npy", np.array([f"14\t{mtt_path(14, 'c')}"]))  # a clip_id where a row belongs
    with pytest.raises(ValueError, match="ROWS"):
        mtt.load_mtt(DataConfig(dataset="mtt", data_root=str(tmp_path), split_convention="sota"))


# ---- Million Song Dataset ---------------------------------------------------------------------------
class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes, as cPickle did, so only latin1 loading works."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        size = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([size]) if size < 256 else pickle.BINSTRING + struct.pack("<i", size)
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def write_py2_pickle(path: Path, obj) -> None:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    path.write_bytes(buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))


MSD_IDS = ["TRAAAAK128F9318786", "TRABCDE128F4287B47", "TRAXYZW128F14A5138", "TRBBBBB12903CB277E",
           "TRCDEFG128F92F423A", "TRYOHDO128F42669A4", "TRZZRTG128F936184E", "TRQQQQQ128F9342D0E"]


def make_msd(root: Path) -> dict[str, dict[str, float]]:
    """The Lee split's pickles (6 train-list ids, 2 test ids), a shuffled 50tagList.txt, audio X/Y/Z."""
    rng = np.random.default_rng(3)
    order = [msd.LEE_TAGS[i] for i in rng.permutation(msd.N_TAGS)]
    truth = {i: dict(zip(order, (rng.random(msd.N_TAGS) < 0.3).astype(float).tolist())) for i in MSD_IDS}
    root.mkdir(parents=True, exist_ok=True)
    (root / "50tagList.txt").write_text("".join(f"{t}\n" for t in order))
    write_py2_pickle(root / "filtered_list_train.cP", [i.encode() for i in MSD_IDS[:6]])
    write_py2_pickle(root / "filtered_list_test.cP", [i.encode() for i in MSD_IDS[6:]])
    vectors = {}
    for n, track in enumerate(MSD_IDS):
        values = [truth[track][t] for t in order]
        # the real file holds (50, 1) arrays; accept plain lists too
        vectors[track.encode()] = np.float32(values).reshape(50, 1) if n % 2 else [int(v) for v in values]
    write_py2_pickle(root / "msd_id_to_tag_vector.cP", vectors)
    for track in MSD_IDS:
        write_mp3(root / "audio" / msd.default_path(track))
    return truth


def test_msd_lee_pickles_latin1_split_and_labels(tmp_path):
    truth = make_msd(tmp_path)
    with open(tmp_path / "msd_id_to_tag_vector.cP", "rb") as handle, pytest.raises(UnicodeDecodeError):
        pickle.load(handle)  # the fixture is Python-2-like: default (ASCII) unpickling fails
    (tmp_path / "audio" / msd.default_path(MSD_IDS[1])).unlink()
    collection = msd.load_msd(DataConfig(dataset="msd", data_root=str(tmp_path)), lee_train_size=4)
    assert collection.counts() == {"train": 3, "valid": 2, "test": 2}  # 4 / 2 / 2, one train file missing
    assert collection.description["missing"] == [str(tmp_path / "audio" / "A" / "B" / "C" / f"{MSD_IDS[1]}.mp3")]
    assert collection.ids("test") == MSD_IDS[6:]
    for track in (MSD_IDS[0], MSD_IDS[3], MSD_IDS[7]):
        assert labels_by_name(collection, track) == truth[track]
    assert collection.tracks.loc[MSD_IDS[5], "path"] == "Y/O/H/TRYOHDO128F42669A4.mp3"
    with pytest.raises(ValueError, match="201680|expected more ids"):
        msd.load_msd(DataConfig(dataset="msd", data_root=str(tmp_path)))


def test_msd_musicnn_tsv_with_its_own_paths(tmp_path):
    truth = make_msd(tmp_path)
    index = tmp_path / "index"
    index.mkdir()
    order = (tmp_path / "50tagList.txt").read_text().split("\n")[:50]
    (index / "index_msd.tsv").write_text("".join(f"{t}\tclips/{t}.mp3\n" for t in MSD_IDS))
    for prefix, ids in (("train", MSD_IDS[:5]), ("val", MSD_IDS[5:6]), ("test", MSD_IDS[6:])):
        (index / f"{prefix}_gt_msd.tsv").write_text("".join(f"{t}\t{[truth[t][n] for n in order]}\n" for t in ids))
    for track in MSD_IDS:
        write_mp3(tmp_path / "audio" / "clips" / f"{track}.mp3")
    collection = msd.load_msd(DataConfig(dataset="msd", data_root=str(tmp_path), split_convention="musicnn"))
    assert collection.counts() == {"train": 5, "valid": 1, "test": 2}
    assert collection.tracks.loc[MSD_IDS[2], "path"] == f"clips/{MSD_IDS[2]}.mp3"
    assert labels_by_name(collection, MSD_IDS[4]) == truth[MSD_IDS[4]]


# ---- MTG-Jamendo ------------------------------------------------------------------------------------
JAMENDO = {  # split -> (track, artist, tags)
    "train": [("track_0000214", "artist_000001", ["genre---rock", "instrument---guitar"]),
              ("track_0000315", "artist_000001", ["genre---pop"]),
              ("track_0000416", "artist_000002", ["mood/theme---happy", "genre---pop", "instrument---voice"])],
    "validation": [("track_0001217", "artist_000003", ["genre---rock"])],
    "test": [("track_0002318", "artist_000004", ["instrument---guitar", "mood/theme---happy"]),
             ("track_0003419", "artist_000005", ["genre---pop"])],
}


def jamendo_path(track: str) -> str:
    number = int(track.split("_")[1])
    return f"{number % 100:02d}/{number}.mp3"


def make_jamendo(root: Path, prefix: str = "autotagging_top50tags", split: str = "split-0") -> None:
    folder = root / "data" / "splits" / split
    folder.mkdir(parents=True)
    for name, rows in JAMENDO.items():
        lines = ["TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"]
        lines += [f"{t}\t{a}\talbum_000007\t{jamendo_path(t)}\t212.5\t" + "\t".join(tags) for t, a, tags in rows]
        (folder / f"{prefix}-{name}.tsv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    for rows in JAMENDO.values():
        for track, _, _ in rows:
            write_mp3(root / "audio" / jamendo_path(track))


def test_jamendo_crlf_split_files_tags_and_artists(tmp_path):
    make_jamendo(tmp_path)
    low = tmp_path / "audio" / jamendo_path("track_0002318")
    low.rename(low.with_name(low.name.replace(".mp3", ".low.mp3")))  # only the low-quality download
    collection = load_collection(DataConfig(dataset="jamendo", data_root=str(tmp_path)))  # via READERS
    assert collection.counts() == {"train": 3, "valid": 1, "test": 2}
    assert collection.tags == sorted({t for rows in JAMENDO.values() for _, _, tags in rows for t in tags})
    expected = {t: float(t in JAMENDO["train"][2][2]) for t in collection.tags}
    assert labels_by_name(collection, "track_0000416") == expected
    assert collection.tracks.loc["track_0001217", "artist"] == "artist_000003"
    assert collection.tracks.loc["track_0002318", "path"] == "18/2318.low.mp3"
    assert collection.description["missing"] == []


def test_jamendo_convention_picks_subset_and_split(tmp_path):
    assert jamendo.parse_convention("") == ("autotagging_top50tags", "split-0")
    assert jamendo.parse_convention("all/split-2") == ("autotagging", "split-2")
    make_jamendo(tmp_path, prefix="autotagging_genre", split="split-3")
    collection = jamendo.load_jamendo(DataConfig(dataset="jamendo", data_root=str(tmp_path),
                                                 split_convention="genre/split-3"))
    assert collection.description["convention"] == "genre/split-3"
    with pytest.raises(FileNotFoundError, match="autotagging_top50tags-train.tsv"):
        jamendo.load_jamendo(DataConfig(dataset="jamendo", data_root=str(tmp_path), split_convention="split-3"))


# ---- in-house catalogue -----------------------------------------------------------------------------
CATALOGUE_ROWS = [  # path, artist, split, piano, vocals, tempo, acousticness
    ("a/1.mp3", "Ann", "train", 1, 0, 0.25, 0.9), ("a/2.mp3", "Ann", "train", 0, 1, 0.5, 0.1),
    ("b/3.mp3", "Bob", "train", 1, 1, 0.75, 0.4), ("b/4.mp3", "Bob", "validation", 0, 0, 0.4, 0.6),
    ("c/5.mp3", "Cat", "test", 1, 0, 0.6, 0.2), ("c/6.mp3", "Cat", "test", 0, 1, 1.0, 0.0),
]


def make_catalogue(root: Path, *, with_split: bool = True, yaml_text: str | None = None) -> None:
    columns = ["path", "artist", "split", "title", "tempo", "piano", "acousticness", "vocals"]  # not row order
    root.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(c for c in columns if with_split or c != "split")]
    for path, artist, split, piano, vocals, tempo, acoustic in CATALOGUE_ROWS:
        values = {"path": path, "artist": artist, "split": split, "title": "x", "tempo": tempo, "piano": piano,
                  "acousticness": acoustic, "vocals": vocals}
        lines.append("\t".join(str(values[c]) for c in columns if with_split or c != "split"))
    (root / "tracks.tsv").write_text("\n".join(lines) + "\n")
    if yaml_text is not None:
        (root / "catalogue.yaml").write_text(yaml_text)
    for path, *_ in CATALOGUE_ROWS:
        write_mp3(root / path)


def test_catalogue_declared_regression_tags_and_given_split(tmp_path):
    make_catalogue(tmp_path, yaml_text="table: tracks.tsv\nregression_tags: [tempo, acousticness]\n"
                                       "ignore_columns: [title]\n")
    collection = load_catalogue(DataConfig(dataset="catalogue", data_root=str(tmp_path)))
    assert collection.counts() == {"train": 3, "valid": 1, "test": 2}
    assert collection.regression_tags == {"tempo", "acousticness"}
    assert labels_by_name(collection, "b/3.mp3") == {"tempo": 0.75, "piano": 1.0, "acousticness": 0.4, "vocals": 1.0}
    assert sorted(collection.ids("train")) == ["a/1.mp3", "a/2.mp3", "b/3.mp3"]


def test_catalogue_infers_tag_kinds_and_makes_artist_filtered_splits(tmp_path, capsys):
    make_catalogue(tmp_path, with_split=False, yaml_text="table: tracks.tsv\nignore_columns: [title]\nseed: 1\n")
    collection = load_catalogue(DataConfig(dataset="catalogue", data_root=str(tmp_path)))
    assert collection.regression_tags == {"tempo", "acousticness"}
    assert "inferred 2 classification tags" in capsys.readouterr().out
    artists_per_split = collection.tracks.groupby("artist")["split"].nunique()
    assert (artists_per_split == 1).all()
    assert sorted(collection.ids("train")) == sorted(collection.tracks.index[collection.tracks["split"] == "train"])


def test_catalogue_refuses_bad_values(tmp_path):
    make_catalogue(tmp_path, yaml_text="table: tracks.tsv\nregression_tags: [tempo]\nignore_columns: [title]\n")
    with pytest.raises(ValueError, match="acousticness"):
        load_catalogue(DataConfig(dataset="catalogue", data_root=str(tmp_path)))  # continuous but not declared
    (tmp_path / "catalogue.yaml").write_text("table: tracks.tsv\ntags: [tempo, piano]\n")
    table = tmp_path / "tracks.tsv"
    table.write_text(table.read_text().replace("\t0.75\t", "\t7.5\t"))
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        load_catalogue(DataConfig(dataset="catalogue", data_root=str(tmp_path)))


def test_catalogue_without_declaration_or_table_says_what_it_expects(tmp_path):
    with pytest.raises(FileNotFoundError, match="catalogue.yaml"):
        load_catalogue(DataConfig(dataset="catalogue", data_root=str(tmp_path)))
