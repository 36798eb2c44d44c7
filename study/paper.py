"""The paper's printed numbers as data (Pons et al. 2018, Tables 1-4 and §5.1), cited by table and row.

Each row is a dict:
- ``table`` (1-4, or '5.1' for counts stated in the text), ``row`` (the row's label, ASCII),
  ``group`` (the table's sub-heading), ``dataset`` ('catalogue' = the 1.2M-songs set, 'mtt', 'msd'),
  ``model`` (display name), ``source`` ('this paper' or 'cited': numbers quoted from another paper);
- ``train_size`` (training songs, Table 1; None = the whole training split);
- ``roc_auc``, ``pr_auc`` in PERCENT as printed, ``rmse`` (sqrt(MSE), Table 1); None where printed '-';
- ``params``: the printed count string ('5.3M', '277k', '5.9' as printed without a unit) or None;
- ``config``: ModelConfig overrides when the row is one of our configurations, else None;
- ``params_config`` / ``params_audio``: the ModelConfig / AudioConfig overrides whose parameter
  count is compared with ``params`` (default: ``config`` / {}); ``n_tags``: the output size;
- ``note``: why our count does not meet ``params`` read as truncated ('' when it does).

The printed counts are truncated, not rounded, to their precision (docs/paper-details.md,
"Parameter counts"): 5,377,082
prints as 5.3M.  ``printed_agrees`` checks one count against one printed figure.
"""
from __future__ import annotations

import math
import re
from typing import Any

BASIC_BACKEND = {"backend_filters": 512, "dense_units": 500}  # §4 basic configuration
MTT_TAGS, MSD_TAGS, CATALOGUE_TAGS = 50, 50, 139


def _row(table: Any, group: str, row: str, model: str, roc: float | None, pr: float | None, params: str | None, *,
         dataset: str, config: dict | None = None, source: str = "this paper", train_size: int | None = None,
         rmse: float | None = None, n_tags: int = MTT_TAGS, params_config: dict | None = None,
         params_audio: dict | None = None, note: str = "") -> dict[str, Any]:
    return {
        "table": table, "row": row, "group": group, "dataset": dataset, "model": model, "source": source,
        "train_size": train_size, "roc_auc": roc, "pr_auc": pr, "rmse": rmse, "params": params,
        "config": config, "params_config": params_config if params_config is not None else config,
        "params_audio": params_audio or {}, "n_tags": n_tags, "note": note,
    }


# ---- Table 1: the 1.2M-songs set, 3 runs, 139 tags ---------------------------------------------
def _table1() -> list[dict[str, Any]]:
    group = "1.2M-songs average results (3 runs)"
    rows = [_row(1, group, "Baseline 1.2M", "GBT + features", 91.61, 54.27, None, dataset="catalogue",
                 config={"model": "gbt"}, train_size=1_200_000, rmse=0.1569, n_tags=CATALOGUE_TAGS)]
    printed = {  # (model, train size): (ROC-AUC, PR-AUC, sqrt(MSE))
        ("Waveform", 1_000_000): (92.50, 61.20, 0.1465), ("Spectrogram", 1_000_000): (92.17, 59.92, 0.1473),
        ("Waveform", 500_000): (91.16, 56.42, 0.1504), ("Spectrogram", 500_000): (91.61, 58.18, 0.1493),
        ("Waveform", 100_000): (90.27, 52.76, 0.1554), ("Spectrogram", 100_000): (90.14, 52.67, 0.1542),
    }
    for (model, size), (roc, pr, rmse) in printed.items():
        config = {"model": "waveform", "waveform_layers": 9} if model == "Waveform" else {"model": "spectrogram"}
        label = f"{model} {size // 1000}k" if size < 1_000_000 else f"{model} {size // 1_000_000}M"
        rows.append(_row(1, group, label, model, roc, pr, None, dataset="catalogue", config=config,
                         train_size=size, rmse=rmse, n_tags=CATALOGUE_TAGS))
    return rows


# §5.1 text: "composed of 5.9M and 5.5M parameters" (basic configuration, 139 outputs)
TEXT_PARAMS = [
    _row("5.1", "basic configuration, 1.2M-songs set", "Spectrogram (139 tags)", "Spectrogram", None, None, "5.9M",
         dataset="catalogue", config={"model": "spectrogram"}, n_tags=CATALOGUE_TAGS),
    _row("5.1", "basic configuration, 1.2M-songs set", "Waveform, 9 layers (139 tags)", "Waveform", None, None, "5.5M",
         dataset="catalogue", config={"model": "waveform", "waveform_layers": 9}, n_tags=CATALOGUE_TAGS),
]


# ---- Tables 2-3: MTT capacity studies -----------------------------------------------------------
FRONTEND_STUDY = "How much capacity is required for the front-end?"
BACKEND_STUDY = "How much capacity is required for the back-end?"
STATE_OF_THE_ART = "State-of-the-art results - with our own implementations"
FRACTIONS = {4.0: "x4", 2.0: "x2", 1.0: "x1", 0.5: "x1/2", 0.25: "x1/4", 0.125: "x1/8"}


def _capacity_rows(table: int, model: str, frontend: dict, backend: dict, selected: float) -> list[dict[str, Any]]:
    """The front-end rows (basic back-end) and the back-end rows (selected front-end) of one table."""
    rows = []
    for multiplier, (roc, pr, params) in frontend.items():
        label = f"# filters {FRACTIONS[multiplier]}" + (" (selected)" if multiplier == selected else "")
        config = {"model": model.lower(), "frontend_multiplier": multiplier, **BASIC_BACKEND}
        rows.append(_row(table, FRONTEND_STUDY, label, model, roc, pr, params, dataset="mtt", config=config))
    for (filters, units), (roc, pr, params) in backend.items():
        config = {"model": model.lower(), "frontend_multiplier": selected, "backend_filters": filters, "dense_units": units}
        rows.append(_row(table, BACKEND_STUDY, f"{filters} CNN filters - {units} units", model, roc, pr, params,
                         dataset="mtt", config=config))
    return rows


SAMPLECNN_NOTE = (
    "met when rounded, not truncated: 2,394,162 = Lee et al.'s own '2.39 x 10^6' (conv1 768 + blocks 2-3 "
    "2 x 49,536 + block 4 99,072 + blocks 5-9 5 x 197,376 + block 10 394,752 + conv 3x512 787,968 + dense "
    "25,650); with a 1-tap last conv it is 1,869,874"
)

TABLE2 = [
    _row(2, STATE_OF_THE_ART, "SampleCNN [14]", "SampleCNN", 90.55, None, "2.4M", dataset="mtt", source="cited",
         params_config={"model": "samplecnn"}, note=SAMPLECNN_NOTE),
    _row(2, STATE_OF_THE_ART, "SampleCNN (reproduced)", "SampleCNN", 88.56, 34.38, "2.4M", dataset="mtt",
         config={"model": "samplecnn"}, note=SAMPLECNN_NOTE),
    _row(2, STATE_OF_THE_ART, "Dieleman et al. [9]", "Dieleman et al.", 84.87, None, None, dataset="mtt", source="cited"),
    _row(2, STATE_OF_THE_ART, "Dieleman et al. (reproduced)", "Dieleman et al.", 85.58, 29.59, "194k", dataset="mtt",
         config={"model": "dieleman"}, note=(
             "unmet: no public code for the paper's waveform variant; ours is the authors' public log-mel version, "
             "66,784 = input BN 2 + conv 8x96 (32) 24,608 + conv 8x32 (32) 8,224 + dense 288->100 28,900 + "
             "dense 100->50 5,050 (3 s = 187 frames)")),
    *_capacity_rows(2, "Waveform", {
        4.0: (89.05, 34.92, "11.8M"), 2.0: (88.96, 34.74, "7M"), 1.0: (88.9, 34.18, "5.3M"),
        0.5: (88.69, 33.97, "4.7M"), 0.25: (88.47, 33.89, "4.4M"),
    }, {
        (64, 500): (88.57, 33.99, "1.3M"), (64, 200): (88.94, 34.47, "1.3M"),
        (128, 500): (88.82, 34.62, "1.8M"), (128, 200): (88.81, 34.6, "1.7M"),
        (256, 500): (88.95, 34.27, "3.1 M"), (256, 200): (88.59, 34.39, "2.9M"),
        (512, 500): (88.96, 34.74, "7M"), (512, 200): (88.3, 34.05, "6.7M"),
    }, selected=2.0),
]

TIMBRE_ARITHMETIC = (
    "input BN 2 + vertical filters (heights int(0.8/0.6/0.2 x mels), widths 7/5/3/1, 92 filters) + "
    "conv 8x92 (32) 23,584 + dense (45 steps x 32)->100 144,100 + dense 100->50 5,050"
)

TABLE3 = [
    _row(3, STATE_OF_THE_ART, "VGG - Choi et al. [5]", "VGG", 89.40, None, "22M", dataset="mtt", source="cited", note=(
        "not built: Choi et al.'s own FCN-4 (96 x 1366 input) is cited, not reproduced; the study's VGG is the "
        "paper's 450k reproduction")),
    _row(3, STATE_OF_THE_ART, "VGG (reproduced)", "VGG", 89.99, 37.56, "450k", dataset="mtt", config={"model": "vgg"}),
    _row(3, STATE_OF_THE_ART, "Timbre CNN [21]", "Timbre CNN", 89.30, None, "191k", dataset="mtt", source="cited",
         params_config={"model": "timbre_cnn"}, params_audio={"n_mels": 128}, note=(
             "unmet: the public model at 128 mel bands (footnote 14) has 190,145 = " + TIMBRE_ARITHMETIC.replace(
                 "vertical filters", "vertical filters 17,409") + "; the variant of [21] is not public")),
    _row(3, STATE_OF_THE_ART, "Timbre CNN (reproduced)", "Timbre CNN", 89.07, 34.92, "220k", dataset="mtt",
         config={"model": "timbre_cnn"}, note=(
             "unmet: the paper's 96-band variant is not public; the public model has 185,856 = " + TIMBRE_ARITHMETIC.replace(
                 "vertical filters", "vertical filters 13,120"))),
    *_capacity_rows(3, "Spectrogram", {
        0.125: (90.08, 37.18, "4.4M"), 0.25: (90.12, 37.69, "4.6M"), 0.5: (90.40, 38.11, "5M"),
        1.0: (90.31, 37.79, "5.9"), 2.0: (90.07, 37.29, "7.6M"),
    }, {
        (64, 500): (90.03, 36.98, "277k"), (64, 200): (90.28, 37.55, "222k"),
        (128, 500): (90.16, 37.61, "617k"), (128, 200): (90.28, 37.69, "524k"),
        (256, 500): (90.18, 37.98, "1.6M"), (256, 200): (90.06, 37.16, "1.4M"),
        (512, 500): (90.40, 38.11, "5M"), (512, 200): (89.98, 37.05, "4.7M"),
    }, selected=0.5),
]

# ---- Table 4: MSD, basic configuration ----------------------------------------------------------
TABLE4 = [
    _row(4, "waveform-based models", "Waveform (ours)", "Waveform", 87.41, 28.53, "5.3M", dataset="msd",
         config={"model": "waveform"}),
    _row(4, "waveform-based models", "SampleCNN [14]", "SampleCNN", 88.12, None, "2.4M", dataset="msd", source="cited",
         params_config={"model": "samplecnn"}, note=SAMPLECNN_NOTE),
    _row(4, "waveform-based models", "SampleCNN multi-level & multi-scale [15]", "SampleCNN multi-level", 88.42, None,
         None, dataset="msd", source="cited"),
    _row(4, "spectrogram-based models", "Spectrogram (ours)", "Spectrogram", 88.75, 31.24, "5.9M", dataset="msd",
         config={"model": "spectrogram"}),
    _row(4, "spectrogram-based models", "VGG + RNN [6]", "VGG + RNN", 86.2, None, "3M", dataset="msd", source="cited",
         note="not built: Choi et al.'s convolutional recurrent network is cited, not reproduced"),
    _row(4, "spectrogram-based models", "Multi-level & multi-scale [13]", "Multi-level & multi-scale", 88.78, None,
         None, dataset="msd", source="cited"),
]

TABLE1 = _table1()
TABLES = {1: TABLE1, 2: TABLE2, 3: TABLE3, 4: TABLE4}


def rows(*tables: Any) -> list[dict[str, Any]]:
    """Rows of the given tables (1-4, '5.1' for TEXT_PARAMS) in print order; all of them by default."""
    everything = {**TABLES, "5.1": TEXT_PARAMS}
    return [row for table in (tables or tuple(everything)) for row in everything[table]]


# ---- reading a printed parameter count -----------------------------------------------------------
_PRINTED = re.compile(r"^\s*(\d+)(?:\.(\d+))?\s*([kM]?)\s*$")
_UNITS = {"k": 10 ** 3, "M": 10 ** 6, "": 10 ** 6}  # '5.9' (Table 3, x1) is printed without its M


def printed_range(text: str, reading: str = "truncated") -> tuple[int, int]:
    """The counts [low, high) that print as ``text``: truncated ('5.3M' = [5.3M, 5.4M)) or rounded."""
    match = _PRINTED.match(text)
    if match is None:
        raise ValueError(f"printed parameter count {text!r}: expected digits with an optional k or M")
    whole, decimals, unit = match.groups()
    decimals = decimals or ""
    step = _UNITS[unit] // 10 ** len(decimals)  # one unit of the last printed digit
    low = int(whole + decimals) * step
    if reading == "truncated":
        return low, low + step
    if reading == "rounded":
        return low - step // 2, low + math.ceil(step / 2)
    raise ValueError(f"reading must be 'truncated' or 'rounded', got {reading!r}")


def printed_agrees(count: int, text: str, reading: str = "truncated") -> bool:
    """Whether ``count`` prints as ``text`` (e.g. 5,377,082 and '5.3M' -> True)."""
    low, high = printed_range(text, reading)
    return low <= count < high
