import json

import pytest
import torch

from st_app.core import checkpoint as ckpt
from st_app.core.methods import CommonTraining
from st_app.core.train import TrainConfig, TrainControl, Trainer, TrainEvents, TrainingError

SYN = "synthetic:1,8,10,96,48"


def _cfg(**kw):
    base = dict(dataset=SYN, method="st", epochs=2, batch_size=32, lr=0.05, seed=0, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


class Recorder(TrainEvents):
    def __init__(self):
        self.seen = {"on_start": [], "on_step": [], "on_probe": [], "on_epoch": [], "on_end": []}

    def __getattribute__(self, name):
        if name.startswith("on_"):
            return lambda info: object.__getattribute__(self, "seen")[name].append(info)
        return object.__getattribute__(self, name)


def test_run_writes_checkpoint_meta_and_metrics(tmp_path):
    rec = Recorder()
    from st_app.core.models import build_model
    from st_app.core.plan import SubnetPlan

    probe = SubnetPlan.parse("depths:1,1,1", build_model("resnet20", 10, 1, 8).layout)
    tr = Trainer(_cfg(), out_dir=tmp_path / "run", events=[rec], probe_every=2, probes=[probe])
    history = tr.run()
    assert len(history) == 2 and len(rec.seen["on_epoch"]) == 2
    assert len(rec.seen["on_step"]) == tr.total_steps == 6
    assert rec.seen["on_probe"] and "0|3|6" in rec.seen["on_probe"][0]["results"]
    assert rec.seen["on_step"][-1]["eta"] == pytest.approx(0.0)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"model.safetensors", "meta.json", "metrics.jsonl", "optimizer.safetensors"}
    meta = json.loads((run / "meta.json").read_text())
    assert meta["config"]["method"] == "st" and meta["epoch"] == 2 and meta["model"]["arch"] == "resnet20"
    assert meta["method"]["name"] == "st" and meta["dataset"]["n_train"] == 96 and "package_version" in meta
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"epoch", "train_loss", "test_acc", "epoch_seconds"} <= set(rows[0])
    assert not list(run.glob("*.tmp"))


def test_training_is_deterministic_for_a_seed():
    a = Trainer(_cfg(epochs=1)).run()[0]
    b = Trainer(_cfg(epochs=1)).run()[0]
    assert a["train_loss"] == b["train_loss"] and a["test_acc"] == b["test_acc"]
    c = Trainer(_cfg(epochs=1, seed=1)).run()[0]
    assert c["train_loss"] != a["train_loss"]


def test_resume_continues_exactly(tmp_path):
    straight = Trainer(_cfg(epochs=2), out_dir=tmp_path / "a")
    straight.run()
    first = Trainer(_cfg(epochs=2), out_dir=tmp_path / "b", control=None)
    # stop after the first epoch's last step
    steps = first.iter_steps()
    for _ in range(first.steps_per_epoch):
        next(steps)
    first.control.stop()
    for _ in steps:
        pass
    assert json.loads((tmp_path / "b" / "meta.json").read_text())["epoch"] == 1
    resumed = Trainer.resume(tmp_path / "b")
    assert resumed.epoch == 1
    resumed.run()
    for (n, p), q in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), atol=1e-6), n
    assert len(ckpt.read_metrics(tmp_path / "b")) == 2


def test_existing_run_is_not_overwritten(tmp_path):
    Trainer(_cfg(epochs=1), out_dir=tmp_path / "r").run()
    with pytest.raises(TrainingError, match="already holds a run"):
        Trainer(_cfg(epochs=1), out_dir=tmp_path / "r")


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_saved_epoch(tmp_path, monkeypatch):
    tr = Trainer(_cfg(epochs=3, method="ct"), out_dir=tmp_path / "r")
    real = CommonTraining.step
    calls = {"n": 0}

    def poisoned(self, model, x, y, rng):
        calls["n"] += 1
        out = real(self, model, x, y, rng)
        if calls["n"] > tr.steps_per_epoch:
            out["loss"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(CommonTraining, "step", poisoned)
    with pytest.raises(TrainingError, match="loss became nan at epoch 2"):
        tr.run()
    loaded = ckpt.load_checkpoint(tmp_path / "r")
    assert loaded.meta["epoch"] == 1


def test_stop_and_pause_between_batches():
    control = TrainControl()
    tr = Trainer(_cfg(epochs=5), control=control)
    it = tr.iter_steps()
    next(it)
    control.pause()
    assert control.paused
    control.resume()
    next(it)
    control.stop()
    assert list(it) == []
    assert tr.global_step == 2 and tr.epoch == 0


def test_bad_settings_are_clear():
    with pytest.raises(TrainingError, match="no CUDA device") if not torch.cuda.is_available() else pytest.raises(Exception):
        Trainer(_cfg(device="cuda"))
    with pytest.raises(ValueError, match="unknown method"):
        Trainer(_cfg(method="nope"))
    with pytest.raises(ValueError, match="unknown data set"):
        Trainer(_cfg(dataset="nope"))


def test_bn_reestimation_changes_running_stats_only():
    a = Trainer(_cfg(epochs=1, bn_reestimate=False))
    b = Trainer(_cfg(epochs=1, bn_reestimate=True))
    a.run(), b.run()
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert torch.equal(sa["layer1.0.conv1.weight"], sb["layer1.0.conv1.weight"])
    assert not torch.equal(sa["layer1.0.bn1.running_mean"], sb["layer1.0.bn1.running_mean"])


class _HeadedCT(CommonTraining):
    """CT plus a trainable extra head, to exercise Method.training_modules and begin_epoch."""

    def __init__(self):
        self.head = torch.nn.Linear(64, 10)
        self.epochs_seen = []

    def training_modules(self):
        return self.head

    def begin_epoch(self, epoch, epochs):
        self.epochs_seen.append((epoch, epochs))

    def step(self, model, images, labels, rng):
        feats = torch.flatten(model.avgpool(model.forward_features(images)), 1)
        loss = torch.nn.functional.cross_entropy(model.fc(feats), labels)
        aux = torch.nn.functional.cross_entropy(self.head(feats), labels)
        (loss + aux).backward()
        return {"loss": (loss + aux).detach()}


def test_method_parts_are_trained_saved_and_restored(tmp_path):
    method = _HeadedCT()
    before = method.head.weight.detach().clone()
    tr = Trainer(_cfg(method="ct", epochs=2), out_dir=tmp_path / "r", method=method)
    tr.run()
    assert method.epochs_seen == [(0, 2), (1, 2)]
    assert not torch.equal(before, method.head.weight)  # the optimizer moved the head
    fresh = _HeadedCT()
    ckpt.load_method_state(tmp_path / "r", fresh.training_modules())
    assert torch.equal(fresh.head.weight, method.head.weight)
    with pytest.raises(ckpt.CheckpointError, match="method state"):
        ckpt.load_method_state(tmp_path / "missing", fresh.training_modules())
