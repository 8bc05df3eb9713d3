"""Every model family behind the one protocol: plans, prefix sharing, the prefix tree, sizes,
checkpoints, methods and ONNX export, each checked on a tiny model of each family."""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch
from torch import nn

from st_app.core.checkpoint import load_checkpoint, save_checkpoint
from st_app.core.evaluate import sweep
from st_app.core.experiments import tree_sweep
from st_app.core.export import export_onnx, verify_onnx
from st_app.core.methods import StimulativeTraining, make_method
from st_app.core.models import FAMILIES, build_model, family_of
from st_app.core.plan import SubnetPlan, ordered_space

#: one tiny model per family (and the transformer's second granularity), on 1x8x8 images
TINY = ["resnet20", "wrn-16-4", "densenet-bc-22", "vit-micro", "vit-micro:half"]


def tiny(name: str, seed: int = 0) -> nn.Module:
    """Random weights and random normalisation statistics, so sub-nets really disagree."""
    arch, _, granularity = name.partition(":")
    torch.manual_seed(seed)
    model = build_model(arch, 10, 1, 8, granularity=granularity or "block")
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features ** 0.5)
    return model.eval()


def edited(model: nn.Module) -> SubnetPlan:
    """A non-ordered plan the family allows: a middle unit deleted, plus a swap where allowed."""
    lay = model.layout
    plan = lay.full_plan().delete(lay.stages[-1][1])
    if lay.order == "fixed":
        return plan
    group = plan.stages[0]
    for a in group:
        for b in group:
            if a < b and (lay.order == "free" or lay.shapes[a] == lay.shapes[b]):
                return plan.swap(a, b)
    return plan


def test_every_family_is_covered():
    assert {family_of(n.partition(":")[0]).name for n in TINY} == {f.name for f in FAMILIES}


@pytest.mark.parametrize("name", TINY)
def test_full_plan_and_prefix_sharing(name):
    model = tiny(name)
    x = torch.randn(6, 1, 8, 8)
    plans = ordered_space(model.layout)[:30] + [edited(model)]
    for mode in (False, True):
        model.train(mode)
        with torch.no_grad():
            assert torch.equal(model(x), model(x, model.layout.full_plan()))
            logits, taps = model.forward_with_taps(x)
            assert torch.equal(logits, model(x))
            for plan in plans:
                torch.testing.assert_close(model.forward_from_taps(taps, plan), model(x, plan), rtol=1e-5, atol=1e-5)
    model.eval()
    assert not torch.allclose(model(x, plans[0]), model(x))
    twin = copy.deepcopy(model)
    assert torch.equal(twin(x, plans[-1]), model(x, plans[-1]))


@pytest.mark.parametrize("name", TINY)
def test_prefix_tree_equals_plan_by_plan(name):
    model = tiny(name, seed=3)
    g = torch.Generator().manual_seed(4)
    x, y, calib = torch.randn(80, 1, 8, 8, generator=g), torch.randint(0, 10, (80,), generator=g), \
        torch.randn(40, 1, 8, 8, generator=g)
    plans = ordered_space(model.layout)[:12] + [edited(model)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for bn in ("main", "recalibrate"):
        tree = tree_sweep(model, plans, x, y, bn=bn, calib_images=calib)
        naive = sweep(model, plans, x, y, bn=bn, calib_images=calib)
        assert [r.accuracy for r in tree.results] == [r.accuracy for r in naive.results], bn
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    main = [r.accuracy for r in tree_sweep(model, plans, x, y, bn="main").results]
    # LayerNorm keeps no running statistics: recalibrating changes nothing for a transformer
    assert (main == [r.accuracy for r in tree.results]) == (not has_bn)


@pytest.mark.parametrize("name", TINY)
def test_sub_net_sizes(name):
    model = tiny(name)
    full = model.layout.full_plan()
    smallest = SubnetPlan.from_depths(model.layout, [1] * len(model.layout.stages))
    assert model.plan_parameters(full) == sum(p.numel() for p in model.parameters())
    assert model.plan_parameters(smallest) < model.plan_parameters(full)
    assert 0 < model.plan_flops(smallest) < model.plan_flops(full)
    assert model.plan_flops(edited(model)) < model.plan_flops(full)


@pytest.mark.parametrize("name", TINY)
def test_checkpoints_round_trip_and_foreign_state_dicts_are_recognised(name, tmp_path):
    model = tiny(name)
    for i, block in enumerate(model.blocks):
        block.branch_scale = 1.0 - 0.01 * i
    plan = edited(model)
    x = torch.randn(3, 1, 8, 8)
    save_checkpoint(tmp_path / "run", model, {"epoch": 1})
    loaded = load_checkpoint(tmp_path / "run")
    assert loaded.model.config == model.config and loaded.model.layout == model.layout
    assert torch.equal(loaded.model(x, plan), model(x, plan))
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    foreign = load_checkpoint(tmp_path / "weights.pt", image_size=8)
    assert foreign.model.config.arch == model.config.arch and foreign.meta == {"foreign": True}
    for block in model.blocks:
        block.branch_scale = 1.0  # a bare state_dict carries no stochastic-depth scales
    if model.config.granularity == "block":
        assert torch.equal(foreign.model(x, plan), model(x, plan))


@pytest.mark.parametrize("name", TINY)
def test_methods_train_every_family(name):
    model = tiny(name)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)
    a, b = copy.deepcopy(model).train(), copy.deepcopy(model).train()
    StimulativeTraining(share_prefix=True, n_subnets=3).step(a, x, y, random.Random(5))
    StimulativeTraining(share_prefix=False, n_subnets=3).step(b, x, y, random.Random(5))
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert (pa.grad is None) == (pb.grad is None), n
        if pa.grad is not None:
            torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-5)
    for method, opts in (("stpp", {"n_subnets": 2, "min_side": 4}), ("sd", {})):
        m = make_method(method, **opts)
        net = copy.deepcopy(model).train()
        m.prepare(net)
        terms = m.step(net, x, y, random.Random(1))
        assert torch.isfinite(terms["loss"])
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in net.parameters())
    assert [blk.branch_scale for blk in net.blocks][-1] == pytest.approx(0.5)


@pytest.mark.parametrize("name", TINY)
def test_onnx_export_of_a_sub_net(name, tmp_path):
    model = tiny(name)
    plan = edited(model)
    path = export_onnx(model, plan, tmp_path / "sub.onnx")
    report = verify_onnx(model, plan, path, n=4)
    assert report.max_abs_diff <= 1e-4 and report.top1_agreement == 1.0


def test_loafing_triangle_from_the_command_line(tmp_path, capsys):
    """Tables 2-3: each smaller DenseNet-BC alone vs inside each bigger one, CT and ST."""
    from st_app.cli import main
    from st_app.core.data import load_dataset
    from st_app.core.evaluate import accuracy, calibration_images

    data = "synthetic:1,8,10,48,40"
    runs = {}
    for i, arch in enumerate(["densenet-bc-40", "densenet-bc-22"]):
        for kind in ("ct", "st"):
            model = tiny(arch, seed=10 * i + (kind == "st"))
            runs[arch, kind] = tmp_path / f"{arch}-{kind}"
            save_checkpoint(runs[arch, kind], model, {"dataset": {"name": data}, "epoch": 1,
                                                      "config": {"dataset": data, "epochs": 1, "model": arch}})
    args = ["analyze", "loafing", "--ct", f"{runs['densenet-bc-40', 'ct']},{runs['densenet-bc-22', 'ct']}",
            "--st", f"{runs['densenet-bc-40', 'st']},{runs['densenet-bc-22', 'st']}", "--calib-images", "16",
            "--out", str(tmp_path / "report"), "--json", "--quiet"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["analysis"] == "loafing_triangle" and report["archs"] == ["densenet-bc-22", "densenet-bc-40"]
    cells = {(r["subnet"], r["inside"]): r for r in report["results"]}
    assert set(cells) == {("densenet-bc-22", "alone"), ("densenet-bc-22", "densenet-bc-40"), ("densenet-bc-40", "alone")}
    test = load_dataset(data)
    calib = calibration_images(test.train_x, 16, 0)
    small, big = (load_checkpoint(runs[a, "st"]).model for a in ("densenet-bc-22", "densenet-bc-40"))
    plan = SubnetPlan.from_depths(big.layout, [3, 3, 3])
    inside = cells[("densenet-bc-22", "densenet-bc-40")]
    assert inside["plan"] == str(plan) and inside["depths"] == [3, 3, 3]
    assert inside["st"] == pytest.approx(accuracy(big, plan, test.test_x, test.test_y), abs=1e-3)
    assert inside["other_bn"]["st"] == pytest.approx(
        accuracy(big, plan, test.test_x, test.test_y, bn="recalibrate", calib_images=calib), abs=1e-3)
    assert cells[("densenet-bc-22", "alone")]["st"] == pytest.approx(accuracy(small, None, test.test_x, test.test_y),
                                                                     abs=1e-3)
    assert (tmp_path / "report" / "loafing_triangle.csv").exists()
    with pytest.raises(ValueError, match="not an ordered sub-net"):
        from st_app.core.experiments.triangle import triangle_pairs

        pair = [(type("C", (), {"model": tiny("vit-micro"), "meta": {}})(),) * 2,
                (type("C", (), {"model": big, "meta": {}})(),) * 2]
        triangle_pairs(pair)


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory):
    """One-epoch CT and ST runs of a vision transformer and a DenseNet-BC on synthetic 8x8 images."""
    from st_app.core.data import load_dataset
    from st_app.core.train import TrainConfig, Trainer

    root = tmp_path_factory.mktemp("family_runs")
    data = load_dataset("synthetic:1,8,10,96,48")
    for arch in ("vit-micro", "densenet-bc-22"):
        for method in ("ct", "st"):
            cfg = TrainConfig(model=arch, dataset=data.name, method=method, epochs=1, seed=0, device="cpu")
            Trainer(cfg, data=data, out_dir=root / f"{arch}-{method}").run()
    return root


@pytest.mark.parametrize("arch", ["vit-micro", "densenet-bc-22"])
def test_subnet_and_loafing_analyses_run_on_the_new_families(family_runs, arch, tmp_path, capsys):
    from st_app.cli import main

    ct, st = family_runs / f"{arch}-ct", family_runs / f"{arch}-st"
    assert main(["analyze", "subnets", "--ct", str(ct), "--st", str(st), "--out", str(tmp_path / "s"), "--json",
                 "--quiet"]) == 0
    subnets = json.loads(capsys.readouterr().out)
    layout = load_checkpoint(ct).model.layout
    assert subnets["arch"] == arch and subnets["n_plans"] == len(ordered_space(layout))
    assert [r["plan"] for r in subnets["ct"]["results"]] == [str(p) for p in ordered_space(layout)]
    smallest = "depths:" + ",".join("1" * len(layout.stages))
    assert main(["analyze", "loafing", "--ct", str(ct), "--st", str(st), "--plans", smallest, "--epochs", "1",
                 "--out", str(tmp_path / "l"), "--json", "--quiet"]) == 0
    loafing = json.loads(capsys.readouterr().out)
    (row,) = loafing["results"]
    assert row["depths"] == [1] * len(layout.stages) and 0 <= row["alone"] <= 100
    assert {"within_ct", "within_st", "other_bn"} <= set(row)
    assert main(["analyze", "robustness", "--ct", str(ct), "--st", str(st), "--max-k", "2", "--repeats", "2",
                 "--out", str(tmp_path / "r"), "--json", "--quiet"]) == 0
    robust = json.loads(capsys.readouterr().out)
    assert len(robust["delete_one"]["st"]) == layout.num_blocks
    assert robust["max_swaps"] == (0 if layout.order == "fixed" else 2)  # dense layers are never permuted
    assert main(["analyze", "importance", "--ct", str(ct), "--st", str(st), "--out", str(tmp_path / "i"),
                 "--json", "--quiet"]) == 0
    assert len(json.loads(capsys.readouterr().out)["importance"]["ct"]) == layout.num_blocks


def test_layout_rules_and_messages_per_family():
    resnet = build_model("resnet20", 10, 1, 8).layout
    with pytest.raises(ValueError, match="it belongs to stage 2, not stage 1"):
        SubnetPlan.parse("0,3|4|6", resnet)
    dense = build_model("densenet-bc-22", 10, 1, 8).layout
    assert (dense.order, dense.group_name, dense.unit_name) == ("fixed", "dense block", "layer")
    with pytest.raises(ValueError, match=r"layers cannot be permuted.*\(layer 2 is listed before 1 in dense block 1\)"):
        SubnetPlan.parse("0,2,1|3,4,5|6,7,8", dense)
    with pytest.raises(ValueError, match="cannot be permuted"):
        dense.full_plan().swap(3, 4)
    assert str(dense.full_plan().delete(4)) == "0,1,2|3,5|6,7,8"
    assert str(dense.full_plan().delete(4).delete(3).restore(4)) == "0,1,2|4,5|6,7,8"
    with pytest.raises(ValueError, match="space for dense block 2 must drop between 0 and 2 layers"):
        SubnetPlan.sample(dense, random.Random(0), [[0], [3], [0]])
    assert "concatenated" in dense.path_rule and dense.full_plan().num_paths == 2 ** 9
    vit = build_model("vit-micro", 10, 1, 8).layout
    n = vit.num_blocks
    assert vit.order == "free" and len(vit.stages) == 1 and vit.full_plan().num_branches == 2 * n
    assert str(vit.full_plan().swap(0, n - 1)).startswith(f"{n - 1},1,")
    assert len(ordered_space(vit)) == n


def test_registered_sizes_have_their_papers_shapes():
    from st_app.core.models import ModelConfig, model_from_config

    def empty(arch, size=32):  # shapes only: no weights are allocated
        return model_from_config(ModelConfig(arch, 10, 3, size), empty=True)

    wrn = empty("wrn-28-10")
    assert wrn.layout.depths == (4, 4, 4) and [wrn.layout.shapes[s[0]].out_channels for s in wrn.layout.stages] == [
        160, 320, 640]
    assert empty("wrn-16-4").layout.depths == (2, 2, 2)
    assert empty("densenet264", 224).layout.depths == (6, 12, 64, 48)
    assert empty("densenet-bc-100").layout.depths == (16, 16, 16)
    assert empty("vit_h_14", 224).layout.depths == (32,)
    bc40 = empty("densenet-bc-40")
    assert bc40.subnet_of(empty("densenet-bc-22")) == SubnetPlan.from_depths(bc40.layout, [3, 3, 3])
    assert bc40.subnet_of(empty("densenet121")) is None and empty("resnet56").subnet_of(empty("resnet20")) is not None


def test_transformer_halves_are_the_blocks_split_in_two():
    block = tiny("vit-micro")
    half = build_model("vit-micro", 10, 1, 8, granularity="half").eval()
    half.load_state_dict(block.state_dict())  # the same tensor names at both granularities
    n = block.layout.num_blocks
    assert half.layout.num_blocks == 2 * n and half.layout.kinds[:2] == ("attention", "mlp")
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(half(x), block(x))
        deleted = half.layout.full_plan().delete(2).delete(3)
        torch.testing.assert_close(half(x, deleted), block(x, block.layout.full_plan().delete(1)))
        only_mlp = half.layout.full_plan().delete(2)  # block 1 keeps its MLP half
        assert not torch.allclose(half(x, only_mlp), block(x, block.layout.full_plan().delete(1)))
    swapped = half.layout.full_plan().swap(0, 1)  # an MLP half may run before an attention half
    assert str(swapped).startswith("1,0,2")


@pytest.mark.parametrize("kind", ["ct", "st"])
def test_bundled_vit_micro_pair_reaches_95_percent_on_digits(kind):
    """The shipped 30-epoch vit-micro runs (resources/checkpoints/README.md has their commands)."""
    from st_app.core.data import load_dataset
    from st_app.core.evaluate import accuracy
    from st_app.core.resources import resource_path

    loaded = load_checkpoint(resource_path("checkpoints", f"digits-vit-micro-{kind}"))
    assert loaded.model.config.arch == "vit-micro" and loaded.meta["config"]["epochs"] == 30
    assert loaded.meta["method"]["name"] == kind
    digits = load_dataset("digits")
    assert accuracy(loaded.model, None, digits.test_x, digits.test_y) >= 95.0
