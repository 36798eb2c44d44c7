"""A peer's SampleCNN training path, for a side-by-side speed comparison (benchmarks/bench_speed.py).

Transcribed, in this repository's own code, from the public training code of the
sota-music-tagging-models repository (Won et al., 2020: training/model.py ``SampleCNN``,
training/modules.py ``Conv_1d``, training/data_loader/mtat_loader.py ``AudioFolder``,
training/solver.py): what it computes, not how it is written.

- data: one ``.npy`` file of 16 kHz samples per clip, opened memory-mapped for every item, a
  random 59,049-sample crop, the clip's binary tags; a shuffling DataLoader;
- model: ten blocks conv (3 taps, 'same' padding) -> batch norm -> ReLU -> max-pool, the first
  with stride 3 and no pool, pools of 3 after it, widths 128, 128, 128, 256, 256, 256, 256, 256,
  256, 512, then a 1-tap 512-filter block, dropout 0.5, a dense layer and a sigmoid;
- loss and optimiser: ``BCELoss`` on the sigmoid outputs, Adam (learning rate 1e-4, weight
  decay 1e-4, that repository's defaults for this model).

    python benchmarks/peer_samplecnn.py --work /tmp/peer --clips 256 --patches 320 --batch 16 --threads 2
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

CROP = 59_049  # 3^10 samples
WIDTHS = (128, 128, 128, 256, 256, 256, 256, 256, 256, 512)


class Block(nn.Module):
    """conv -> batch norm -> ReLU -> max-pool, as that repository's Conv_1d."""

    def __init__(self, inputs: int, outputs: int, *, taps: int = 3, stride: int = 1, pool: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(inputs, outputs, taps, stride=stride, padding=taps // 2)
        self.norm = nn.BatchNorm1d(outputs)
        self.pool = nn.MaxPool1d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.norm(self.conv(x))))


class PeerSampleCNN(nn.Module):
    def __init__(self, n_tags: int = 50) -> None:
        super().__init__()
        blocks = [Block(1, WIDTHS[0], stride=3, pool=1)]
        blocks += [Block(a, b) for a, b in zip(WIDTHS[:-1], WIDTHS[1:])]
        blocks.append(Block(WIDTHS[-1], 512, taps=1, pool=1))
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(0.5)
        self.dense = nn.Linear(512, n_tags)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = self.blocks(waveform.unsqueeze(1)).squeeze(-1)  # (batch, 512)
        return torch.sigmoid(self.dense(self.dropout(x)))


class NpyClips(Dataset):
    """Item i: a random crop of clip i's memory-mapped .npy file and its binary tags."""

    def __init__(self, files: list[Path], tags: np.ndarray) -> None:
        self.files, self.tags = files, tags

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        samples = np.load(self.files[index], mmap_mode="r")
        start = int(np.floor(np.random.random() * (len(samples) - CROP)))
        return np.array(samples[start:start + CROP], dtype=np.float32), self.tags[index].astype(np.float32)


def write_clips(folder: Path, clips: int, seconds: float = 29.0, n_tags: int = 50, seed: int = 0) -> tuple[list[Path], np.ndarray]:
    """``clips`` .npy files of noise-like audio (content does not change the timing) and random tags."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = []
    for index in range(clips):
        path = folder / f"clip{index:05d}.npy"
        if not path.exists():
            np.save(path, (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32))
        files.append(path)
    return files, (rng.random((clips, n_tags)) < 0.1).astype(np.float32)


def run(work: Path, *, clips: int, patches: int, batch: int) -> dict:
    files, tags = write_clips(work / "npy", clips)
    model = PeerSampleCNN(n_tags=tags.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    loss_fn = nn.BCELoss()
    loader = DataLoader(NpyClips(files, tags), batch_size=batch, shuffle=True, drop_last=False, num_workers=0)
    model.train()
    seen, started = 0, time.perf_counter()
    while seen < patches:
        for audio, target in loader:
            loss = loss_fn(model(audio), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(audio)
            if seen >= patches:
                break
    seconds = time.perf_counter() - started
    return {"clips_per_s": seen / seconds, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True)
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--patches", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run(Path(args.work), clips=args.clips, patches=args.patches, batch=args.batch)
    print(json.dumps({"workload": "samplecnn-peer", **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
