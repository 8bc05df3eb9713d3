"""Evaluate many sub-nets as a tree of shared prefixes instead of one forward per plan.

Ordered sub-nets share prefixes: every plan with the same first-stage depth shares the stem
and the first stage's activations, and so on stage by stage. Here each plan becomes a
sequence of *ops* (run block ``b``; or, for a dropped shape-changing entry block, only its
projection shortcut), the plans form a trie of those sequences, and every trie node runs
once: ResNet-56's 729 ordered sub-nets need 819 block forwards instead of ~11,000.

The results equal :func:`st_app.core.evaluate.accuracy` plan by plan:

- ``bn="main"``: eval mode, the same modules on the same 512-image test chunks.
- ``bn="recalibrate"``: a block's re-estimated BN statistics depend only on the prefix
  before it (calibration forwards run in train mode, where BN normalises with batch
  statistics), so each node re-estimates its own block's statistics once, on the
  calibration images flowing through its prefix, in the same 256-image batches and with
  the same cumulative average (``momentum=None``) as :func:`recalibrate_bn`; the test
  images then pass through the node in eval mode with those statistics.

Any plans work (deleted or swapped blocks too), not only ordered ones. The model is
left exactly as it was (:func:`st_app.core.evaluate.bn_state`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from ..evaluate import BN_MODES, PlanResult, SweepResult, bn_state, running_stats
from ..models import ResidualNet
from ..plan import SubnetPlan, ordered_space
from ..precision import active_precision, eval_batch_size
from ..subnet_eval.ops import Op, op_bn_layers, plan_ops, run_op, start_recalibration
from .common import Progress, ShouldStop

__all__ = ["prefix_sweep", "tree_sweep", "tree_logits", "plan_ops", "op_bn_layers", "run_op", "count_tree_nodes"]

#: batch sizes of :func:`recalibrate_bn` and of ``accuracy``'s prediction loop; using the
#: same split is what makes the tree's numbers identical to the per-plan ones.
CALIB_BATCH = 256
EVAL_BATCH = 512

LeafHook = Callable[[int, int, Tensor], None]  # (unique plan index, test chunk index, logits)


class _Stopped(Exception):
    pass


class _Node:
    __slots__ = ("op", "children", "ends", "bn_saved")

    def __init__(self, op: Op | None) -> None:
        self.op = op
        self.children: dict[Op, _Node] = {}
        self.ends: list[int] = []  # unique plans whose last op is this node
        self.bn_saved: list[tuple[Tensor, ...]] | None = None


def _group_key(plan: SubnetPlan) -> tuple[int, ...]:
    """Plans of one trie: those with the same first group (a one-group network: the same first unit)."""
    first = plan.stages[0]
    return first if len(plan.stages) > 1 else first[:1]


def _build_groups(model: ResidualNet, plans: Sequence[SubnetPlan], grouped: bool = True) -> list[_Node]:
    """One trie per first-stage op sequence (plans then complete group by group), or one trie.

    Groups cost a few repeated first-stage blocks but let results (and progress) arrive
    while the sweep runs when the test images take several chunks or BN is recalibrated.
    """
    groups: dict[tuple[int, ...], _Node] = {}
    for i, plan in enumerate(plans):
        ops = plan_ops(model, plan)
        node = groups.setdefault(_group_key(plan) if grouped else (), _Node(None))
        for op in ops:
            child = node.children.get(op)
            if child is None:
                child = node.children[op] = _Node(op)
            node = child
        node.ends.append(i)
    return list(groups.values())


def _grouped(bn: str, n_chunks: int) -> bool:
    return bn != "main" or n_chunks > 1


def count_tree_nodes(model: ResidualNet, plans: Sequence[SubnetPlan], *, bn: str = "main",
                     n_images: int = EVAL_BATCH) -> int:
    """Block-level forwards one pass of the tree needs per image chunk (stems excluded)."""

    def count(node: _Node) -> int:
        return sum(1 + count(c) for c in node.children.values())

    n_chunks = -(-n_images // EVAL_BATCH)
    return sum(count(g) for g in _build_groups(model, list(dict.fromkeys(plans)), _grouped(bn, n_chunks)))


class _Engine:
    def __init__(self, model: ResidualNet) -> None:
        self.model = model
        self._bn_cache: dict[Op | None, list[nn.modules.batchnorm._BatchNorm]] = {}

    def bns(self, op: Op | None) -> list[nn.modules.batchnorm._BatchNorm]:
        """BN layers whose statistics an op's forward uses (root: the stem)."""
        if op not in self._bn_cache:
            self._bn_cache[op] = op_bn_layers(self.model, op)
        return self._bn_cache[op]

    def run(self, op: Op | None, x: Tensor) -> Tensor:
        return run_op(self.model, op, x)

    def load(self, node: _Node) -> None:
        assert node.bn_saved is not None
        for m, saved in zip(self.bns(node.op), node.bn_saved):
            for live, kept in zip(running_stats(m), saved):
                live.copy_(kept)

    def save(self, node: _Node) -> None:
        node.bn_saved = [tuple(t.clone() for t in running_stats(m)) for m in self.bns(node.op)]

    def reset(self, node: _Node) -> None:
        start_recalibration(self.bns(node.op))  # cumulative average, as recalibrate_bn


def _tree_evaluate(
    model: ResidualNet,
    plans: Sequence[SubnetPlan],
    images: Tensor,
    labels: Tensor | None,
    *,
    bn: str,
    calib_images: Tensor | None,
    on_logits: LeafHook | None = None,
    on_plan_done: Callable[[int, float | None], None] | None = None,
    should_stop: ShouldStop = None,
) -> None:
    """Drive the trie; ``plans`` must be unique. Calls ``on_plan_done(i, accuracy)`` per plan."""
    if bn not in BN_MODES:
        raise ValueError(f"unknown BN setting {bn!r}; choose 'main' or 'recalibrate'")
    if bn == "recalibrate" and (calib_images is None or len(calib_images) == 0):
        raise ValueError("bn='recalibrate' needs training images to re-estimate statistics")
    for plan in plans:
        if plan.layout != model.layout:
            raise ValueError(
                f"plan {plan} was made for another network layout (depths {plan.layout.depths}, "
                f"this network has {model.layout.depths})"
            )
    device = next(model.parameters()).device
    precision = active_precision(device)
    images = precision.prepare_input(images.to(device))
    step = eval_batch_size(device, int(images.shape[-1]), EVAL_BATCH)  # as accuracy() chunks
    chunks = [images[i : i + step] for i in range(0, len(images), step)]
    label_chunks = None
    if labels is not None:
        labels = labels.to(device)
        label_chunks = [labels[i : i + step] for i in range(0, len(labels), step)]
    calib_batches: list[Tensor] = []
    if bn == "recalibrate":
        assert calib_images is not None
        calib_images = precision.prepare_input(calib_images.to(device))
        calib_batches = [calib_images[i : i + CALIB_BATCH] for i in range(0, len(calib_images), CALIB_BATCH)]
    eng = _Engine(model)
    n = len(images)

    def check() -> None:
        if should_stop is not None and should_stop():
            raise _Stopped

    def calibrate(node: _Node, box: list[Tensor], first: bool) -> None:
        check()
        x = box.pop()
        if first:
            eng.reset(node)
        else:
            eng.load(node)
        x = eng.run(node.op, x)
        eng.save(node)
        kids = list(node.children.values())
        for i, child in enumerate(kids):
            nxt = [x]
            if i == len(kids) - 1:
                del x  # the last child owns the activation: memory stays ~ one path
            calibrate(child, nxt, first)

    def evaluate(node: _Node, box: list[Tensor], chunk: int, correct: dict[int, int], last_chunk: bool) -> None:
        check()
        x = box.pop()
        if bn == "recalibrate":
            eng.load(node)
        x = eng.run(node.op, x)
        if node.ends:
            logits = model.forward_head(x).float()
            for i in node.ends:
                if on_logits is not None:
                    on_logits(i, chunk, logits)
                if label_chunks is not None:
                    pred = logits.argmax(dim=1)
                    correct[i] = correct.get(i, 0) + int((pred == label_chunks[chunk]).sum().item())
                if last_chunk and on_plan_done is not None:
                    on_plan_done(i, _percent(correct.get(i, 0), n) if label_chunks is not None else None)
        kids = list(node.children.values())
        for i, child in enumerate(kids):
            nxt = [x]
            if i == len(kids) - 1:
                del x
            evaluate(child, nxt, chunk, correct, last_chunk)

    with torch.no_grad(), bn_state(model), precision.autocast():
        try:
            for root in _build_groups(model, plans, _grouped(bn, len(chunks))):
                if bn == "recalibrate":
                    model.train()
                    for k, cb in enumerate(calib_batches):
                        calibrate(root, [cb], first=(k == 0))
                model.eval()
                correct: dict[int, int] = {}
                for c, chunk in enumerate(chunks):
                    evaluate(root, [chunk], c, correct, last_chunk=(c == len(chunks) - 1))
                if not chunks and on_plan_done is not None:
                    for i in _all_ends(root):
                        on_plan_done(i, float("nan"))
        except _Stopped:
            pass


def _all_ends(node: _Node) -> Iterable[int]:
    yield from node.ends
    for c in node.children.values():
        yield from _all_ends(c)


def _percent(correct: int, n: int) -> float:
    """Exactly ``accuracy``'s arithmetic: float32 mean of a 0/1 vector, times 100 in double."""
    if n == 0:
        return float("nan")
    hits = (torch.arange(n) < correct).float()
    return float(hits.mean().item() * 100.0)


def tree_sweep(
    model: ResidualNet,
    plans: Sequence[SubnetPlan],
    images: Tensor,
    labels: Tensor,
    *,
    bn: str = "main",
    calib_images: Tensor | None = None,
    progress: Progress = None,
    should_stop: ShouldStop = None,
) -> SweepResult:
    """Accuracy of any list of plans, sharing every common prefix (same numbers as ``sweep``).

    Results come in the order of ``plans``. ``progress(done, total)`` reports finished plans;
    when ``should_stop()`` turns true the plans finished so far are returned.
    """
    plans = list(plans)
    unique = list(dict.fromkeys(plans))
    index = {p: i for i, p in enumerate(unique)}
    multiplicity = [0] * len(unique)
    for p in plans:
        multiplicity[index[p]] += 1
    acc: dict[int, float] = {}
    done = 0

    def plan_done(i: int, value: float | None) -> None:
        nonlocal done
        acc[i] = float("nan") if value is None else value
        done += multiplicity[i]
        if progress is not None:
            progress(done, len(plans))

    _tree_evaluate(model, unique, images, labels, bn=bn, calib_images=calib_images,
                   on_plan_done=plan_done, should_stop=should_stop)
    out = SweepResult(bn=bn, n_images=int(len(labels)))
    out.results = [PlanResult(p, acc[index[p]]) for p in plans if index[p] in acc]
    return out


def prefix_sweep(
    model: ResidualNet,
    images: Tensor,
    labels: Tensor,
    *,
    bn: str = "main",
    calib_images: Tensor | None = None,
    space: Sequence[Sequence[int]] | None = None,
    progress: Progress = None,
    should_stop: ShouldStop = None,
) -> SweepResult:
    """Every ordered sub-net of ``space`` (default: all), evaluated as a prefix tree.

    Same plans, order and accuracies as ``sweep(model, ordered_space(model.layout, space), ...)``.
    """
    return tree_sweep(model, ordered_space(model.layout, space), images, labels, bn=bn,
                      calib_images=calib_images, progress=progress, should_stop=should_stop)


def tree_logits(
    model: ResidualNet,
    plans: Sequence[SubnetPlan],
    images: Tensor,
    *,
    bn: str = "main",
    calib_images: Tensor | None = None,
) -> dict[SubnetPlan, Tensor]:
    """Logits of every plan on ``images`` through the tree (for checks against ``model(x, plan)``)."""
    unique = list(dict.fromkeys(plans))
    parts: dict[int, list[Tensor]] = {}

    def keep(i: int, chunk: int, logits: Tensor) -> None:
        parts.setdefault(i, []).append(logits.detach().clone())

    _tree_evaluate(model, unique, images, None, bn=bn, calib_images=calib_images, on_logits=keep)
    return {p: torch.cat(parts[i]) for i, p in enumerate(unique) if i in parts}
