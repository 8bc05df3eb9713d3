"""ST / CT wall-time ratio per epoch on the same model, data and seed (not a test).

    python bench/bench_st_overhead.py                 # resnet20 on digits, 30 epochs each
    python bench/bench_st_overhead.py --epochs 5 --model resnet56

Prints the median training-epoch seconds (evaluation excluded) of CT, ST with prefix sharing
(our default) and ST as the paper's loop runs it (two backward passes, sub-net from the
input), their ratios to CT, and the total wall time of the CT + ST runs. The paper pays ~1.42x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from st_app.core.train import TrainConfig, Trainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    variants = [("ct", {}), ("st", {}), ("st (paper loop)", {"share_prefix": False})]
    rows = {}
    for label, opts in variants:
        cfg = TrainConfig(model=args.model, dataset=args.dataset, method=label.split()[0], epochs=args.epochs,
                          seed=0, device=args.device, method_options=opts)
        t0 = time.perf_counter()
        tr = Trainer(cfg)
        hist = tr.run()
        wall = time.perf_counter() - t0
        per_epoch = statistics.median(h["epoch_seconds"] for h in hist)
        rows[label] = (per_epoch, wall, hist[-1]["test_acc"])
        print(f"{label:16s} median epoch {per_epoch:6.3f}s  run {wall:6.1f}s  main acc {hist[-1]['test_acc']:.2f}%",
              flush=True)
    ct = rows["ct"][0]
    print(f"\n{args.model} on {args.dataset}, {args.epochs} epochs, {args.threads} threads, {args.device}")
    for label in rows:
        print(f"ratio {label:16s} / ct = {rows[label][0] / ct:.2f}x")
    print(f"CT + ST (default) wall time: {rows['ct'][1] + rows['st'][1]:.1f}s")


if __name__ == "__main__":
    main()
