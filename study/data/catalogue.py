"""An in-house catalogue like the paper's private 1.2M-song set (§3): your own table of tracks and tags.

Binary tags (bimodal, scored with ROC-AUC / PR-AUC) and regression tags (values in [0, 1],
scored with √MSE) live side by side, as in the paper's 139 tags.

Expected layout under ``data_root`` (DataConfig.data_root)::

    catalogue.yaml          (or catalogue.yml / catalogue.json) the declaration, all keys optional but table:
        table: tracks.tsv           CSV (.csv) or TSV (.tsv, .tab, .txt), relative to this file
        path_column: path           audio path per track, relative to audio_root (absolute paths work too)
        id_column: track_id         default: a 'track_id' column if present, else the path
        artist_column: artist       default: an 'artist' column if present (splits are artist-filtered)
        split_column: split         default: a 'split' column if present; train / valid / test
                                    ('validation', 'val', 'dev', 'training', 'testing' accepted)
        tags: [...]                 default: every other column except ignore_columns
        ignore_columns: [...]       columns that are neither tags nor the above (e.g. title)
        regression_tags: [...]      default: inferred, see below
        audio_root: audio           default: the table's folder; or DataConfig.audio_root
        seed: 0                     seed of the generated split and of the nested training order
        fractions: [0.8, 0.1, 0.1]  train / valid / test shares of a generated split
    tracks.tsv              the table: one row per track, one column per tag

Without a declaration, data_root may be the table itself or a folder holding exactly one
.csv / .tsv table.  Without regression_tags, a tag whose values are all 0 or 1 is a classification tag and any
other tag is regression; the reader prints which it chose.  Regression values must lie in [0, 1]
(the models end in a sigmoid, as the paper's do).  Without a split column the reader makes an
artist-filtered, stratified train / valid / test split (study.data.splits.artist_filtered_split);
the training order is always nested (study.data.splits.nested_train_order), so train_size=N
takes the same first N tracks in every run (paper §5.1).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from study.config import DataConfig
from study.data.collection import Collection
from study.data.files import collection_from_files, require_root
from study.data.splits import artist_filtered_split, nested_train_order

DECLARATION_NAMES = ("catalogue.yaml", "catalogue.yml", "catalogue.json")
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt")
SPLIT_NAMES = {"train": "train", "training": "train", "valid": "valid", "validation": "valid", "val": "valid",
               "dev": "valid", "test": "test", "testing": "test"}
KNOWN_KEYS = {"table", "path_column", "id_column", "artist_column", "split_column", "tags", "ignore_columns",
              "regression_tags", "audio_root", "seed", "fractions"}
EXPECTED = "catalogue.yaml (table: tracks.tsv, path_column, regression_tags, ...) next to the table"


def read_declaration(root: Path) -> tuple[dict, Path]:
    """(declaration, the folder its paths are relative to)."""
    if root.is_file():
        return {"table": root.name}, root.parent
    for name in DECLARATION_NAMES:
        path = root / name
        if path.is_file():
            text = path.read_text()
            declaration = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
            if not isinstance(declaration, dict) or "table" not in declaration:
                raise ValueError(f"{path}: expected a mapping with at least 'table: <file>'; got {declaration!r}")
            unknown = set(declaration) - KNOWN_KEYS
            if unknown:
                raise ValueError(f"{path}: unknown keys {sorted(unknown)}; known keys: {sorted(KNOWN_KEYS)}")
            return declaration, root
    tables = sorted(p for p in root.iterdir() if p.suffix in (".csv", ".tsv"))
    if len(tables) != 1:
        raise FileNotFoundError(f"catalogue: no {' / '.join(DECLARATION_NAMES)} in {root} and "
                                f"{len(tables)} .csv/.tsv tables there ({[p.name for p in tables]}); "
                                f"expected {EXPECTED}")
    return {"table": tables[0].name}, root


def read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"catalogue: the declared table {path} does not exist")
    sep = "," if path.suffix == ".csv" else "\t"
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def _column(table: pd.DataFrame, declaration: dict, key: str, default: str, table_path: Path) -> str | None:
    """The declared column (which must exist) or the default column when the table has it."""
    if key in declaration:
        name = declaration[key]
        if name not in table.columns:
            raise ValueError(f"{table_path}: the declared {key} {name!r} is not a column; "
                             f"columns: {list(table.columns)}")
        return name
    return default if default in table.columns else None


def tag_values(table: pd.DataFrame, tags: list[str], table_path: Path) -> np.ndarray:
    """(tracks, tags) float32; a blank or non-numeric cell is an error naming the tag and row."""
    values = np.empty((len(table), len(tags)), dtype=np.float32)
    for j, tag in enumerate(tags):
        numbers = pd.to_numeric(table[tag].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if bad.size:
            raise ValueError(f"{table_path}: tag column {tag!r} holds {table[tag].iat[bad[0]]!r} on data row "
                             f"{bad[0] + 1} ({bad.size} such cells); expected numbers (list a column that "
                             f"is not a tag under ignore_columns in catalogue.yaml)")
        values[:, j] = numbers
    return values


def regression_tags(tags: list[str], values: np.ndarray, declared: list[str] | None, table_path: Path) -> list[str]:
    """Declared, or inferred (values strictly in {0, 1} -> classification, else regression); checked either way."""
    is_binary = np.all((values == 0) | (values == 1), axis=0)
    if declared is None:
        regression = [t for t, binary in zip(tags, is_binary) if not binary]
        print(f"catalogue: no regression_tags declared; inferred {len(tags) - len(regression)} classification tags "
              f"(values 0/1 only) and {len(regression)} regression tags: {regression}")
    else:
        unknown = sorted(set(declared) - set(tags))
        if unknown:
            raise ValueError(f"{table_path}: declared regression_tags {unknown} are not tag columns")
        regression = list(declared)
        not_binary = [t for t, binary in zip(tags, is_binary) if not binary and t not in declared]
        if not_binary:
            raise ValueError(f"{table_path}: tags {not_binary} hold values other than 0/1 but are not in "
                             f"regression_tags; declare them or binarise them")
    outside = [t for t in regression if not ((values[:, tags.index(t)] >= 0) & (values[:, tags.index(t)] <= 1)).all()]
    if outside:
        raise ValueError(f"{table_path}: regression tags {outside} have values outside [0, 1]; rescale them "
                         f"(the models' outputs are sigmoids)")
    return regression


def split_column(table: pd.DataFrame, column: str, table_path: Path) -> list[str]:
    names = [SPLIT_NAMES.get(v.strip().lower()) for v in table[column]]
    unknown = sorted({v for v, n in zip(table[column], names) if n is None})
    if unknown:
        raise ValueError(f"{table_path}: split column {column!r} holds {unknown}; "
                         f"expected one of {sorted(SPLIT_NAMES)}")
    return names


def load_catalogue(cfg: DataConfig) -> Collection:
    """Your catalogue as a Collection; see the module docstring for the declaration."""
    root = require_root(cfg.data_root, "catalogue", EXPECTED)
    declaration, base = read_declaration(root)
    table_path = base / declaration["table"]
    table = read_table(table_path)
    path_column = _column(table, declaration, "path_column", "path", table_path)
    if path_column is None:
        raise ValueError(f"{table_path}: no 'path' column and no path_column declared; columns: {list(table.columns)}")
    id_column = _column(table, declaration, "id_column", "track_id", table_path)
    artist_column = _column(table, declaration, "artist_column", "artist", table_path)
    split_name = _column(table, declaration, "split_column", "split", table_path)
    reserved = {path_column, id_column, artist_column, split_name, *declaration.get("ignore_columns", [])}
    tags = list(declaration.get("tags") or [c for c in table.columns if c not in reserved])
    absent = [t for t in tags if t not in table.columns]
    if absent or not tags:
        raise ValueError(f"{table_path}: tag columns {absent or '(none)'} missing; columns: {list(table.columns)}")
    values = tag_values(table, tags, table_path)
    regression = regression_tags(tags, values, declaration.get("regression_tags"), table_path)
    seed = int(declaration.get("seed", 0))

    ids = table[id_column or path_column].astype(str).to_numpy()
    artists = table[artist_column].to_numpy() if artist_column else np.full(len(table), "", dtype=object)
    tracks = pd.DataFrame({"artist": artists, "path": table[path_column].to_numpy()},
                          index=pd.Index(ids, name="track_id"))
    if tracks.index.has_duplicates:
        raise ValueError(f"{table_path}: track ids repeat, e.g. {tracks.index[tracks.index.duplicated()][0]!r}; "
                         f"declare an id_column with unique values")
    if split_name:
        tracks.insert(0, "split", split_column(table, split_name, table_path))
        split_source = f"column {split_name!r}"
    else:
        if not artist_column:
            print("catalogue: no artist column, so the generated split cannot keep artists apart")
        fractions = tuple(declaration.get("fractions", (0.8, 0.1, 0.1)))
        splits = artist_filtered_split(tracks, values, fractions=fractions, seed=seed)  # '' = its own artist
        tracks.insert(0, "split", splits.reindex(tracks.index).to_numpy())
        split_source = f"artist-filtered split, fractions {fractions}, seed {seed}"
    train = (tracks["split"] == "train").to_numpy()
    train_order = nested_train_order(list(tracks.index[train]), values[train], seed=seed)

    audio_root = base / (cfg.audio_root or declaration.get("audio_root", "."))
    description = {"source": "catalogue", "convention": "given" if split_name else "artist-filtered",
                   "table": str(table_path), "split_source": split_source,
                   "regression_tags_declared": "regression_tags" in declaration}
    return collection_from_files("catalogue", tracks, tags, values, audio_root=audio_root, description=description,
                                 regression_tags=frozenset(regression), train_order=train_order,
                                 expected_audio=f"the {path_column!r} column's files")
