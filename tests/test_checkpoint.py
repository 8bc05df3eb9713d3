import json
import os
import pickle

import pytest
import torch
import torchvision

from st_app.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from st_app.core.models import build_model


def test_round_trip_folder_and_lone_file(tiny_model, tmp_path):
    tiny_model.blocks[4].branch_scale = 0.75
    save_checkpoint(tmp_path / "run", tiny_model, {"epoch": 3, "note": "x"})
    loaded = load_checkpoint(tmp_path / "run")
    assert loaded.meta["epoch"] == 3 and loaded.model.blocks[4].branch_scale == 0.75
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k])
    # a .safetensors copied elsewhere alone still knows what it is (embedded metadata)
    lone = tmp_path / "elsewhere" / "copy.safetensors"
    lone.parent.mkdir()
    lone.write_bytes((tmp_path / "run" / "model.safetensors").read_bytes())
    again = load_checkpoint(lone)
    assert again.model.config == tiny_model.config and again.meta["epoch"] == 3


def test_a_lone_file_is_whole_without_its_side_json(tiny_model, tmp_path):
    """A lone .safetensors carries its metadata: a side .json left stale or missing by a kill is not what loads."""
    lone = tmp_path / "net.safetensors"
    save_checkpoint(lone, tiny_model, {"epoch": 3})
    side = lone.with_suffix(".json")
    assert json.loads(side.read_text())["epoch"] == 3  # a readable copy
    side.write_text(json.dumps({**json.loads(side.read_text()), "epoch": 1}))  # as if the new one never landed
    assert load_checkpoint(lone).meta["epoch"] == 3
    side.unlink()
    assert load_checkpoint(lone).meta["epoch"] == 3


def test_architecture_and_shape_mismatch_is_named(tiny_model, tmp_path, rewrite_run_file):
    save_checkpoint(tmp_path / "run", tiny_model, {})
    with pytest.raises(CheckpointError, match="holds a resnet20, not the requested resnet32"):
        load_checkpoint(tmp_path / "run", arch="resnet32")
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    meta["model"]["in_channels"] = 3
    rewrite_run_file(tmp_path / "run", "meta.json", json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"conv1.weight has shape \[16, 1, 3, 3\] in the file but \[16, 3, 3, 3\]"):
        load_checkpoint(tmp_path / "run")
    meta["model"]["arch"] = "resnet32"
    meta["model"]["in_channels"] = 1
    rewrite_run_file(tmp_path / "run", "meta.json", json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match resnet32: missing"):
        load_checkpoint(tmp_path / "run")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_weights_give_one_clear_error(tiny_model, tmp_path, damage):
    save_checkpoint(tmp_path / "run", tiny_model, {})
    f = tmp_path / "run" / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(2000), "empty": b""}[damage])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "run")
    assert "\n" not in str(err.value) and "model.safetensors" in str(err.value)


def test_corrupt_json_and_missing_files(tiny_model, tmp_path, rewrite_run_file):
    save_checkpoint(tmp_path / "run", tiny_model, {})
    (tmp_path / "run" / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="meta.json does not match its sha256 in manifest.json"):
        load_checkpoint(tmp_path / "run")
    rewrite_run_file(tmp_path / "run", "meta.json", "{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "run")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a run folder"):
        load_checkpoint(tmp_path / "empty")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = "/tmp/st_app_pwned_marker"


def test_malicious_pickle_runs_nothing_and_is_rejected(tmp_path):
    if os.path.exists(MARKER):
        os.unlink(MARKER)
    bad = tmp_path / "evil.pth"
    with open(bad, "wb") as fh:
        pickle.dump({"conv1.weight": _Evil()}, fh)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(bad)
    assert not os.path.exists(MARKER)
    # torch.save's zip container with the same payload
    bad2 = tmp_path / "evil2.pt"
    torch.save({"x": _Evil()}, bad2)
    if os.path.exists(MARKER):
        os.unlink(MARKER)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(bad2)
    assert not os.path.exists(MARKER)


def test_foreign_torchvision_state_dict_is_recognised(tmp_path):
    tv = torchvision.models.resnet18(weights=None, num_classes=5)
    torch.save({"state_dict": tv.state_dict()}, tmp_path / "tv.pth")
    loaded = load_checkpoint(tmp_path / "tv.pth")
    assert loaded.model.config.arch == "resnet18" and loaded.model.config.num_classes == 5
    tv.eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(tv(x), loaded.model(x))
    with pytest.raises(CheckpointError, match="looks like a resnet18"):
        load_checkpoint(tmp_path / "tv.pth", arch="resnet50")
    torch.save({"a": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a ResNet, Wide ResNet, DenseNet or vision transformer state_dict"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "tv.pth").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable PyTorch file"):
        load_checkpoint(tmp_path / "trunc.pt")


def test_cifar_checkpoint_from_other_code_is_inferred(tmp_path):
    m = build_model("resnet32", 100, 3, 32)
    torch.save(m.state_dict(), tmp_path / "r32.pt")
    assert load_checkpoint(tmp_path / "r32.pt").model.config.arch == "resnet32"
