"""DistributedDataParallel as torchrun runs it: two CPU processes with the gloo backend.

Each rank reads the torchrun environment variables through study.device.setup_distributed.
``batch_size`` is the batch of one step over all processes, so two ranks take half of it each and
DDP averages their gradients: for a model without batch norm or dropout (whose statistics and
draws are per rank) two ranks take the same steps as one process with the same batch_size.

The paper's own spectrogram model (smoke size: batch norm per channel and the scalar batch norm,
dropout) checks the rest: the ranks validate a share of the clips each and gather exactly what one
process scores with the saved model; an unfinished two-process run refuses to resume in one
process; and resumed by two processes with an enabled gradient scaler (as on CUDA; here without
float16 autocast) it ends exactly as the uninterrupted run.
"""
from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from study.checkpoint import BEST, LAST, load_checkpoint
from study.config import AudioConfig, preset_config
from study.data.patches import RandomPatches
from study.device import DistInfo
from study.evaluate import SongSet, predict_clips
from study.models import build_model
from tests.tiny import REGRESSION, TAGS, TINY_TRAIN, MemoryCache, run_tiny, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")

WORLD_SIZE = 2
BATCH = 8  # over both ranks: 4 each
EPOCHS = 2
PATCH = 16000  # 1 s at 16 kHz: the smoke spectrogram model's input
REAL_TRAIN = replace(TINY_TRAIN, batch_size=BATCH, max_epochs=EPOCHS, norm_clips=8, learning_rate=1e-3)


class Stop(Exception):
    """Raised by both ranks at the same point, as a kill between two epochs would stop them."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def plain_model():
    return tiny_model(batch_norm=False, dropout=0.0)


def real_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(preset_config("smoke").model, n_tags=len(TAGS), audio_cfg=AudioConfig())


def real_data():
    """(MemoryCache, RandomPatches, SongSet) of noise clips: 16 training clips, 7 validation clips of unequal lengths."""
    rng = np.random.default_rng(0)
    clips, labels = {}, {}
    for index in range(16 + 7):
        track_id = f"c{index}"
        clips[track_id] = rng.normal(0, rng.uniform(0.2, 1.0), 20000 + 4000 * (index % 4)).astype(np.float32)
        labels[track_id] = np.array([index % 2, index % 3 == 0, index % 2 == 0, rng.random()], np.float32)
    ids = list(clips)
    cache = MemoryCache(clips)
    patches = RandomPatches(cache, ids[:16], np.stack([labels[t] for t in ids[:16]]), patch_samples=PATCH,
                            seed=REAL_TRAIN.seed)
    valid = SongSet(reader=cache, track_ids=ids[16:], labels=np.stack([labels[t] for t in ids[16:]]),
                    patch_samples=PATCH, hop_samples=PATCH // 2)
    return cache, patches, valid


def run_real(folder: Path, dist: DistInfo = DistInfo(), **kwargs):
    from study.train import train

    _, patches, valid = real_data()
    config = replace(preset_config("smoke"), train=REAL_TRAIN)  # the smoke model, trained as REAL_TRAIN says
    return train(real_model(), patches, valid=valid, config=config, checkpoint_dir=folder, tags=TAGS,
                 is_regression=REGRESSION, progress=False, log=lambda line: None, dist=dist, **kwargs)


def stop_after(last_epoch: int):
    def stop(epoch, record):
        if epoch == last_epoch:
            raise Stop
    return stop


def enable_scaler_without_autocast() -> None:
    """An enabled GradScaler on the CPU, as a CUDA run has; no float16 autocast, so the numbers stay exact."""
    import study.evaluate
    import study.train

    study.train.amp_enabled = lambda device, requested: True
    study.train.autocast = study.evaluate.autocast = lambda device, enabled: contextlib.nullcontext()


def save(result, path: Path) -> None:
    torch.save({"state": result.model.state_dict(), "history": result.history, "world_size": result.world_size}, path)


def rank_main(rank: int, port: int, folder: str, phase: str) -> None:
    """One torchrun-like process: environment -> process group -> the phase's runs -> what each ended with."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD_SIZE), LOCAL_WORLD_SIZE=str(WORLD_SIZE))
    torch.set_num_threads(1)
    from study.device import setup_distributed, teardown_distributed

    folder = Path(folder)
    dist = setup_distributed("cpu")
    assert dist.rank == rank and dist.world_size == WORLD_SIZE and dist.distributed
    try:
        if phase == "train":
            plain = run_tiny(folder / "plain", replace(TINY_TRAIN, batch_size=BATCH, max_epochs=EPOCHS),
                             model=plain_model(), dist=dist)
            save(plain, folder / f"plain-rank{rank}.pt")
            save(run_real(folder / "real", dist), folder / f"real-rank{rank}.pt")
            with contextlib.suppress(Stop):
                run_real(folder / "killed", dist, on_epoch_end=stop_after(1))
        else:  # resume the killed run
            enable_scaler_without_autocast()
            save(run_real(folder / "killed", dist), folder / f"resumed-rank{rank}.pt")
    finally:
        teardown_distributed()


def spawn(folder: Path, phase: str) -> list[dict]:
    mp.spawn(rank_main, args=(free_port(), str(folder), phase), nprocs=WORLD_SIZE, join=True)
    name = {"train": "real", "resume": "resumed"}[phase]
    return [torch.load(folder / f"{name}-rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]


def without_seconds(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in history]


@pytest.mark.slow
def test_two_gloo_ranks_share_the_batch_validate_in_shares_and_resume_only_as_two(tmp_path):
    real = spawn(tmp_path, "train")

    # a model without batch norm or dropout: two ranks of half the batch take one process's steps
    plain = [torch.load(tmp_path / f"plain-rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]
    for name, tensor in plain[0]["state"].items():
        assert torch.equal(tensor, plain[1]["state"][name]), f"ranks disagree on {name}"
    single = run_tiny(tmp_path / "single", replace(TINY_TRAIN, batch_size=BATCH, max_epochs=EPOCHS),
                      model=plain_model())
    for name, tensor in single.model.state_dict().items():
        torch.testing.assert_close(plain[0]["state"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    assert len(plain[0]["history"]) == EPOCHS and plain[1]["history"] == plain[0]["history"]
    for ours, theirs in zip(plain[0]["history"], single.history):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)  # loss averaged over both ranks
        assert ours["valid_roc_auc"] == pytest.approx(theirs["valid_roc_auc"], abs=1e-6)
    assert not torch.equal(plain[0]["state"]["dense.weight"], plain_model().dense.weight)  # it did train

    # the paper's model: every rank ends with rank 0's best weights and record
    assert real[0]["world_size"] == WORLD_SIZE and real[1]["history"] == real[0]["history"]
    for name, tensor in real[0]["state"].items():
        assert torch.equal(tensor, real[1]["state"][name]), f"ranks disagree on {name}"
    assert [row["patches"] for row in real[0]["history"]] == [16, 32]  # the global epoch, not a rank's share
    best = load_checkpoint(tmp_path / "real" / BEST)
    assert best["world_size"] == WORLD_SIZE and load_checkpoint(tmp_path / "real" / LAST)["world_size"] == WORLD_SIZE

    # validation in shares, gathered: what one process scores with the saved model (batch norm buffers included)
    model = real_model()
    model.load_state_dict(best["model_state"])
    cache, _, valid = real_data()
    alone = predict_clips(model, cache, valid.track_ids, patch_samples=valid.patch_samples,
                          hop_samples=valid.hop_samples, batch_size=BATCH)
    np.testing.assert_allclose(best["valid_scores"].numpy(), alone, rtol=0, atol=2e-6)
    assert list(best["valid_ids"]) == list(valid.track_ids)

    # an unfinished two-process run refuses to continue in one process
    with pytest.raises(ValueError, match=r"trained by 2 process\(es\) and would resume with 1"):
        run_real(tmp_path / "killed")

    # two processes resume it, now with an enabled gradient scaler, and end as the uninterrupted run
    resumed = spawn(tmp_path, "resume")
    for rank in range(WORLD_SIZE):
        for name, tensor in real[rank]["state"].items():
            assert torch.equal(tensor, resumed[rank]["state"][name]), f"rank {rank}: resumed run differs on {name}"
        assert without_seconds(resumed[rank]["history"]) == without_seconds(real[rank]["history"])
    assert load_checkpoint(tmp_path / "killed" / LAST)["scaler_state"]  # saved by the enabled scaler
