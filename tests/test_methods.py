import copy
import random

import pytest
import torch
import torch.nn.functional as F

from st_app.core.methods import StimulativeTraining, kl_to_teacher, make_method, method_from_description
from st_app.core.plan import SubnetPlan


def _grads(model):
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)


def _block_params(name):
    # "layer2.1.conv1.weight" -> block global id for resnet20 (3 blocks per stage)
    if not name.startswith("layer"):
        return None
    s, i = name.split(".")[:2]
    return (int(s[5:]) - 1) * 3 + int(i)


@pytest.mark.parametrize("share", [True, False])
def test_kl_gradient_reaches_only_the_blocks_the_subnet_ran(tiny_model, share):
    x, y = _batch()
    ct_model, st_model = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    make_method("ct").step(ct_model, x, y, random.Random(0))
    method = StimulativeTraining(share_prefix=share)
    seed = next(k for k in range(100) if not SubnetPlan.sample(tiny_model.layout, random.Random(k)).is_full)
    drawn = SubnetPlan.sample(tiny_model.layout, random.Random(seed))  # the one plan the step draws
    terms = method.step(st_model, x, y, random.Random(seed))
    assert float(terms["kl"]) >= 0
    g_ct, g_st = _grads(ct_model), _grads(st_model)
    ran = set(drawn.blocks)
    changed_blocks = set()
    for name in g_ct:
        block = _block_params(name)
        same = torch.allclose(g_ct[name], g_st[name], atol=1e-7)
        if block is None:
            continue
        if "downsample" in name and block not in ran:
            continue  # a dropped entry block still runs its projection shortcut
        if block not in ran:
            assert same, f"{name}: KL gradient reached block {block}, which the sub-net {drawn} did not run"
        elif not same:
            changed_blocks.add(block)
    if not drawn.is_full:
        assert changed_blocks, "the KL gradient reached none of the sub-net's blocks"
        assert not torch.allclose(g_ct["fc.weight"], g_st["fc.weight"])


def test_teacher_is_detached():
    student = torch.randn(4, 10, requires_grad=True)
    teacher = torch.randn(4, 10, requires_grad=True)
    kl_to_teacher(student, teacher.detach()).backward()
    assert teacher.grad is None and student.grad is not None
    # KL(p || p) is zero with zero gradient
    z = torch.randn(4, 10, requires_grad=True)
    loss = kl_to_teacher(z, z.detach())
    loss.backward()
    assert abs(float(loss.detach())) < 1e-6 and z.grad.abs().max() < 1e-6


def test_kl_matches_the_paper_definition():
    s, t = torch.randn(5, 10), torch.randn(5, 10)
    p = F.softmax(t, -1)
    expected = (p * (p.log() - F.log_softmax(s, -1))).sum(-1).mean()
    assert torch.allclose(kl_to_teacher(s, t), expected, atol=1e-6)
    # KL-: only the direction of the (z-scored) logits matters
    assert torch.allclose(kl_to_teacher(s, t, z_score=True), kl_to_teacher(3 * s + 1, 2 * t - 4, z_score=True), atol=1e-5)


def test_prefix_sharing_gives_the_same_gradients_as_separate_passes(tiny_model):
    x, y = _batch(1)
    a, b = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    StimulativeTraining(share_prefix=True, n_subnets=3).step(a, x, y, random.Random(11))
    StimulativeTraining(share_prefix=False, n_subnets=3).step(b, x, y, random.Random(11))
    ga, gb = _grads(a), _grads(b)
    for name in ga:
        assert torch.allclose(ga[name], gb[name], atol=1e-5, rtol=1e-4), name


def test_stpp_options_run(tiny_model):
    x, y = _batch(2)
    m = make_method("stpp", n_subnets=2)
    m.prepare(tiny_model)
    assert m.kl_minus and m.small_inputs and m.n_subnets == 2
    terms = m.step(tiny_model, x, y, random.Random(0))
    assert torch.isfinite(terms["loss"]) and float(terms["kl"]) > 0
    with pytest.raises(ValueError, match="bad options"):
        make_method("ct", n_subnets=3)
    with pytest.raises(ValueError, match="unknown method"):
        make_method("xyz")


@pytest.mark.parametrize("name,opts", [("st", {}), ("stpp", {"n_subnets": 2}), ("stpp", {"min_scale": 0.6}),
                                       ("sd", {"final_survival": 0.7}), ("ct", {})])
def test_saved_method_descriptions_round_trip(tiny_model, name, opts):
    m = make_method(name, **opts)
    m.prepare(tiny_model)
    desc = m.describe()
    again = method_from_description(desc)
    again.prepare(tiny_model)
    assert again.describe() == desc and type(again) is type(m)


def test_eval_plan_is_the_main_net_except_for_fixed_plan_training(tiny_model):
    from st_app.core.experiments.loafing import FixedPlanTraining

    for name in ("ct", "st", "stpp", "sd"):
        assert make_method(name).eval_plan() is None
    m = FixedPlanTraining("0|3|6")
    m.prepare(tiny_model)
    assert m.eval_plan() == SubnetPlan.parse("0|3|6", tiny_model.layout)


def test_stochastic_depth_survival_and_eval_scaling(tiny_model):
    m = make_method("sd")
    m.prepare(tiny_model)
    scales = [b.branch_scale for b in tiny_model.blocks]
    assert scales[0] < 1.0 and scales[-1] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(scales, scales[1:]))
    x, y = _batch(3)
    tiny_model.train()
    assert torch.isfinite(m.step(tiny_model, x, y, random.Random(0))["loss"])
    tiny_model.eval()
    out_scaled = tiny_model(x)
    for b in tiny_model.blocks:
        b.branch_scale = 1.0
    assert not torch.allclose(out_scaled, tiny_model(x))
