"""Seconds to tag a 30 s song with MTT_musicnn in our PyTorch code, beside musicnn's own TF code.

Two figures for ours: end to end as musicnn's ``extractor()`` works (load the model, decode the
file, log-mel, tags) and tagging alone with the model already loaded.  The TF figure is the median
of five end-to-end ``extractor()`` calls measured once by tools/make_musicnn_reference.py in a
throwaway environment and stored in tests/data/musicnn_reference.npz (its machine, threads and
versions are printed with it).  Run: ``.venv/bin/python benchmarks/bench_pretrained.py [--threads N]``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import torch

from study.audio import load_audio
from study.pretrained import load_pretrained, song_scores
from timing import median_seconds  # benchmarks/timing.py, beside this script

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "musicnn_reference.npz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        song = Path(tmp) / "song30.wav"  # the same kind of 30 s signal the TF timing used
        t = np.arange(30 * 16000) / 16000
        noise = np.random.RandomState(30).randn(t.size)
        soundfile.write(song, 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * noise, 16000, subtype="PCM_16")

        def end_to_end() -> None:
            model, _ = load_pretrained("MTT_musicnn", args.device)
            song_scores(model, load_audio(song))

        model, _ = load_pretrained("MTT_musicnn", args.device)
        audio = load_audio(song)
        ours_total = median_seconds(end_to_end, args.repeats)
        ours_tagging = median_seconds(lambda: song_scores(model, audio), args.repeats)

    print(f"tag a 30 s song with MTT_musicnn (median of {args.repeats}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.device})")
    print(f"  ours, end to end (load weights, decode, log-mel, tags): {ours_total:7.3f} s")
    print(f"  ours, tagging only (model loaded):                        {ours_tagging:7.3f} s")
    if REFERENCE.is_file():
        with np.load(REFERENCE) as reference:
            tf_seconds = float(reference["tf_seconds_tag_30s"])
            meta = json.loads(str(reference["meta_json"]))
        print(f"  musicnn's TF code, end to end (extractor()):             {tf_seconds:7.3f} s "
              f"(TF {meta['tensorflow']}, {meta['cpus']} CPUs, runs {[round(s, 2) for s in meta['tf_seconds_tag_30s_runs']]})")
        print(f"  speed-up end to end: x{tf_seconds / ours_total:.1f}")
    else:
        print(f"  (no TF reference time: {REFERENCE} is missing)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
