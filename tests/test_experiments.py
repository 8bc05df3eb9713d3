"""st_app.core.experiments: the prefix-tree sweep equals the per-plan loop; analyses' data."""

import math

import pytest
import torch

from st_app.core.data import load_dataset
from st_app.core.evaluate import accuracy, bn_state, recalibrate_bn, sweep
from st_app.core.experiments import (
    ExperimentCancelled,
    FixedPlanTraining,
    block_importance,
    count_tree_nodes,
    default_loafing_plans,
    deletable_blocks,
    draw_deletions,
    draw_swaps,
    loafing,
    max_swaps,
    path_statistics,
    prefix_sweep,
    robustness,
    subnet_statistics,
    swappable_pairs,
    tree_logits,
    tree_sweep,
)
from st_app.core.models import build_model
from st_app.core.plan import SubnetPlan, ordered_space
from st_app.core.train import TrainConfig, Trainer

SYNTH = "synthetic:1,8,10,128,64"


def _model(arch="resnet20", seed=0):
    """Random weights and random BN statistics, so sub-nets really disagree."""
    torch.manual_seed(seed)
    model = build_model(arch, num_classes=10, in_channels=1, image_size=8)
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(3)
    # 600 test images: two evaluation chunks of 512; 300 calibration images: two batches of 256
    return (torch.randn(600, 1, 8, 8, generator=g), torch.randint(0, 10, (600,), generator=g),
            torch.randn(300, 1, 8, 8, generator=g))


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------- prefix sweep
def test_prefix_sweep_equals_naive_loop_with_main_bn(images):
    x, y, _ = images
    x, y = x[:520], y[:520]  # two evaluation chunks
    model = _model()
    naive = sweep(model, ordered_space(model.layout), x, y, bn="main")
    tree = prefix_sweep(model, x, y, bn="main")
    assert [str(r.plan) for r in tree.results] == [str(r.plan) for r in naive.results]
    assert [r.accuracy for r in tree.results] == [r.accuracy for r in naive.results]
    assert len({r.accuracy for r in tree.results}) > 3  # the check means something: plans disagree
    logits = tree_logits(model, ordered_space(model.layout), x)
    with torch.no_grad():
        for plan, z in logits.items():
            torch.testing.assert_close(z, model(x, plan), rtol=1e-5, atol=1e-5)


def test_prefix_sweep_equals_naive_loop_with_recalibrated_bn_on_a_restricted_space(images):
    x, y, calib = images
    model = _model(seed=5)
    space = [[0, 2], [1], [0, 1, 2]]  # depths {3,1} x {2} x {3,2,1}
    plans = ordered_space(model.layout, space)
    assert len(plans) == 6
    before = _snapshot(model)
    tree = prefix_sweep(model, x, y, bn="recalibrate", calib_images=calib, space=space)
    naive = sweep(model, plans, x, y, bn="recalibrate", calib_images=calib)
    assert [r.plan for r in tree.results] == plans
    assert [r.accuracy for r in tree.results] == [r.accuracy for r in naive.results]
    assert tree.bn == "recalibrate" and tree.n_images == 600
    # recalibrated statistics differ from the main ones: the results are not the main-BN ones
    main = prefix_sweep(model, x, y, bn="main", space=space)
    assert [r.accuracy for r in main.results] != [r.accuracy for r in tree.results]
    logits = tree_logits(model, plans, x, bn="recalibrate", calib_images=calib)
    for plan in plans[:3]:
        with torch.no_grad(), bn_state(model):
            recalibrate_bn(model, plan, calib)
            torch.testing.assert_close(logits[plan], model(x, plan), rtol=1e-5, atol=1e-5)
    after = _snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in before), "the model was left modified"
    assert not model.training


def test_tree_sweep_handles_deleted_swapped_and_projection_only_plans(images):
    x, y, calib = images
    model = _model(seed=7)
    lay = model.layout
    texts = ["0,1,2|3,5|6,7,8", "0,2,1|4|6,8,7", "1,2||6", "|4,5|", "0,1,2|3,4,5|6,7,8", "1,2||6"]
    plans = [SubnetPlan.parse(t, lay) for t in texts]
    for bn in ("main", "recalibrate"):
        tree = tree_sweep(model, plans, x[:200], y[:200], bn=bn, calib_images=calib)
        naive = sweep(model, plans, x[:200], y[:200], bn=bn, calib_images=calib)
        assert [r.plan for r in tree.results] == plans  # order and duplicates kept
        assert [r.accuracy for r in tree.results] == [r.accuracy for r in naive.results], bn


def test_tree_runs_each_shared_prefix_once(images):
    x, y, _ = images
    model = _model()
    calls = []
    hooks = [b.register_forward_hook(lambda *a, i=i: calls.append(i)) for i, b in enumerate(model.blocks)]
    try:
        prefix_sweep(model, x[:64], y[:64])
    finally:
        for h in hooks:
            h.remove()
    plans = ordered_space(model.layout)
    naive_calls = sum(len(p.blocks) for p in plans)  # 27 plans x 6 blocks = 162
    # one trie: 3 stage-0 nodes, 3 x 3 stage-1 nodes, 9 x 3 stage-2 nodes
    assert len(calls) == count_tree_nodes(model, plans, n_images=64) == 3 + 9 + 27
    assert len(calls) < naive_calls / 4
    # several test chunks: one trie per stage-0 depth (results arrive group by group)
    assert count_tree_nodes(model, plans, n_images=600) == (1 + 3 + 9) + (2 + 3 + 9) + (3 + 3 + 9)


def test_prefix_sweep_progress_stop_and_errors(images):
    x, y, _ = images
    model = _model()
    seen = []
    prefix_sweep(model, x[:32], y[:32], progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (27, 27) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    polls = iter(range(1000))
    part = prefix_sweep(model, x[:32], y[:32], should_stop=lambda: next(polls) > 12)
    assert 0 < len(part.results) < 27
    full = {r.plan: r.accuracy for r in prefix_sweep(model, x[:32], y[:32]).results}
    assert all(full[r.plan] == r.accuracy for r in part.results)
    with pytest.raises(ValueError, match="needs training images"):
        prefix_sweep(model, x, y, bn="recalibrate")
    with pytest.raises(ValueError, match="unknown BN setting"):
        prefix_sweep(model, x, y, bn="train")
    other = build_model("resnet32", 10, 1, 8)
    with pytest.raises(ValueError, match="another network layout"):
        tree_sweep(model, [other.layout.full_plan()], x, y)


# ------------------------------------------------------------------------------ sub-nets
def test_subnet_statistics_uses_same_plans_and_matches_sweep(images):
    x, y, calib = images
    ct, st = _model(seed=1), _model(seed=2)
    rep = subnet_statistics({"ct": ct, "st": st}, x[:100], y[:100], bn="main")
    d = rep.to_dict()
    assert d["n_plans"] == 27 and not d["sampled"] and d["bn"] == "main" and d["n_images"] == 100
    for name, model in (("ct", ct), ("st", st)):
        ref = sweep(model, ordered_space(model.layout), x[:100], y[:100])
        assert [r["accuracy"] for r in d[name]["results"]] == [round(r.accuracy, 4) for r in ref.results]
        assert d[name]["mean"] == pytest.approx(ref.summary()["mean"], abs=1e-3)
        assert {"mean", "std", "min", "max", "results"} <= set(d[name])
    sampled = subnet_statistics({"ct": ct, "st": st}, x[:50], y[:50], limit=10, seed=4).to_dict()
    assert sampled["sampled"] and sampled["n_plans"] == 10
    assert [r["plan"] for r in sampled["ct"]["results"]] == [r["plan"] for r in sampled["st"]["results"]]
    with pytest.raises(ValueError, match="same architecture"):
        subnet_statistics({"ct": ct, "st": _model("resnet32")}, x, y)
    # partial reports: after CT, only CT's part; the final report adds ST's without changing CT's
    parts: list[dict] = []
    final = subnet_statistics({"ct": ct, "st": st}, x[:100], y[:100], partial=parts.append).to_dict()
    assert len(parts) == 1 and "ct" in parts[0] and "st" not in parts[0]
    assert parts[0]["ct"] == final["ct"] == d["ct"]


# ---------------------------------------------------------------------------- robustness
def test_robustness_draws_are_reproducible_valid_and_shared():
    lay = _model().layout
    assert deletable_blocks(lay) == list(range(9))
    assert max_swaps(lay) == 3  # stage 1: three 16->16 blocks; stages 2, 3: two same-shape blocks
    assert all(lay.stage_of(a) == lay.stage_of(b) and lay.shapes[a] == lay.shapes[b] for a, b in swappable_pairs(lay))
    for k in (1, 2, 4):
        a, b = draw_deletions(lay, k, 6, seed=3), draw_deletions(lay, k, 6, seed=3)
        assert [str(p) for p, _ in a] == [str(p) for p, _ in b]
        for plan, blocks in a:
            assert SubnetPlan.parse(str(plan), lay) == plan
            assert len(plan.blocks) == 9 - k and not set(plan.blocks) & set(blocks)
        assert len({str(p) for p, _ in a}) > 1
    texts = lambda seed: [str(p) for p, _ in draw_deletions(lay, 3, 6, seed=seed)]  # noqa: E731
    assert texts(3) != texts(4)
    for k in (1, 2, 3):
        a, b = draw_swaps(lay, k, 5, seed=1), draw_swaps(lay, k, 5, seed=1)
        assert [str(p) for p, _ in a] == [str(p) for p, _ in b]
        for plan, pairs in a:
            assert SubnetPlan.parse(str(plan), lay) == plan
            moved = [i for i, (u, v) in enumerate(zip(plan.blocks, lay.full_plan().blocks)) if u != v]
            assert len(moved) == 2 * k and len({x for p in pairs for x in p}) == 2 * k
    with pytest.raises(ValueError, match="cannot delete k=10 blocks: this network has 9 deletable blocks"):
        draw_deletions(lay, 10, 1)
    with pytest.raises(ValueError, match="at most 3 disjoint swaps"):
        draw_swaps(lay, 4, 1)


def test_robustness_report_and_block_importance(images):
    x, y, _ = images
    ct, st = _model(seed=1), _model(seed=2)
    rep = robustness({"ct": ct, "st": st}, x[:100], y[:100], max_k=3, repeats=4, seed=0)
    d = rep.to_dict()
    assert [r["block"] for r in d["delete_one"]["ct"]] == list(range(9))
    assert [r["k"] for r in d["delete_k"]["st"]] == [1, 2, 3] and [r["k"] for r in d["swap_k"]["ct"]] == [1, 2, 3]
    assert {"mean", "std"} <= set(d["delete_k"]["ct"][0]) and {"mean", "std"} <= set(d["swap_k"]["st"][0])
    # the numbers are the plans' accuracies: recompute a delete-k mean by hand
    plans = [SubnetPlan.parse(t, ct.layout) for t in d["draws"]["delete_k"][1]["plans"]]
    accs = [accuracy(ct, p, x[:100], y[:100]) for p in plans]
    assert d["delete_k"]["ct"][1]["mean"] == pytest.approx(sum(accs) / len(accs), abs=1e-3)
    drops = block_importance(ct, x[:100], y[:100])
    assert drops == pytest.approx(rep.importance("ct"), abs=1e-3)
    without_4 = accuracy(ct, ct.layout.full_plan().delete(4), x[:100], y[:100])
    assert drops[4] == pytest.approx(accuracy(ct, None, x[:100], y[:100]) - without_4)
    with pytest.raises(ValueError, match="cannot delete k=12 blocks"):
        robustness({"ct": ct, "st": st}, x[:10], y[:10], max_k=12)
    with pytest.raises(ValueError, match="same architecture"):
        robustness({"ct": ct, "st": _model("resnet32")}, x[:10], y[:10])
    with pytest.raises(ExperimentCancelled):
        robustness({"ct": ct, "st": st}, x[:10], y[:10], should_stop=lambda: True)
    # a partial report is a snapshot: the app draws it while the worker goes on to ST
    parts: list[dict] = []
    robustness({"ct": ct, "st": st}, x[:30], y[:30], max_k=2, repeats=2, seed=0, partial=parts.append)
    assert len(parts) == 1 and set(parts[0]["delete_one"]) == set(parts[0]["delete_k"]) == {"ct"}


# -------------------------------------------------------------------------------- loafing
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    data = load_dataset(SYNTH)
    out = {}
    for method in ("ct", "st"):
        cfg = TrainConfig(model="resnet20", dataset=SYNTH, method=method, epochs=1, seed=0, device="cpu")
        Trainer(cfg, data=data, out_dir=root / method).run()
        out[method] = root / method
    return out, data


def test_fixed_plan_training_trains_only_the_subnet():
    data = load_dataset(SYNTH)
    cfg = TrainConfig(model="resnet20", dataset=SYNTH, method="ct", epochs=1, seed=0, device="cpu")
    trainer = Trainer(cfg, data=data)
    plan = SubnetPlan.parse("0|3|6", trainer.model.layout)
    trainer.method = FixedPlanTraining(plan)
    trainer.method.prepare(trainer.model)
    before = _snapshot(trainer.model)
    trainer.run()
    after = trainer.model.state_dict()
    changed = {k.split(".")[0] + "." + k.split(".")[1] for k in before
               if k.startswith("layer") and not torch.equal(before[k], after[k])}
    assert changed == {"layer1.0", "layer2.0", "layer3.0"}  # blocks 0, 3, 6 and nothing else
    assert not torch.equal(before["fc.weight"], after["fc.weight"])


def test_loafing_trains_alone_with_the_ct_recipe(runs):
    from st_app.core.checkpoint import load_checkpoint

    paths, data = runs
    ct, st = load_checkpoint(paths["ct"]), load_checkpoint(paths["st"])
    plans = default_loafing_plans(ct.model.layout)
    assert str(plans[0]) == "0|3|6" and len(plans) == 3 and len(set(plans)) == 3
    rep = loafing(ct, st, data, plans=plans[:1], device="cpu").to_dict()
    assert rep["recipe"] == ct.meta["config"] and rep["overrides"] == {}
    no_device = lambda d: {k: v for k, v in d.items() if k != "device"}  # noqa: E731
    assert no_device(rep["trained_with"]) == no_device(ct.meta["config"]) and rep["trained_with"]["device"] == "cpu"
    row = rep["results"][0]
    assert row["plan"] == "0|3|6" and {"alone", "within_ct", "within_st"} <= set(row)
    assert row["within_ct"] == pytest.approx(accuracy(ct.model, plans[0], data.test_x, data.test_y), abs=1e-3)
    # the same training by hand gives the same alone-accuracy (the recipe really is the one used)
    trainer = Trainer(TrainConfig.from_dict({**ct.meta["config"], "device": "cpu"}), data=data)
    trainer.method = FixedPlanTraining(plans[0])
    trainer.method.prepare(trainer.model)
    trainer.run()
    assert row["alone"] == pytest.approx(accuracy(trainer.model, plans[0], data.test_x, data.test_y), abs=1e-3)
    rep2 = loafing(ct, st, data, plans=plans[:1], epochs=2, device="cpu").to_dict()
    assert rep2["overrides"] == {"epochs": 2} and rep2["trained_with"]["epochs"] == 2
    assert rep2["recipe"] == ct.meta["config"] and rep2["results"][0]["alone_epochs"] == 2
    # the alone-run's per-epoch evaluation measured its own plan, not its untrained full net
    assert [r["eval_plan"] for r in trainer.history] == ["0|3|6"] * len(trainer.history)
    assert trainer.history[-1]["test_acc"] == pytest.approx(row["alone"], abs=1e-3)
    curve = rep2["results"][0]["alone_curve"]
    assert len(curve) == 2 and curve[-1] == pytest.approx(rep2["results"][0]["alone"], abs=1e-3)


# ---------------------------------------------------------------------------------- paths
def test_path_statistics_are_binomial():
    lay = _model().layout
    stats = path_statistics(SubnetPlan.parse("0,1|3|6,7,8", lay))
    assert stats.counts == tuple(math.comb(6, k) for k in range(7))
    assert stats.num_paths == 64 and stats.mean_length == 3.0
    assert sum(stats.fraction()) == pytest.approx(1.0)
    assert stats.to_dict()["by_length"][3] == {"length": 3, "paths": 20}
