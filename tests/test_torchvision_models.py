"""torchvision's own models: their random-init state_dicts load through ``eval --checkpoint x.pt
--model NAME`` and give torchvision's logits; DenseNet-121 inside DenseNet-169 is a plan."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from torch import nn

from st_app.cli import main
from st_app.core.checkpoint import load_checkpoint, save_checkpoint
from st_app.core.data import load_dataset
from st_app.core.models import build_model
from st_app.core.plan import SubnetPlan

CASES = [("densenet121", 32), ("densenet169", 32), ("resnext50_32x4d", 32), ("wide_resnet50_2", 32), ("vit_b_16", 224)]


def _randomise(model: nn.Module, seed: int) -> None:
    """Random BN statistics and non-zero heads (torchvision zero-initialises a ViT's head)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        head = getattr(getattr(model, "heads", None), "head", None)
        if head is not None:
            head.weight.copy_(torch.randn(head.weight.shape, generator=g) * 0.05)


@pytest.mark.parametrize("arch,size", CASES)
def test_torchvision_state_dict_evaluates_with_torchvisions_logits(arch, size, tmp_path, capsys):
    torch.manual_seed(0)
    tv = getattr(torchvision.models, arch)(weights=None, num_classes=5).eval()
    _randomise(tv, 1)
    torch.save(tv.state_dict(), tmp_path / "x.pt")
    data = f"synthetic:3,{size},5,2,1"  # one test image: vit_b_16 at 224 px is ~1 s a forward
    assert main(["eval", "--checkpoint", str(tmp_path / "x.pt"), "--model", arch, "--dataset", data, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    test = load_dataset(data)
    loaded = load_checkpoint(tmp_path / "x.pt", arch=arch)  # what eval loads
    assert loaded.model.config.arch == arch and loaded.meta == {"foreign": True}
    with torch.no_grad():
        expected, got = tv(test.test_x), loaded.model(test.test_x)
    assert float((expected - got).abs().max()) <= 1e-5
    accuracy = float((expected.argmax(1) == test.test_y).float().mean()) * 100
    assert report["results"][0]["plan"] == str(loaded.model.layout.full_plan())
    assert report["results"][0]["accuracy"] == pytest.approx(accuracy, abs=1e-3)


def _dense_reference(tv: nn.Module, x: torch.Tensor, keep: list[int] | list[set[int]]) -> torch.Tensor:
    """torchvision's DenseNet modules run by hand: the first keep[i] layers of dense block i (or
    the layers in the set keep[i]), zeros in the channels of the others (the README's definition)."""
    f = tv.features
    x = f.pool0(f.relu0(f.norm0(f.conv0(x))))
    for i, k in enumerate(keep):
        kept = set(range(k)) if isinstance(k, int) else k
        feats = [x]
        for j, layer in enumerate(getattr(f, f"denseblock{i + 1}").values()):
            new = layer(feats)
            feats.append(new if j in kept else torch.zeros_like(new))
        x = torch.cat(feats, 1)
        if i < len(keep) - 1:
            x = getattr(f, f"transition{i + 1}")(x)
    x = torch.relu(f.norm5(x))
    return tv.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_densenet121_inside_densenet169_from_the_command_line(tmp_path, capsys):
    torch.manual_seed(0)
    tv = torchvision.models.densenet169(weights=None, num_classes=5).eval()
    _randomise(tv, 2)
    ours = build_model("densenet169", 5, 3, 32)
    ours.load_state_dict(tv.state_dict())
    data = "synthetic:3,32,5,4,6"
    save_checkpoint(tmp_path / "run", ours, {"dataset": {"name": data}, "epoch": 0})
    assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--plans", "depths:6,12,24,16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    plan = SubnetPlan.from_depths(ours.layout, [6, 12, 24, 16])
    assert [r["plan"] for r in report["results"]] == [str(plan)] and report["results"][0]["depths"] == [6, 12, 24, 16]
    test = load_dataset(data)
    ours.eval()
    with torch.no_grad():
        expected = _dense_reference(tv, test.test_x, [6, 12, 24, 16])
        torch.testing.assert_close(ours(test.test_x, plan), expected, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(expected, tv(test.test_x))  # a different network than 169
    accuracy = float((expected.argmax(1) == test.test_y).float().mean()) * 100
    assert report["results"][0]["accuracy"] == pytest.approx(accuracy, abs=1e-3)
    # the architecture of densenet121 is an ordered sub-net of densenet169 (and of nothing smaller)
    d121 = build_model("densenet121", 5, 3, 32)
    assert ours.subnet_of(d121) == plan and d121.subnet_of(ours) is None


def test_a_deleted_middle_layer_leaves_zeros_that_later_layers_read():
    torch.manual_seed(0)
    tv = torchvision.models.densenet121(weights=None, num_classes=5).eval()
    _randomise(tv, 3)
    ours = build_model("densenet121", 5, 3, 32).eval()
    ours.load_state_dict(tv.state_dict())
    plan = ours.layout.full_plan().delete(2).delete(20)  # layer 3 of block 1, layer 3 of block 3 (0-based 2, 20)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = _dense_reference(tv, x, [set(range(6)) - {2}, set(range(12)), set(range(24)) - {2}, set(range(16))])
        torch.testing.assert_close(ours(x, plan), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="layers cannot be permuted"):
        plan.swap(0, 1)
    assert str(plan.restore(2)).startswith("0,1,2,3,4,5|")
