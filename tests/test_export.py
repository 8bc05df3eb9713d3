"""ONNX export of sub-networks: parity with PyTorch, dynamic batch, no side effects."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import onnx
import pytest
import torch

from st_app.core import export as export_mod
from st_app.core.export import ExportError, VerifyReport, available_providers, export_onnx, verify_onnx
from st_app.core.models import ResidualNet, build_model
from st_app.core.plan import SubnetPlan

TOL = 1e-4


def _tiny(seed: int = 0) -> ResidualNet:
    """resnet20 on 1x8x8 images with non-trivial BatchNorm statistics (so folding matters)."""
    torch.manual_seed(seed)
    model = build_model("resnet20", num_classes=10, in_channels=1, image_size=8)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(1 + 0.2 * torch.randn(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
        model.fc.bias.copy_(0.1 * torch.randn(10, generator=gen))
    return model


@pytest.fixture(scope="module")
def model() -> ResidualNet:
    return _tiny()


def _plans(model: ResidualNet) -> dict[str, SubnetPlan]:
    lay = model.layout
    full = lay.full_plan()
    # Seeds chosen so the three ordered samples differ from each other and from the full net.
    plans = {f"sampled{s}": SubnetPlan.sample(lay, random.Random(s)) for s in (0, 5, 6)}
    plans.update(
        {
            "deleted": full.delete(4),
            "deleted_entry": full.delete(3),  # projection shortcut only
            "empty_stage": SubnetPlan.parse("|3|6", lay),
            "swapped": full.swap(4, 5),
            "full": full,
        }
    )
    return plans


PLAN_NAMES = list(_plans(_tiny()).keys())


@pytest.mark.parametrize("name", PLAN_NAMES)
def test_parity_dynamic_batch(model: ResidualNet, name: str, tmp_path: Path) -> None:
    plan = _plans(model)[name]
    out = export_onnx(model, plan, tmp_path / "net.onnx")
    assert out == tmp_path / "net.onnx" and out.is_file()
    proto = onnx.load(str(out))
    assert [i.name for i in proto.graph.input] == ["images"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert not proto.graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_value")
    assert list(tmp_path.iterdir()) == [out]  # one self-contained file, no temp left over
    for n in (1, 5):
        rep = verify_onnx(model, plan, out, n=n, seed=n)
        assert rep.n_images == n
        assert rep.max_abs_diff <= TOL, (name, n, rep)
        assert rep.top1_agreement == 1.0, (name, n, rep)


def test_report_and_provider(model: ResidualNet, tmp_path: Path) -> None:
    plan = SubnetPlan.parse("0|3,4|6", model.layout)
    path = export_onnx(model, plan, tmp_path / "sub.onnx")
    images = torch.randn(3, 1, 8, 8)
    rep = verify_onnx(model, plan, path, images=images)
    assert isinstance(rep, VerifyReport)
    assert rep.to_dict() == {
        "max_abs_diff": rep.max_abs_diff,
        "top1_agreement": rep.top1_agreement,
        "provider": rep.provider,
        "n_images": 3,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        rep.n_images = 4  # type: ignore[misc]  # frozen
    assert available_providers()[-1] == "CPUExecutionProvider"
    if not torch.cuda.is_available():
        assert available_providers() == ["CPUExecutionProvider"]
        assert rep.provider == "CPUExecutionProvider"


def test_export_leaves_model_untouched(tmp_path: Path) -> None:
    model = _tiny(1)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = SubnetPlan.parse("0,1|3|6,7", model.layout)
    path = export_onnx(model, plan, tmp_path / "m.onnx")
    assert model.training and all(m.training for m in model.modules())
    verify_onnx(model, plan, path, n=4)
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k


def test_branch_scale_is_baked_in(tmp_path: Path) -> None:
    model = _tiny(2)
    plan = model.layout.full_plan().delete(7)
    x = torch.randn(4, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        unscaled = model(x, plan)
    for i, block in enumerate(model.blocks):
        block.branch_scale = 1.0 - 0.05 * i
    with torch.no_grad():
        scaled = model(x, plan)
    assert (scaled - unscaled).abs().max() > 1e-3  # the scale really changes the logits
    path = export_onnx(model, plan, tmp_path / "sd.onnx")
    rep = verify_onnx(model, plan, path, images=x)
    assert rep.max_abs_diff <= TOL and rep.top1_agreement == 1.0


def test_none_plan_is_full_net(model: ResidualNet, tmp_path: Path) -> None:
    path = export_onnx(model, None, str(tmp_path / "nested" / "full.onnx"))
    rep = verify_onnx(model, model.layout.full_plan(), path, n=2)
    assert rep.max_abs_diff <= TOL


def test_sub_plan_graph_is_smaller(model: ResidualNet, tmp_path: Path) -> None:
    full = onnx.load(str(export_onnx(model, model.layout.full_plan(), tmp_path / "full.onnx")))
    sub_plan = SubnetPlan.parse("0|3|6", model.layout)
    sub = onnx.load(str(export_onnx(model, sub_plan, tmp_path / "sub.onnx")))
    assert len(sub.graph.node) < len(full.graph.node)
    n_conv = lambda p: sum(n.op_type == "Conv" for n in p.graph.node)  # noqa: E731
    assert n_conv(sub) < n_conv(full)


@pytest.mark.parametrize("content", [b"", b"this is not an onnx model\x00\xff" * 10])
def test_corrupt_file(model: ResidualNet, tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    with pytest.raises(ExportError) as info:
        verify_onnx(model, None, bad)
    assert "\n" not in str(info.value)


def test_missing_file(model: ResidualNet, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no ONNX file"):
        verify_onnx(model, None, tmp_path / "nope.onnx")


def test_wrong_plan_or_layout(model: ResidualNet, tmp_path: Path) -> None:
    plan = SubnetPlan.parse("0|3|6", model.layout)
    path = export_onnx(model, plan, tmp_path / "p.onnx")
    with pytest.raises(ExportError, match="holds plan"):
        verify_onnx(model, model.layout.full_plan(), path)
    other = build_model("resnet32", num_classes=10, in_channels=1, image_size=8)
    with pytest.raises(ExportError, match="another network layout"):
        export_onnx(model, other.layout.full_plan(), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_failed_export_leaves_no_file(model: ResidualNet, tmp_path: Path, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("exporter exploded\nwith a traceback")

    monkeypatch.setattr(export_mod, "_export_legacy", boom)
    monkeypatch.setattr(export_mod, "_export_dynamo", boom)
    with pytest.raises(ExportError, match="exporter exploded") as info:
        export_onnx(model, None, tmp_path / "f.onnx")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_legacy_exporter_is_used(model: ResidualNet, tmp_path: Path, monkeypatch) -> None:
    """The fast TorchScript exporter must work on its own, not only through the fallback."""

    def unwanted(*args, **kwargs):
        raise AssertionError("dynamo exporter should not be needed")

    monkeypatch.setattr(export_mod, "_export_dynamo", unwanted)
    plan = SubnetPlan.parse("0|3,4|6", model.layout)
    path = export_onnx(model, plan, tmp_path / "l.onnx")
    assert verify_onnx(model, plan, path, n=3).max_abs_diff <= TOL


def test_dynamo_fallback(tmp_path: Path, monkeypatch, capsys) -> None:
    """If the legacy exporter goes away, the dynamo exporter still gives a valid file."""
    model = _tiny(3)

    def gone(*args, **kwargs):
        raise TypeError("legacy exporter removed")

    monkeypatch.setattr(export_mod, "_export_legacy", gone)
    plan = SubnetPlan.parse("0|3,5,4|6", model.layout)
    path = export_onnx(model, plan, tmp_path / "d.onnx")
    assert list(tmp_path.iterdir()) == [path]
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    for n in (1, 5):
        rep = verify_onnx(model, plan, path, n=n)
        assert rep.max_abs_diff <= TOL and rep.top1_agreement == 1.0
