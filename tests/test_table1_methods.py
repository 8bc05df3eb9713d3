"""Table 1's baselines: layer / stage supervision and self-distillation, with training-only heads."""

import copy
import json
import random

import pytest
import torch
import torch.nn.functional as F

from st_app.core import checkpoint as ckpt
from st_app.core.methods import METHODS, DeepSupervision, SelfDistillation, make_method, method_from_description
from st_app.core.models import build_model
from st_app.core.train import TrainConfig, Trainer

SYN = "synthetic:1,8,10,96,48"


def _batch(seed=0, n=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_the_registry_has_table_ones_seven_methods():
    assert METHODS == ("ct", "layersup", "stagesup", "selfdistill", "sd", "st", "stpp")


@pytest.mark.parametrize("name, arch, heads", [("layersup", "resnet20", 8), ("stagesup", "resnet20", 2),
                                               ("layersup", "resnet50", 15), ("stagesup", "resnet50", 3),
                                               ("selfdistill", "resnet20", 2), ("selfdistill", "resnet50", 3)])
def test_one_auxiliary_classifier_per_point_except_the_main_heads(name, arch, heads):
    model = build_model(arch, 10, 3, 32)
    m = make_method(name)
    m.prepare(model)
    parts = m.training_modules()
    assert parts is not None and len(parts) == heads
    m.prepare(model)
    assert m.training_modules() is parts  # preparing again keeps the parts the optimizer holds


def test_layer_supervision_loss_is_main_ce_plus_the_mean_auxiliary_ce(tiny_model):
    x, y = _batch()
    m = make_method("layersup", aux_weight=0.5)
    m.prepare(tiny_model)
    terms = m.step(tiny_model, x, y, random.Random(0))
    with torch.no_grad():
        logits, taps = tiny_model.forward_with_taps(x)
        aux = [F.cross_entropy(head(taps[i]), y) for i, head in zip(m._points, m._heads.values())]
        expected = F.cross_entropy(logits, y) + 0.5 * sum(aux) / len(aux)
    assert float(terms["loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.training_modules().parameters()
               if p.dim() > 1)
    # the auxiliary heads send gradient into the early blocks beyond what CT does
    ct_model = copy.deepcopy(tiny_model)
    ct_model.zero_grad(set_to_none=True)
    make_method("ct").step(ct_model, x, y, random.Random(0))
    assert not torch.allclose(ct_model.layer1[0].conv1.weight.grad, tiny_model.layer1[0].conv1.weight.grad)


def test_self_distillation_terms(tiny_model):
    x, y = _batch(1)
    m = make_method("selfdistill")
    m.prepare(tiny_model)
    assert isinstance(m, SelfDistillation) and (m.temperature, m.distill_weight, m.hint_weight) == (3.0, 0.3, 0.1)
    terms = m.step(tiny_model, x, y, random.Random(0))
    assert {"loss", "ce", "kd", "hint"} <= set(terms) and all(torch.isfinite(v) for v in terms.values())
    assert float(terms["kd"]) > 0 and float(terms["hint"]) > 0
    # a shallow classifier's adapter brings its stage to the last stage's width and resolution
    _, taps = tiny_model.forward_with_taps(x)
    stage0_end = taps[3]  # stem, then blocks 0, 1, 2
    q, f = m.training_modules()[0](stage0_end)
    assert q.shape == (16, 10) and f.shape == (16, 64)
    assert m.training_modules()[0].adapter(stage0_end).shape[-2:] == taps[-1].shape[-2:]
    # no gradient from the distillation targets back into the deepest classifier's output
    only_kd = make_method("selfdistill", distill_weight=1.0, hint_weight=0.0)
    other = copy.deepcopy(tiny_model)
    only_kd.prepare(other)
    other.zero_grad(set_to_none=True)
    only_kd.step(other, x, y, random.Random(0))
    ce_only = copy.deepcopy(tiny_model)
    ce_only.zero_grad(set_to_none=True)
    make_method("ct").step(ce_only, x, y, random.Random(0))
    assert torch.allclose(other.fc.weight.grad, ce_only.fc.weight.grad, atol=1e-6)


@pytest.mark.parametrize("name", ["layersup", "selfdistill"])
def test_heads_are_trained_saved_and_the_checkpoint_stays_a_plain_network(tmp_path, name):
    cfg = TrainConfig(dataset=SYN, method=name, epochs=1, batch_size=32, device="cpu")
    run = tmp_path / name
    tr = Trainer(cfg, out_dir=run)
    before = copy.deepcopy(tr.method.training_modules().state_dict())
    tr.run()
    after = tr.method.training_modules().state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if after[k].is_floating_point())
    assert (run / ckpt.METHOD_FILE).exists()
    loaded = ckpt.load_checkpoint(run)
    plain = build_model("resnet20", 10, 1, 8)
    assert set(loaded.model.state_dict()) == set(plain.state_dict())
    assert json.loads((run / "meta.json").read_text())["method"]["name"] == name
    again = Trainer.resume(run, epochs=2)
    assert type(again.method) is type(tr.method)
    for k, v in again.method.training_modules().state_dict().items():
        assert torch.equal(v, after[k])


def test_descriptions_round_trip():
    model = build_model("resnet20", 10, 1, 8)
    for name, opts in (("layersup", {"aux_weight": 0.3}), ("stagesup", {}), ("selfdistill", {"temperature": 2.0})):
        m = make_method(name, **opts)
        m.prepare(model)
        again = method_from_description(m.describe())
        assert again.describe() == m.describe() and type(again) is type(m)
    assert isinstance(make_method("stagesup"), DeepSupervision) and make_method("stagesup").where == "stage"
    with pytest.raises(ValueError, match="bad options"):
        make_method("layersup", n_subnets=2)
