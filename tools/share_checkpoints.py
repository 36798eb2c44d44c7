"""Keep the best checkpoint of each front-end's largest-size run with the results, for a fresh clone.

    python tools/share_checkpoints.py grids/default.yaml [--results-dir results]

For each network model of the grid, the run with the most training clips and the lowest seed is
copied to results/checkpoints/<run_id>/best.pt (study.experiment.share_checkpoint): the tour's
"what the first layer learns" and `study tag --checkpoint` then work without retraining.
"""
from __future__ import annotations

import argparse

from study.batch import load_grid
from study.experiment import share_checkpoint
from study.models import GBT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid")
    parser.add_argument("--results-dir", default="results")
    args = parser.parse_args()
    configs = [cfg for cfg in load_grid(args.grid, require_env=False).configs() if cfg.model.model != GBT]
    for model in sorted({cfg.model.model for cfg in configs}):
        mine = [cfg for cfg in configs if cfg.model.model == model]
        chosen = min(mine, key=lambda cfg: (-cfg.data.train_size, cfg.train.seed))
        print(share_checkpoint(chosen, args.results_dir))


if __name__ == "__main__":
    main()
