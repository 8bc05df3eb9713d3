"""`st` and `stpp` compute the authors' step: an independent transcription of their train.py.

``authors_step`` below is written from the facts of github Sunshine-Ye/NIPS22-ST ``train.py``
(l.430-627; notes in /work/notes/authors_recipe.md), in the shape of their loop, not from our
method: one ``zero_grad``; the main forward; under ``--norm_kd`` the logits are replaced by
their normalised version *before* the cross-entropy; ``(main_coef * CE).backward()``; then per
sub-net ``input = Normalize(Resize((s, s))(input))`` reassigned (compounding), forward of the
depth prefix, the same normalisation, the ``--st_loss`` loss, ``(coef * loss).backward()``.
Their tensor ``Resize`` is torchvision's with no antialias (their 2022 stack); ``Normalize``
uses the ImageNet constants of their loader.

Sub-net choices and input sides are forced identically on both sides; the loss and every
parameter gradient must agree to 1e-6 (relative), in float64.
"""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms

from st_app.core.methods import StepDraws, make_method
from st_app.core.models import build_model
from st_app.core.plan import SubnetPlan, ordered_space

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def authors_step(model, images, target, draws, *, norm_kd=True, norm_kd_type="default", amplitude=1.0, temp=1.0,
                 kl_coef=1.0, main_coef=1.0, st_loss="default", snet_dtrans=True, same_mscale=None,
                 kl_cos=False, kl_rcos=False, epoch=0, epochs=1):
    """One batch of the authors' ST/ST++ trainer; returns (main CE, [sub-net losses])."""
    resize_norm = lambda s, x: transforms.Normalize(MEAN, STD)(transforms.Resize((s, s), antialias=False)(x))  # noqa: E731

    def norm(z):
        classes = z.shape[1]
        if norm_kd_type == "default":
            return F.layer_norm(z, torch.Size((classes,)), None, None, 1e-7) * amplitude
        if norm_kd_type == "v1":
            return F.layer_norm(z, torch.Size((classes,)), None, None, 1e-7)
        return F.normalize(z, p=2, dim=1, eps=1e-7) * amplitude

    model.zero_grad(set_to_none=True)
    inp = images
    if same_mscale is not None:
        inp = resize_norm(same_mscale, inp)
    max_output = model(inp)
    if norm_kd:
        max_output = norm(max_output)
    loss = nn.CrossEntropyLoss()(max_output, target)
    max_output_detach = max_output.detach()
    adaptive = torch.std(max_output_detach, dim=-1, keepdim=True) if norm_kd_type == "v1" else 1
    (main_coef * loss).backward()
    sub_losses = []
    for depths, size in draws:
        plan = SubnetPlan.from_depths(model.layout, depths)
        if snet_dtrans:
            inp = resize_norm(size, inp)
        output = model(inp, plan)
        if norm_kd:
            output = norm(output)
        if st_loss == "default":
            kl = nn.KLDivLoss(reduction="batchmean")(F.log_softmax(output * adaptive / temp, dim=1),
                                                     F.softmax(max_output_detach * adaptive / temp, dim=1)) * temp * temp
        elif st_loss == "CE":
            kl = nn.CrossEntropyLoss()(output, F.softmax(max_output_detach, dim=1))
        elif st_loss == "CE_target":
            kl = nn.CrossEntropyLoss()(output, target)
        else:  # MSE
            kl = nn.MSELoss()(F.softmax(output, dim=1), F.softmax(max_output_detach, dim=1))
        if kl_cos:
            coef = kl_coef * 0.5 * (1 - math.cos(math.pi * epoch / epochs))
        elif kl_rcos:
            coef = kl_coef - kl_coef * 0.5 * (1 - math.cos(math.pi * epoch / epochs))
        else:
            coef = kl_coef
        (coef * kl).backward()
        sub_losses.append(kl.detach())
    return loss.detach(), sub_losses


def _grads(model):
    return {n: p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            for n, p in model.named_parameters()}


def _rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _assert_same(ours, theirs, tol=1e-6):
    flat_a = torch.cat([ours[n].flatten() for n in theirs])
    flat_b = torch.cat([theirs[n].flatten() for n in theirs])
    assert _rel(flat_a, flat_b) <= tol, f"gradients differ by {_rel(flat_a, flat_b):.3g} (relative norm)"
    for n in theirs:
        scale = float(theirs[n].abs().max())
        if scale > 0:
            assert float((ours[n] - theirs[n]).abs().max()) / scale <= tol, n


def _setup(arch, side, batch, seed=0):
    torch.manual_seed(seed)
    model = build_model(arch, 10, 3, side).double().train()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, 3, side, side, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (batch,), generator=g)
    return model, x, y


def _plans(model, space, n, seed):
    rng = random.Random(seed)
    return [SubnetPlan.sample(model.layout, rng, space) for _ in range(n)]


def _run_ours(method, model, x, y, draws, main_size=None, epoch=0, epochs=1):
    method.prepare(model)
    method.begin_epoch(epoch, epochs)
    model.zero_grad(set_to_none=True)
    terms = method.run_step(model, x, y, StepDraws(main_size, draws))
    return terms, _grads(model)


def _compare(method, model, x, y, plans, sizes, main_size=None, epoch=0, epochs=1, **authors):
    ours_model, their_model = copy.deepcopy(model), copy.deepcopy(model)
    terms, ours = _run_ours(method, ours_model, x, y, list(zip(plans, sizes)), main_size, epoch, epochs)
    ce, subs = authors_step(their_model, x, y, [(p.depths, s) for p, s in zip(plans, sizes)],
                            same_mscale=main_size, epoch=epoch, epochs=epochs, **authors)
    theirs = _grads(their_model)
    assert float(terms["ce"]) == pytest.approx(float(ce), rel=1e-6)
    assert float(terms["kl"]) == pytest.approx(float(sum(subs)), rel=1e-6, abs=1e-12)
    _assert_same(ours, theirs)
    return ours, theirs


RESNET20_SIZES = [20, 32, 13, 27, 16, 32]  # int(32 * 0.43) = 13 .. 32, the authors' Dtrans7 range


def test_stpp_defaults_are_the_authors_st_pp_resnet20():
    model, x, y = _setup("resnet20", 32, 4)
    # resnet20's space3 keeps every block (stages of 3): force sub-nets from the full space
    plans = _plans(model, None, 6, seed=3)
    assert sum(not p.is_full for p in plans) >= 4
    method = make_method("stpp")
    _compare(method, model, x, y, plans, RESNET20_SIZES, norm_kd=True, snet_dtrans=True)
    d = method.describe()
    assert (d["n_subnets"], d["kl_minus"], d["small_inputs"], d["space_name"]) == (6, True, True, "space3")
    assert d["space"] == [[0], [0], [0]] and d["min_side"] is None and d["norm_eps"] == 1e-7
    assert method.smallest_input(32) == 13 and method.smallest_input(200) == 86 and method.smallest_input(224) == 96


def test_stpp_defaults_are_the_authors_st_pp_resnet50():
    model, x, y = _setup("resnet50", 64, 2)
    method = make_method("stpp")
    method.prepare(model)
    assert method.space == [[0], [0, 1], [0, 1, 2, 3], [0]]  # their space3
    plans = _plans(model, method.space, 6, seed=5)
    assert len({p.depths for p in plans}) >= 3
    # sides from the authors' range [int(64 * 0.43), 64] = [27, 64], mostly small to keep the test quick
    _compare(method, model, x, y, plans, [40, 27, 33, 29, 48, 31])


@pytest.mark.parametrize("arch, side, batch, shares", [("resnet20", 32, 4, (True, False)),
                                                       ("resnet50", 64, 2, (True,))])
def test_st_is_the_authors_st(arch, side, batch, shares):
    """ST: one sub-net, plain KL at T=1, no resize; our prefix-sharing single backward included."""
    model, x, y = _setup(arch, side, batch)
    plans = [next(p for p in _plans(model, None, 20, seed=1) if not p.is_full)]
    for share in shares:
        method = make_method("st", share_prefix=share)
        _compare(method, model, x, y, plans, [None], norm_kd=False, snet_dtrans=False)


OPTION_CASES = [
    ({"norm_type": "v1"}, {"norm_kd_type": "v1"}),
    ({"norm_type": "v2", "amplitude": 3.0}, {"norm_kd_type": "v2", "amplitude": 3.0}),
    ({"amplitude": 2.0, "temperature": 4.0}, {"amplitude": 2.0, "temp": 4.0}),
    ({"sub_loss": "soft-ce"}, {"st_loss": "CE"}),
    ({"sub_loss": "label-ce"}, {"st_loss": "CE_target"}),
    ({"sub_loss": "mse"}, {"st_loss": "MSE"}),
    ({"kl_weight": 0.5, "main_weight": 2.0}, {"kl_coef": 0.5, "main_coef": 2.0}),
    ({"kl_ramp": "cos", "kl_weight": 2.0}, {"kl_cos": True, "kl_coef": 2.0}),
    ({"kl_ramp": "rcos"}, {"kl_rcos": True}),
    ({"kl_minus": False}, {"norm_kd": False}),
    ({"small_inputs": False}, {"snet_dtrans": False}),
]


@pytest.mark.parametrize("ours, theirs", OPTION_CASES, ids=[str(o) for o, _ in OPTION_CASES])
def test_the_authors_options_match_their_code(ours, theirs):
    model, x, y = _setup("resnet20", 32, 4, seed=7)
    plans = _plans(model, None, 3, seed=11)
    sizes = [24, 13, 32] if ours.get("small_inputs", True) else [None] * 3
    _compare(make_method("stpp", n_subnets=3, **ours), model, x, y, plans, sizes, epoch=3, epochs=10, **theirs)


def test_same_scale_image_matches_their_code():
    model, x, y = _setup("resnet20", 32, 4, seed=8)
    plans = _plans(model, None, 2, seed=4)
    _compare(make_method("stpp", n_subnets=2, same_scale_image=True), model, x, y, plans, [18, 30], main_size=21)


def test_each_deviation_option_changes_the_gradient():
    model, x, y = _setup("resnet20", 32, 4, seed=9)
    plans = _plans(model, None, 3, seed=12)
    draws = list(zip(plans, [20, 14, 32]))
    _, base = _run_ours(make_method("stpp", n_subnets=3), copy.deepcopy(model), x, y, draws)
    for option in ({"main_ce": "raw"}, {"sub_input": "independent"}, {"norm_eps": 1e-5}):
        _, other = _run_ours(make_method("stpp", n_subnets=3, **option), copy.deepcopy(model), x, y, draws)
        flat = torch.cat([g.flatten() for g in other.values()])
        ref = torch.cat([g.flatten() for g in base.values()])
        assert _rel(flat, ref) > 1e-8, f"{option} did not change the gradient"
    # min_side is a floor on the *drawn* sides: same seed, different draws, different gradient
    a, b = make_method("stpp", n_subnets=3), make_method("stpp", n_subnets=3, min_side=28)
    for m in (a, b):
        m.prepare(model)
    da, db = a.draw(model, x, random.Random(5)), b.draw(model, x, random.Random(5))
    assert [p for p, _ in da.subnets] == [p for p, _ in db.subnets]
    assert min(s for _, s in db.subnets) >= 28 and [s for _, s in da.subnets] != [s for _, s in db.subnets]
    ga = _run_ours(a, copy.deepcopy(model), x, y, da.subnets)[1]
    gb = _run_ours(b, copy.deepcopy(model), x, y, db.subnets)[1]
    assert _rel(torch.cat([g.flatten() for g in gb.values()]), torch.cat([g.flatten() for g in ga.values()])) > 1e-8


def test_draws_follow_the_authors_ranges():
    model = build_model("resnet50", 10, 3, 64)
    method = make_method("stpp")
    method.prepare(model)
    rng = random.Random(0)
    x = torch.zeros(1, 3, 200, 200)
    sides, plans = [], set()
    for _ in range(300):
        d = method.draw(model, x, rng)
        assert d.main_size is None and len(d.subnets) == 6
        sides += [s for _, s in d.subnets]
        plans |= {p.depths for p, _ in d.subnets}
    assert min(sides) == 86 and max(sides) == 200  # randint(int(200 * 0.43), 200), inclusive
    assert plans == {p.depths for p in ordered_space(model.layout, method.space)} and len(plans) == 8
