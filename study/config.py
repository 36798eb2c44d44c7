"""Run configuration as plain frozen dataclasses.

Every field name is unique across the sections, so a papermill parameter or a command-line
``--name value`` overrides exactly one field by its name (``RunConfig.from_flat``).  The run id
hashes the *full resolved* config, so changing a default never aliases an older run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from study.errors import UserError


@dataclass(frozen=True)
class AudioConfig:
    """Input representation (paper-facts: 16 kHz; log-mel n_fft 512, hop 256, 96 bands)."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    fmin: float = 0.0
    fmax: float = 8000.0
    log_gain: float = 10000.0  # log10(1 + log_gain * mel), as the authors compressed it


@dataclass(frozen=True)
class ModelConfig:
    """Which network, and the capacity knobs of Tables 2-3."""

    model: str = "spectrogram"  # registry name: waveform | spectrogram | samplecnn | dieleman | vgg | timbre_cnn
    frontend_multiplier: float = 1.0  # '# filters xN' rows: 0.125 .. 4
    backend_filters: int = 512  # back-end CNN filters: 64, 128, 256, 512
    dense_units: int = 500  # back-end dense units: 200 or 500
    waveform_layers: int = 7  # 7 (MTT, MSD) or 9 (the 1.2M set)
    dropout: float = 0.5


@dataclass(frozen=True)
class DataConfig:
    """Which collection, which split convention and how much of its training set."""

    dataset: str = "corpus"  # corpus | mtt | msd | jamendo | catalogue
    data_root: str = ""  # folder of a real dataset (ignored for the corpus)
    audio_root: str = ""  # audio kept outside data_root; '' = found inside data_root
    split_convention: str = ""  # dataset-specific, e.g. 'pons2018' or 'clean' for MTT; '' = the reader's default
    corpus_size: int = 1000  # clips in the embedded corpus
    corpus_seed: int = 0
    clip_seconds: float = 30.0  # embedded corpus clip length
    train_size: int = 0  # training clips used; 0 = the whole training split (nested subsets, §5.1)
    cache_dir: str = "cache"  # decoded-audio store, relative to the repository root
    cache_dtype: str = "float32"  # float32 | float16 (halves the disk, ~1e-3 relative error)


@dataclass(frozen=True)
class TrainConfig:
    """One training loop for every model (paper §4 'Parameters')."""

    seed: int = 0
    batch_size: int = 32
    learning_rate: float = 1e-3  # Adam, as in the paper
    weight_decay: float = 0.0
    max_epochs: int = 50
    patience: int = 8  # epochs without improvement of the early-stopping value, then training stops
    lr_patience: int = 0  # epochs without improvement, then the learning rate halves (the authors' schedule); 0 = never
    epoch_patches: int = 0  # random training patches per epoch (validation after each); 0 = one per training clip
    early_stopping: str = "loss"  # loss (the authors' code) | roc_auc | pr_auc | rmse | auto
    patch_seconds: float = 15.0  # training patch length (3 s on MTT)
    loss: str = "auto"  # auto (mse if any regression tag, else bce) | bce | mse | per_kind (bce binary, mse regression)
    class_weighting: bool = False  # future work named by the paper: imbalance-weighted loss
    deterministic: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    mixed_precision: bool = True  # used on CUDA only
    num_workers: int = 0
    norm_clips: int = 200  # training clips used to estimate the log-mel mean and std


@dataclass(frozen=True)
class EvalConfig:
    """Song-level evaluation protocol (§4: mean of moving-window patch predictions)."""

    eval_patch_seconds: float = 15.0
    eval_hop_seconds: float = 15.0  # = patch length: the paper's non-overlapping windows
    whole_clip: bool = False  # one pass over the whole clip instead of averaged patches
    bootstrap_samples: int = 1000
    confidence: float = 0.95


# Where a run executes, not what it computes: left out of the run id, so one experiment keeps one id
# on every machine (the data themselves enter the results through the manifest hash).
EXECUTION_ONLY = {"data": ("data_root", "audio_root", "cache_dir"), "train": ("device", "num_workers")}


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"  # readable prefix of the run id
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    # ---- flat access by field name -------------------------------------------------------
    @classmethod
    def flat_fields(cls) -> dict[str, tuple[str | None, dataclasses.Field]]:
        """Map every overridable name to (section or None, dataclass field)."""
        out: dict[str, tuple[str | None, dataclasses.Field]] = {}
        for top in fields(cls):
            section_type = top.default_factory
            if section_type is not dataclasses.MISSING and dataclasses.is_dataclass(section_type):
                for sub in fields(top.default_factory):
                    assert sub.name not in out, f"duplicate config field {sub.name}"
                    out[sub.name] = (top.name, sub)
            else:
                out[top.name] = (None, top)
        return out

    def with_overrides(self, **overrides: Any) -> "RunConfig":
        """A copy with fields replaced by name; unknown names and wrong types are errors."""
        known = self.flat_fields()
        sections: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for name, value in overrides.items():
            if name not in known:
                raise ValueError(f"unknown config field {name!r}; known fields: {', '.join(sorted(known))}")
            section, fld = known[name]
            value = _coerce(name, value, fld)
            if section is None:
                top[name] = value
            else:
                sections.setdefault(section, {})[name] = value
        updated = {s: replace(getattr(self, s), **vals) for s, vals in sections.items()}
        return replace(self, **top, **updated)

    @classmethod
    def from_flat(cls, preset: str = "default", **overrides: Any) -> "RunConfig":
        return preset_config(preset).with_overrides(**overrides)

    def flat(self) -> dict[str, Any]:
        known = self.flat_fields()
        return {name: (getattr(getattr(self, sec), name) if sec else getattr(self, name)) for name, (sec, _) in known.items()}

    # ---- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        return cls().with_overrides(**flat)

    def config_hash(self) -> str:
        """Hash of everything that can change a result (where it runs and how many loader workers do not)."""
        resolved = self.to_dict()
        for section, names in EXECUTION_ONLY.items():
            for name in names:
                resolved[section].pop(name)
        return hashlib.sha1(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:10]

    @property
    def run_id(self) -> str:
        """Readable prefix + hash of the full resolved config."""
        size = self.data.train_size or "all"
        return f"{self.name}-{self.data.dataset}-{self.model.model}-n{size}-s{self.train.seed}-{self.config_hash()}"

    def __str__(self) -> str:
        lines = [f"RunConfig {self.run_id}"]
        for top in fields(self):
            value = getattr(self, top.name)
            if dataclasses.is_dataclass(value):
                inner = ", ".join(f"{f.name}={getattr(value, f.name)!r}" for f in fields(value))
                lines.append(f"  {top.name}: {inner}")
            else:
                lines.append(f"  {top.name}: {value!r}")
        return "\n".join(lines)


def _coerce(name: str, value: Any, fld: dataclasses.Field) -> Any:
    """Accept the field's type (and ints for floats, strings from a command line)."""
    kind = fld.type if isinstance(fld.type, str) else getattr(fld.type, "__name__", str(fld.type))
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if isinstance(value, (bool, int)) and value in (0, 1):
                return bool(value)
            raise ValueError
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError):
        raise TypeError(f"config field {name!r} expects {kind}, got {value!r}") from None
    return value


# ---- presets ---------------------------------------------------------------------------------
def preset_config(preset: str) -> RunConfig:
    """smoke (tests, < 2 min on one core), default (the README's study on a laptop), paper (GPU)."""
    if preset == "smoke":
        return RunConfig(
            name="smoke",
            model=ModelConfig(model="spectrogram", frontend_multiplier=0.25, backend_filters=32, dense_units=32),
            data=DataConfig(corpus_size=120, clip_seconds=4.0, cache_dir="cache/smoke"),
            train=TrainConfig(batch_size=16, max_epochs=2, patience=2, patch_seconds=2.0, norm_clips=32),
            eval=EvalConfig(eval_patch_seconds=2.0, eval_hop_seconds=2.0, bootstrap_samples=100),
        )
    if preset == "default":
        # The data-scale study on a laptop (30 min on 2 CPU cores): 6 s clips, 3 s patches as on MTT,
        # x1/4 front-ends with a 64-filter / 200-unit back-end (Tables 2-3's smallest rows), 10 epochs.
        return RunConfig(
            name="default",
            model=ModelConfig(model="spectrogram", frontend_multiplier=0.25, backend_filters=64, dense_units=200),
            data=DataConfig(corpus_size=1300, clip_seconds=6.0, cache_dir="cache/default"),
            train=TrainConfig(batch_size=32, max_epochs=10, patience=3, patch_seconds=3.0, norm_clips=100),
            eval=EvalConfig(eval_patch_seconds=3.0, eval_hop_seconds=3.0, bootstrap_samples=500),
        )
    if preset == "paper":
        return RunConfig(
            name="paper",
            model=ModelConfig(model="spectrogram"),
            data=DataConfig(corpus_size=100_000, clip_seconds=30.0, cache_dir="cache/paper"),
            train=TrainConfig(batch_size=32, max_epochs=200, patience=20, patch_seconds=15.0),
            eval=EvalConfig(eval_patch_seconds=15.0, eval_hop_seconds=15.0),
        )
    raise ValueError(f"unknown preset {preset!r} — use smoke, default or paper")


# ---- command line ----------------------------------------------------------------------------
def add_config_arguments(parser, sections: tuple[str, ...] | None = None) -> None:
    """``--preset`` and one ``--<field>`` per RunConfig field (of ``sections``, default all), by exact name."""
    parser.add_argument("--preset", default="default", help="smoke | default | paper (default: default)")
    group = parser.add_argument_group("configuration fields (see study/config.py)")
    for name, (section, fld) in RunConfig.flat_fields().items():
        if sections is not None and section not in sections:
            continue
        kind = fld.type if isinstance(fld.type, str) else getattr(fld.type, "__name__", "value")
        if kind not in ("str", "int", "float", "bool"):
            continue
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        group.add_argument(*flags, dest=name, metavar=kind.upper(), default=None,
                           help=f"{section or 'run'}.{name} ({kind}; the preset's value if omitted)")


def config_from_args(args) -> RunConfig:
    """The preset with every ``--<field>`` the user gave; a bad name or value is a UserError."""
    given = {name: getattr(args, name) for name in RunConfig.flat_fields() if getattr(args, name, None) is not None}
    try:
        return RunConfig.from_flat(args.preset, **given)
    except (TypeError, ValueError) as error:
        raise UserError(str(error)) from None
