"""DistributedDataParallel as torchrun runs it: two CPU processes with the gloo backend.

Each rank reads the torchrun environment variables through study.device.setup_distributed and
trains on its half of every epoch's patches.  DDP averages the two ranks' gradients, so two
ranks of batch 4 take the same steps as one process of batch 8 over the same patches (no batch
norm or dropout in this model, whose statistics would be per rank): the parameters must agree
across ranks exactly and with the single process to float rounding.
"""
from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tests.tiny import TINY_TRAIN, run_tiny, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")

WORLD_SIZE = 2
PER_RANK_BATCH = 4
EPOCHS = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def plain_model():
    return tiny_model(batch_norm=False, dropout=0.0)


def rank_main(rank: int, port: int, folder: str) -> None:
    """One torchrun-like process: environment -> process group -> train -> save what it ended with."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD_SIZE))
    torch.set_num_threads(1)
    from study.device import setup_distributed, teardown_distributed

    dist = setup_distributed("cpu")
    assert dist.rank == rank and dist.world_size == WORLD_SIZE and dist.distributed
    try:
        cfg = replace(TINY_TRAIN, batch_size=PER_RANK_BATCH, max_epochs=EPOCHS)
        result = run_tiny(Path(folder) / "checkpoints", cfg, model=plain_model(), dist=dist)
        torch.save({"state": result.model.state_dict(), "history": result.history},
                   Path(folder) / f"rank{rank}.pt")
    finally:
        teardown_distributed()


@pytest.mark.slow
def test_two_gloo_ranks_end_identical_and_equal_one_process_with_the_global_batch(tmp_path):
    mp.spawn(rank_main, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    for name, tensor in ranks[0]["state"].items():
        assert torch.equal(tensor, ranks[1]["state"][name]), f"ranks disagree on {name}"
    assert (tmp_path / "checkpoints" / "best.pt").is_file()

    single = run_tiny(tmp_path / "single", replace(TINY_TRAIN, batch_size=WORLD_SIZE * PER_RANK_BATCH,
                                                    max_epochs=EPOCHS), model=plain_model())
    for name, tensor in single.model.state_dict().items():
        torch.testing.assert_close(ranks[0]["state"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    history = ranks[0]["history"]
    assert len(history) == EPOCHS and ranks[1]["history"] == history  # every rank got rank 0's record
    for ours, theirs in zip(history, single.history):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)  # loss averaged over both ranks
        assert ours["valid_roc_auc"] == pytest.approx(theirs["valid_roc_auc"], abs=1e-6)
    assert not torch.equal(ranks[0]["state"]["dense.weight"], plain_model().dense.weight)  # it did train
