"""Loafing across a family (the paper's tables 2-3): each smaller network trained alone vs the
same architecture evaluated inside every bigger one, for CT and ST.

Input: CT and ST checkpoints of two or more sizes of one family, where each smaller net is an
ordered sub-net of each bigger one (:meth:`ResidualNet.subnet_of`: DenseNet-121 keeps the first
6/12/24/16 layers of DenseNet-169's dense blocks; resnet20 the first 3 blocks of resnet56's
stages). "Alone" is the smaller net's own main-net accuracy; "inside" is the accuracy of that
plan inside the bigger CT or ST net, under the BN setting asked for and under the other one.
All plans of one bigger net run through the prefix tree.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from ..data import ImageData
from ..evaluate import BN_MODES, calibration_images
from .common import ExperimentCancelled, Partial, Progress, ShouldStop, Steps, check_same_architecture, checkpoint_info
from .prefix_sweep import tree_sweep

__all__ = ["load_run_pairs", "loafing_triangle", "triangle_pairs", "triangle_report", "triangle_summary", "triangle_table"]


def triangle_pairs(pairs: Sequence[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """The (CT, ST) pairs sorted from the smallest net up, after checking they form a triangle."""
    if len(pairs) < 2:
        raise ValueError("the loafing triangle needs CT and ST checkpoints of at least two sizes")
    for ct, st in pairs:
        check_same_architecture({"ct": ct.model, "st": st.model})
    ordered = sorted(pairs, key=lambda p: (len(p[0].model.blocks), p[0].model.config.arch))
    archs = [ct.model.config.arch for ct, _ in ordered]
    if len(set(archs)) != len(archs):
        raise ValueError(f"an architecture is given twice: {', '.join(archs)}")
    first = ordered[0][0].model.config
    for ct, _ in ordered[1:]:
        c = ct.model.config
        if (c.num_classes, c.in_channels) != (first.num_classes, first.in_channels):
            raise ValueError(f"{first.arch} and {c.arch} were trained on data of different shapes")
    for i, (small, _) in enumerate(ordered):
        for big, _ in ordered[i + 1:]:
            if big.model.subnet_of(small.model) is None:
                raise ValueError(f"{small.model.config.arch} is not an ordered sub-net of {big.model.config.arch} "
                                 f"(depths {list(small.model.layout.depths)} vs {list(big.model.layout.depths)}, or a "
                                 "different width, growth or block type)")
    return ordered


def load_run_pairs(
    ct_runs: Sequence[str | Path],
    st_runs: Sequence[str | Path],
    *,
    device: Any = "cpu",
    dataset: str | None = None,
    data_dir: str | None = None,
    calib_n: int = 1000,
    seed: int = 0,
    test_images: int | None = None,
) -> tuple[list[tuple[Any, Any]], ImageData]:
    """Load (CT, ST) checkpoints, paired in order, and the one data set they all record, opened once.

    Each pair must hold one architecture, every model must fit the data's channels and classes,
    and all must record the same data set (``dataset`` chooses otherwise). Recorded data paths
    (an image folder) are never used silently: ``data_dir`` names the folder. A streamed set
    decodes only the test and calibration images the analyses read (:func:`analysis_view`).
    """
    from ..checkpoint import load_checkpoint
    from ..data import analysis_view, open_checkpoint_data
    from ..meta_schema import recorded_dataset

    if len(ct_runs) != len(st_runs):
        raise ValueError(f"{len(ct_runs)} CT runs but {len(st_runs)} ST runs; give one ST run per CT run, in the "
                         "same order")
    pairs = [(load_checkpoint(c, device=device), load_checkpoint(s, device=device)) for c, s in zip(ct_runs, st_runs)]
    for ct, st in pairs:
        check_same_architecture({"ct": ct.model, "st": st.model})
    chosen = sorted({recorded_dataset(ck.meta, dataset, data_dir)[0] for pair in pairs for ck in pair})
    if len(chosen) != 1:
        raise ValueError(f"the checkpoints were trained on different data sets ({', '.join(chosen)}); pass "
                         "--dataset to choose one")
    data = analysis_view(open_checkpoint_data(pairs[0][0].meta, dataset, data_dir), calib_n=calib_n, seed=seed,
                         test_images=test_images)
    for ct, _ in pairs:
        c = ct.model.config
        if (data.num_classes, data.in_channels) != (c.num_classes, c.in_channels):
            raise ValueError(f"data set {data.name} ({data.in_channels} channels, {data.num_classes} classes) does "
                             f"not fit the checkpoints' {c.arch} ({c.in_channels} channels, {c.num_classes} classes)")
    return pairs, data.to(device)


def loafing_triangle(
    pairs: Sequence[tuple[Any, Any]],
    data: ImageData,
    *,
    bn: str = "main",
    calib_images: Tensor | None = None,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    partial: Partial = None,
) -> dict[str, Any]:
    """Tables 2-3 for CT and ST: the report body (rows, alone and inside accuracies, both BN settings).

    ``pairs`` are loaded (CT, ST) checkpoints; ``calib_images`` (required) re-estimate BN
    statistics per sub-net for the recalibrated setting, which is always reported beside ``bn``.
    """
    if bn not in BN_MODES:
        raise ValueError(f"unknown BN setting {bn!r}; choose 'main' or 'recalibrate'")
    if calib_images is None or len(calib_images) == 0:
        raise ValueError("the loafing triangle reports both BN settings: it needs calibration images")
    t0 = time.perf_counter()
    ordered = triangle_pairs(pairs)
    archs = [ct.model.config.arch for ct, _ in ordered]
    other = "recalibrate" if bn == "main" else "main"
    x, y = data.test_x, data.test_y
    # per bigger net (column) and model kind: its full plan and the plans of every smaller net
    work = []
    for j, (ct, _) in enumerate(ordered):
        plans = [ct.model.layout.full_plan()] + [ct.model.subnet_of(s.model) for s, _ in ordered[:j]]
        work.append((j, plans))
    total = sum(len(p) for _, p in work) * 4
    steps = Steps(total, progress, should_stop)
    acc: dict[tuple[str, str, str, str], float] = {}  # (kind, subnet, inside, bn) -> accuracy
    done = 0
    for j, plans in work:
        for kind, index in (("ct", 0), ("st", 1)):
            model = ordered[j][index].model
            for setting in (bn, other):
                steps.check()
                result = tree_sweep(model, plans, x, y, bn=setting, calib_images=calib_images,
                                    progress=steps.sub(done), should_stop=should_stop)
                if len(result.results) < len(plans):
                    raise ExperimentCancelled("loafing triangle cancelled")
                done += len(plans)
                for i, r in enumerate(result.results):
                    subnet = archs[j] if i == 0 else archs[i - 1]
                    acc[(kind, subnet, archs[j], setting)] = round(r.accuracy, 4)
        if partial is not None and j + 1 < len(work):
            partial(_body(ordered, archs, acc, bn, other, data, calib_images, t0, complete=False))
    return _body(ordered, archs, acc, bn, other, data, calib_images, t0, complete=True)


def _body(ordered: list[tuple[Any, Any]], archs: list[str], acc: dict[tuple[str, str, str, str], float], bn: str,
          other: str, data: ImageData, calib: Tensor, t0: float, complete: bool) -> dict[str, Any]:
    rows = []
    for i, sub in enumerate(archs):
        small = ordered[i][0].model
        for j in range(i, len(archs)):
            inside = archs[j]
            if (("ct", sub, inside, bn)) not in acc:
                continue
            plan = ordered[j][0].model.subnet_of(small)
            rows.append({
                "subnet": sub, "inside": "alone" if i == j else inside, "depths": list(small.layout.depths),
                "plan": str(plan), "ct": acc[("ct", sub, inside, bn)], "st": acc[("st", sub, inside, bn)],
                "other_bn": {"bn": other, "ct": acc[("ct", sub, inside, other)], "st": acc[("st", sub, inside, other)]},
            })
    recipes: dict[str, dict[str, Any] | None] = {ct.model.config.arch: (ct.meta or {}).get("config")
                                                   for ct, _ in ordered}
    known = [r for r in recipes.values() if r]
    keys = ("dataset", "epochs", "batch_size", "lr", "seed", "weight_decay", "bn_reestimate")
    differs = sorted({k for k in keys for r in known if r.get(k) != known[0].get(k)})
    return {
        "archs": archs,
        "family": ordered[0][0].model.family,
        "bn": bn,
        "n_images": int(len(data.test_y)),
        "calib_images": int(len(calib)),
        "checkpoints": {ct.model.config.arch: {"ct": checkpoint_info(ct), "st": checkpoint_info(st)}
                        for ct, st in ordered},
        "recipes": recipes,
        "recipes_differ_in": differs,
        "alone": "each net's own main-net accuracy (its CT run for the CT column, its ST run for the ST column)",
        "results": rows,
        "complete": complete,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def triangle_report(
    pairs: Sequence[tuple[Any, Any]],
    data: ImageData,
    *,
    bn: str = "main",
    calib_n: int = 1000,
    seed: int = 0,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    partial: Partial = None,
) -> dict[str, Any]:
    """The complete ``loafing_triangle`` report (header + :func:`loafing_triangle`'s body)."""
    calib = calibration_images(data.train_x, calib_n, seed)
    head = {"analysis": "loafing_triangle", "dataset": data.name, "seed": seed}

    def complete(body: dict[str, Any]) -> dict[str, Any]:
        return {**head, "arch": " < ".join(body["archs"]), **body}

    body = loafing_triangle(pairs, data, bn=bn, calib_images=calib, progress=progress, should_stop=should_stop,
                            partial=None if partial is None else lambda b: partial(complete(b)))
    return complete(body)


TABLE_HEADER = ["subnet", "inside", "depths", "ct", "st", "bn", "ct_other_bn", "st_other_bn", "other_bn"]


def triangle_table(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = [[r["subnet"], r["inside"], " ".join(map(str, r["depths"])), r["ct"], r["st"], report["bn"],
             r["other_bn"]["ct"], r["other_bn"]["st"], r["other_bn"]["bn"]] for r in report["results"]]
    return list(TABLE_HEADER), rows


def triangle_summary(report: dict[str, Any]) -> list[str]:
    """Tables 2-3 as text: per training method, a row per smaller net, a column per container."""
    archs = report["archs"]
    cell = {(r["subnet"], r["inside"]): r for r in report["results"]}
    width = max(len(a) for a in archs) + 2
    lines = [f"loafing triangle ({report['family']} on {report['dataset']}, {report['n_images']} test images, "
             f"BN {report['bn']}): each net alone vs inside each bigger one"]
    if report.get("recipes_differ_in"):
        lines.append(f"  note: the runs' recipes differ in {', '.join(report['recipes_differ_in'])}")
    for kind in ("ct", "st"):
        lines.append(f"  {kind.upper():<{width}}{'alone':>9}" + "".join(f"{'in ' + a:>{width + 3}}" for a in archs[1:]))
        for i, sub in enumerate(archs):
            vals = [cell.get((sub, "alone"))] + [cell.get((sub, a)) if j > i else None
                                                  for j, a in enumerate(archs) if j > 0]
            text = "".join(f"{'' if v is None else format(v[kind], '.2f'):>{w}}"
                           for v, w in zip(vals, [9] + [width + 3] * (len(archs) - 1)))
            lines.append(f"  {sub:<{width}}{text}")
    return lines
