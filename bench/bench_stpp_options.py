"""ST++ as the authors run it vs each named deviation, next to ST (not a test; CPU minutes).

    python bench/bench_stpp_options.py                          # resnet20 on digits, 30 epochs
    python bench/bench_stpp_options.py --epochs 5 --only stpp,st --json out.json

Trains every variant with the same recipe and seed, then reports the main net's test accuracy
and the mean +- std (and min) of all ordered sub-nets, with the main net's BN statistics and
with statistics re-estimated per sub-net on 1000 training images. Variants: ``st`` (the
paper's step; no BN re-estimation, its default), ``st+rebn`` (with it, as the authors'
trainer), ``stpp`` (the authors' ST++: every default), and ``stpp`` with one deviation each:
``main-ce=raw``, ``sub-input=independent``, ``min-side=auto``, ``norm-eps=1e-5``,
``no-rebn``, ``space=default`` (their full space instead of space3, which on resnet20 holds
only the full net), and ``former`` (all of them together: what ``stpp`` computed before).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from st_app.core.evaluate import accuracy, calibration_images  # noqa: E402
from st_app.core.experiments.prefix_sweep import prefix_sweep  # noqa: E402
from st_app.core.train import TrainConfig, Trainer  # noqa: E402

FORMER = {"main_ce": "raw", "sub_input": "independent", "min_side": "auto", "norm_eps": 1e-5, "space": "default"}
VARIANTS: dict[str, tuple[str, dict[str, Any], bool | None]] = {
    "st": ("st", {}, None),
    "st+rebn": ("st", {}, True),
    "stpp": ("stpp", {}, None),
    "stpp main-ce=raw": ("stpp", {"main_ce": "raw"}, None),
    "stpp sub-input=independent": ("stpp", {"sub_input": "independent"}, None),
    "stpp min-side=auto": ("stpp", {"min_side": "auto"}, None),
    "stpp norm-eps=1e-5": ("stpp", {"norm_eps": 1e-5}, None),
    "stpp no-rebn": ("stpp", {}, False),
    "stpp space=default": ("stpp", {"space": "default"}, None),
    "stpp former (all deviations; no rebn)": ("stpp", FORMER, False),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default=None, help="comma-separated variant names (default: all)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = list(VARIANTS) if not args.only else [n.strip() for n in args.only.split(",")]
    rows = []
    for name in names:
        method, opts, rebn = VARIANTS[name]
        cfg = TrainConfig(model=args.model, dataset=args.dataset, method=method, method_options=opts,
                          epochs=args.epochs, seed=args.seed, device="cpu", bn_reestimate=rebn)
        t0 = time.perf_counter()
        trainer = Trainer(cfg)
        trainer.run()
        seconds = time.perf_counter() - t0
        model, data = trainer.model, trainer.data
        calib = calibration_images(data.train_x, 1000, args.seed)
        row: dict[str, Any] = {"variant": name, "method": trainer.method.describe(),
                               "bn_reestimate": trainer.config.bn_reestimate, "seconds": round(seconds, 1),
                               "main_main_bn": accuracy(model, None, data.test_x, data.test_y)}
        for bn in ("main", "recalibrate"):
            s = prefix_sweep(model, data.test_x, data.test_y, bn=bn, calib_images=calib).summary()
            row[bn] = {k: round(float(v), 2) for k, v in s.items()}
        rows.append(row)
        print(f"{name:40} main {row['main_main_bn']:6.2f}%  sub-nets main BN {row['main']['mean']:6.2f} +- "
              f"{row['main']['std']:5.2f} (min {row['main']['min']:6.2f})  recalibrated {row['recalibrate']['mean']:6.2f}"
              f" +- {row['recalibrate']['std']:5.2f} (min {row['recalibrate']['min']:6.2f})  {seconds:6.0f} s",
              flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"model": args.model, "dataset": args.dataset, "epochs": args.epochs,
                                                   "seed": args.seed, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
