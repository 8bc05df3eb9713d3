"""ST++ small inputs: the resolution schedule keeps a floor derived from the network's stride."""

import random

import pytest
import torch

from st_app.core.methods import (
    STPP_MIN_FEATURE_SIDE,
    STPP_MIN_SCALE,
    StimulativeTraining,
    make_method,
    method_from_description,
    total_stride,
)
from st_app.core.models import build_model


def _input_sides(model, method, side, steps=3, seed=0):
    """Sides of every input the model's stem saw during ``steps`` ST++ steps."""
    seen = []
    handle = model.conv1.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[-1]))
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    try:
        for _ in range(steps):
            x = torch.randn(4, 1, side, side, generator=g)
            y = torch.randint(0, 10, (4,), generator=g)
            terms = method.step(model, x, y, rng)
            assert torch.isfinite(terms["loss"])
            model.zero_grad(set_to_none=True)
    finally:
        handle.remove()
    return seen


def test_total_stride_of_every_family():
    from st_app.core.models import ModelConfig, model_from_config

    def empty(arch, size):  # no weights needed to know a stride
        return model_from_config(ModelConfig(arch, 10, 3, size), empty=True)

    assert total_stride(build_model("resnet20", 10, 1, 8)) == 4
    assert total_stride(build_model("resnet18", 10, 3, 224)) == 32
    expected = {"wrn-28-10": 4, "densenet-bc-100": 4, "densenet121": 32, "vit-micro": 2, "vit_b_16": 16,
                "resnext50_32x4d": 32}
    assert {arch: total_stride(empty(arch, 224)) for arch in expected} == expected


def test_8px_inputs_are_not_shrunk(tiny_model):
    m = make_method("stpp", n_subnets=3)
    m.prepare(tiny_model)
    floor = STPP_MIN_FEATURE_SIDE * 4
    assert m.options()["min_side"] == floor and m.options()["min_scale"] == STPP_MIN_SCALE
    assert m.smallest_input(8) == 8  # the recipe alone would give ceil(0.43 * 8) = 4 px
    sides = _input_sides(tiny_model, m, 8)
    assert sides and set(sides) == {8}


def test_64px_inputs_still_shrink_with_the_recipe_scale():
    torch.manual_seed(0)
    model = build_model("resnet20", 10, 1, 64)
    m = make_method("stpp", n_subnets=3)
    m.prepare(model)
    low = 28  # ceil(0.43 * 64), above the 12 px floor
    assert m.smallest_input(64) == low and m.smallest_input(32) == 14 and m.smallest_input(16) == 12
    sides = _input_sides(model, m, 64, steps=4)
    assert min(sides) >= low and max(sides) == 64
    assert any(s < 64 for s in sides), "no sub-net saw a down-scaled batch"


def test_imagenet_family_keeps_the_recipe_on_224px():
    m = make_method("stpp")
    m.prepare(build_model("resnet18", 10, 3, 224))
    assert m.smallest_input(224) == 97  # ceil(0.43 * 224); the 96 px floor does not bind
    assert m.smallest_input(128) == 96


def test_explicit_options_are_honoured(tiny_model):
    scale = make_method("stpp", min_scale=0.5, n_subnets=3)
    scale.prepare(tiny_model)
    assert scale.smallest_input(8) == 4  # an explicit scale alone: no floor
    sides = _input_sides(tiny_model, scale, 8, steps=4)
    assert min(sides) >= 4 and any(s < 8 for s in sides)
    side = make_method("stpp", min_side=6)
    side.prepare(tiny_model)
    assert side.smallest_input(8) == 6 and side.smallest_input(64) == 28
    both = make_method("stpp", min_scale=0.25, min_side=3)
    both.prepare(tiny_model)
    assert both.smallest_input(8) == 3
    off = make_method("stpp", small_inputs=False)
    off.prepare(tiny_model)
    assert off.smallest_input(8) == 8
    with pytest.raises(ValueError, match="min_scale"):
        make_method("stpp", min_scale=0)
    with pytest.raises(ValueError, match="min_side"):
        make_method("stpp", min_side=0)


def test_saved_descriptions_rebuild_the_same_schedule(tiny_model):
    m = make_method("stpp")
    m.prepare(tiny_model)
    again = method_from_description(m.describe())
    again.prepare(tiny_model)
    assert again.describe() == m.describe()
    assert [again.smallest_input(s) for s in (8, 32, 64)] == [m.smallest_input(s) for s in (8, 32, 64)]
    # a run saved before the floor existed recorded min_scale only: it keeps its schedule
    old = method_from_description({"name": "stpp", "n_subnets": 6, "kl_minus": True, "small_inputs": True,
                                   "min_scale": 0.43, "space": None, "share_prefix": True})
    old.prepare(tiny_model)
    assert isinstance(old, StimulativeTraining) and old.smallest_input(8) == 4
