"""The authors' presets (--recipe), their trainer options and the CLI that resolves them."""

import json
import math
import random
import subprocess

import pytest
import torch

from st_app.core.methods import make_method
from st_app.core.methods.recipes import RECIPES, resolve_recipe
from st_app.core.models import build_model
from st_app.core.train import TrainConfig, Trainer, TrainingError

SYN = "synthetic:1,8,10,64,32"
LADDER = ["ct", "st", "st+kl-", "st+kl-+snet6", "st+kl-+snet6+small-inputs", "st+kl-+snet6+small-inputs+space3"]


def _cli(capsys, *args):
    from st_app.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def test_the_ladder_sets_exactly_the_authors_flags():
    assert list(RECIPES) == [*LADDER, "imagenet-r50"]
    expected = {
        "ct": ("st", {"kl_weight": 0.0}),
        "st": ("st", {}),
        "st+kl-": ("st", {"kl_minus": True, "amplitude": 1.0, "temperature": 1.0}),
        "st+kl-+snet6": ("st", {"kl_minus": True, "amplitude": 1.0, "temperature": 1.0, "n_subnets": 6}),
        "st+kl-+snet6+small-inputs": ("st", {"kl_minus": True, "amplitude": 1.0, "temperature": 1.0,
                                             "n_subnets": 6, "small_inputs": True, "min_scale": 0.43}),
    }
    for name, (method, opts) in expected.items():
        config, m, o = resolve_recipe(name)
        assert (m, o) == (method, opts) and config["epochs"] == 200 and config["bn_reestimate"] is True
        assert config["recipe"] == name and "image_size" not in config
    config, m, o = resolve_recipe("st++")
    assert m == "stpp" and o["space"] == "space3" and "image_size" not in config
    # ST++'s rung is stpp's defaults: the same method either way
    model = build_model("resnet50", 10, 3, 64)
    a, b = make_method(m, **o), make_method("stpp")
    a.prepare(model)
    b.prepare(model)
    assert a.describe() == b.describe()


def test_the_imagenet_recipe_and_combinations():
    config, m, _ = resolve_recipe("imagenet-r50")
    assert m == "stpp" and config["recipe"] == "imagenet-r50"
    for key, value in {"model": "resnet50", "batch_size": 512, "lr": 0.2, "weight_decay": 1e-4, "epochs": 200,
                       "image_size": 200, "val_resize": 240, "val_crop": 224, "color_jitter": 0.4, "lighting": 0.1,
                       "fc_init_std": 0.01, "nesterov": True, "momentum": 0.9, "bn_reestimate": True}.items():
        assert config[key] == value, key
    config, m, o = resolve_recipe("imagenet-r50,st+kl-")
    assert m == "st" and o["kl_minus"] and config["batch_size"] == 512 and config["recipe"] == "imagenet-r50,st+kl-"
    for bad in ("nope", "st,ct", "imagenet-r50,imagenet-r50", ""):
        with pytest.raises(ValueError):
            resolve_recipe(bad)


@pytest.mark.parametrize("recipe", [*LADDER, "imagenet-r50", "st++"])
def test_print_config_works_for_every_preset(capsys, recipe):
    proc = _cli(capsys, "train", "--recipe", recipe, "--print-config")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["config"]["recipe"] and out["method"]["name"] == out["config"]["method"]
    assert isinstance(out["config"]["bn_reestimate"], bool) and out["authors_flags"]
    if recipe == "imagenet-r50":
        assert out["method"]["space"] == [[0], [0, 1], [0, 1, 2, 3], [0]] and out["notes"]


def test_flags_override_the_recipe_and_are_checked(capsys, tmp_path):
    out = json.loads(_cli(capsys, "train", "--recipe", "st+kl-", "--epochs", "3", "--temperature", "2",
                          "--print-config").stdout)
    assert out["config"]["epochs"] == 3 and out["method"]["temperature"] == 2.0 and out["method"]["kl_minus"]
    out = json.loads(_cli(capsys, "train", "--recipe", "imagenet-r50", "--method", "ct", "--print-config").stdout)
    assert out["config"]["method"] == "ct" and out["config"]["method_options"] == {}
    cases = [
        (["--recipe", "st+kl-", "--method", "ct", "--print-config"], "contradicts"),
        (["--recipe", "nope", "--print-config"], "unknown recipe"),
        (["--method", "ct", "--subnets", "3", "--out", str(tmp_path / "r")], "do not apply to ct"),
        (["--method", "layersup", "--temperature", "2", "--out", str(tmp_path / "r")], "--temperature do not apply"),
        (["--method", "stpp", "--space", "space5", "--out", str(tmp_path / "r")], "space5 is defined only"),
        (["--method", "st"], "--out is required"),
        (["--recipe", "imagenet-r50", "--dataset", "synthetic:3,8,10,16,8", "--out", str(tmp_path / "r")],
         "held in memory"),
    ]
    for args, message in cases:
        proc = _cli(capsys, "train", *args)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert not (tmp_path / "r").exists()


def test_trainer_options(tmp_path):
    tr = Trainer(TrainConfig(dataset=SYN, method="st", epochs=2, batch_size=32, device="cpu", min_lr=0.01,
                             fc_init_std=0.01, seed=3))
    assert tr.lr_at(0) == pytest.approx(0.05) and tr.lr_at(tr.total_steps) == pytest.approx(0.01)
    assert tr.lr_at(tr.total_steps // 2) == pytest.approx(0.025)
    assert float(tr.model.fc.bias.detach().abs().max()) == 0.0 and 0.005 < float(tr.model.fc.weight.detach().std()) < 0.015
    assert tr.config.bn_reestimate is False  # st's default: the paper's step alone
    stpp = Trainer(TrainConfig(dataset=SYN, method="stpp", epochs=1, batch_size=32, device="cpu"),
                   out_dir=tmp_path / "stpp")
    assert stpp.config.bn_reestimate is True  # the authors' trainer re-estimates after every epoch
    stpp.run()
    meta = json.loads((tmp_path / "stpp" / "meta.json").read_text())
    assert meta["config"]["bn_reestimate"] is True and meta["method"]["sub_input"] == "authors"
    assert meta["method"]["space_name"] == "space3" and meta["method"]["main_ce"] == "normalised"
    off = Trainer(TrainConfig(dataset=SYN, method="stpp", epochs=1, batch_size=32, device="cpu", bn_reestimate=False))
    assert off.config.bn_reestimate is False
    with pytest.raises(TrainingError, match="held in memory"):
        Trainer(TrainConfig(dataset=SYN, epochs=1, device="cpu", val_resize=240))
    with pytest.raises(TrainingError, match="min_lr"):
        Trainer(TrainConfig(dataset=SYN, epochs=1, device="cpu", min_lr=-1))


def test_kl_ramps_and_sampling_begin_epoch(tiny_model):
    cos, rcos = make_method("st", kl_ramp="cos", kl_weight=2.0), make_method("st", kl_ramp="rcos")
    for epoch in (0, 5, 9):
        cos.begin_epoch(epoch, 10)
        rcos.begin_epoch(epoch, 10)
        ramp = 0.5 * (1 - math.cos(math.pi * epoch / 10))
        assert cos.sub_weight() == pytest.approx(2.0 * ramp) and rcos.sub_weight() == pytest.approx(1 - ramp)
    late = make_method("stpp", sampling_begin_epoch=2)
    late.prepare(tiny_model)
    x = torch.zeros(4, 1, 8, 8)
    late.begin_epoch(1, 5)
    assert late.draw(tiny_model, x, random.Random(0)).subnets == []
    late.begin_epoch(2, 5)
    assert len(late.draw(tiny_model, x, random.Random(0)).subnets) == 6


def test_the_imagenet_recipe_trains_on_a_streamed_folder(capsys, tmp_path):
    """The data recipe (val resize / crop, jitter, lighting) reaches streamed images; all is recorded."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3)):
        for c, name in enumerate(("ant", "bee")):
            folder = tmp_path / "imgs" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (24, 24, 3), dtype=np.uint8)
                img[..., c] += 150
                Image.fromarray(img).save(folder / f"{i}.JPEG")
    out = tmp_path / "run"
    proc = _cli(capsys, "train", "--recipe", "imagenet-r50", "--dataset", f"imagenet:{tmp_path / 'imgs'}",
                "--model", "resnet20", "--image-size", "16", "--val-resize", "20", "--val-crop", "16", "--epochs", "1",
                "--batch-size", "6", "--data-workers", "0", "--subnets", "2", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "meta.json").read_text())
    c = meta["config"]
    assert (c["recipe"], c["color_jitter"], c["lighting"], c["val_resize"], c["fc_init_std"]) == \
        ("imagenet-r50", 0.4, 0.1, 20, 0.01)
    assert c["bn_reestimate"] is True and c["lr"] == 0.2 and meta["method"]["name"] == "stpp"
    assert meta["method"]["n_subnets"] == 2 and meta["method"]["renorm_mean"] == [0.485, 0.456, 0.406]


def test_every_recipe_choice_resolves_to_itself_and_no_two_train_alike() -> None:
    """The app's Recipe menu lists RECIPE_CHOICES: each is a --recipe text, named as runs record it, none a duplicate."""
    from st_app.core.methods.recipes import RECIPE_CHOICES

    assert "imagenet-r50,st" in RECIPE_CHOICES and "imagenet-r50,ct" in RECIPE_CHOICES
    trained = set()
    for choice in RECIPE_CHOICES:
        config, method, options = resolve_recipe(choice)
        assert config["recipe"] == choice
        trained.add(json.dumps([{k: v for k, v in config.items() if k != "recipe"}, method, options], sort_keys=True))
    assert len(trained) == len(RECIPE_CHOICES)
    assert resolve_recipe("imagenet-r50,st+kl-+snet6+small-inputs+space3")[1:] == resolve_recipe("imagenet-r50")[1:]
