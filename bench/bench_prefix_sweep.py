"""Prefix-tree sweep vs one forward per plan over all ordered sub-nets (not a test).

    python bench/bench_prefix_sweep.py                       # resnet56, 729 plans, 256 images, 8x8 and 32x32
    python bench/bench_prefix_sweep.py --sizes 8 --bn both   # digits-sized only, both BN settings
    python bench/bench_prefix_sweep.py --naive-sample 0      # time the naive loop on every plan at every size

Random-init weights with perturbed BN statistics (so sub-nets disagree), a fixed batch of
random images. The naive loop is ``st_app.core.evaluate.sweep`` (one ``accuracy`` call per
plan); the tree is ``st_app.core.experiments.prefix_sweep``. Prints both times, the speed-up
and checks that every plan's accuracy is identical. With ``--naive-sample N`` (the default
for 32x32 images, where the naive loop takes many minutes on a laptop CPU) the naive loop runs
on N seeded random plans only, its time is extrapolated to all plans (said so in the output),
and equality is checked on those N plans.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from st_app.core.evaluate import sweep  # noqa: E402
from st_app.core.experiments import count_tree_nodes, prefix_sweep  # noqa: E402
from st_app.core.models import build_model  # noqa: E402
from st_app.core.plan import ordered_space  # noqa: E402


def make_model(arch: str, channels: int, size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(arch, 10, channels, size)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial statistics: sub-nets then disagree
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def run(arch: str, channels: int, size: int, n_images: int, bn: str, n_calib: int, naive_sample: int) -> bool:
    model = make_model(arch, channels, size)
    g = torch.Generator().manual_seed(2)
    images = torch.randn(n_images, channels, size, size, generator=g)
    labels = torch.randint(0, 10, (n_images,), generator=g)
    calib = torch.randn(n_calib, channels, size, size, generator=g) if bn == "recalibrate" else None
    plans = ordered_space(model.layout)
    sample = plans if not naive_sample or naive_sample >= len(plans) else \
        random.Random(0).sample(plans, naive_sample)

    t0 = time.perf_counter()
    tree = prefix_sweep(model, images, labels, bn=bn, calib_images=calib)
    t_tree = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive = sweep(model, sample, images, labels, bn=bn, calib_images=calib)
    t_naive = time.perf_counter() - t0
    t_naive_all = t_naive * len(plans) / len(sample)

    by_plan = {r.plan: r.accuracy for r in tree.results}
    equal = len(tree.results) == len(plans) and all(by_plan[r.plan] == r.accuracy for r in naive.results)
    max_diff = max(abs(by_plan[r.plan] - r.accuracy) for r in naive.results)
    blocks_naive = sum(len(p.blocks) for p in plans)
    note = "" if len(sample) == len(plans) else f" (extrapolated from {len(sample)} random plans)"
    print(f"{arch}, {len(plans)} ordered sub-nets, {n_images} images {channels}x{size}x{size}, BN {bn}"
          + (f", {n_calib} calibration images" if calib is not None else ""))
    tree_nodes = count_tree_nodes(model, plans, bn=bn, n_images=n_images)
    print(f"  block forwards per image batch: naive {blocks_naive}, tree {tree_nodes}")
    print(f"  naive loop : {t_naive_all:8.2f} s{note}")
    print(f"  prefix tree: {t_tree:8.2f} s")
    print(f"  speed-up   : {t_naive_all / t_tree:8.1f}x")
    print(f"  accuracies identical on {len(naive.results)} plans: {equal} (max |diff| {max_diff:.3g}); "
          f"tree mean {tree.summary()['mean']:.2f}%", flush=True)
    return equal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--sizes", default="8,32", help="image sizes: 8 = digits (1 channel), 32 = CIFAR (3 channels)")
    ap.add_argument("--bn", default="main", choices=["main", "recalibrate", "both"])
    ap.add_argument("--calib-images", type=int, default=512)
    ap.add_argument("--naive-sample", type=int, default=None,
                    help="naive loop on this many random plans, time extrapolated (0: all; default all for 8x8, "
                         "81 for 32x32)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared 2-core machine more threads make timings erratic)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ok = True
    for size in (int(s) for s in args.sizes.split(",")):
        channels = 1 if size <= 8 else 3
        sample = args.naive_sample if args.naive_sample is not None else (0 if size <= 8 else 81)
        for bn in (["main", "recalibrate"] if args.bn == "both" else [args.bn]):
            ok &= run(args.model, channels, size, args.images, bn, args.calib_images, sample)
    print(f"\n{args.threads} threads, torch {torch.__version__}, CPU")
    if not ok:
        raise SystemExit("MISMATCH: the tree's accuracies differ from the naive loop's")


if __name__ == "__main__":
    main()
