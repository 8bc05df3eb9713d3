"""ST++ small inputs: the authors' range by default, the project's stride floor as an option."""

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


def test_the_authors_range_has_no_floor(tiny_model):
    m = make_method("stpp", n_subnets=3, space="default")
    m.prepare(tiny_model)
    assert m.options()["min_side"] is None and m.options()["min_scale"] == STPP_MIN_SCALE
    assert m.smallest_input(8) == 3  # int(0.43 * 8): the authors' randint(int(crop * 0.43), crop)
    sides = _input_sides(tiny_model, m, 8, steps=4)
    assert min(sides) >= 3 and max(sides) == 8 and any(s < 8 for s in sides[1:])


def test_min_side_auto_keeps_the_projects_stride_floor(tiny_model):
    m = make_method("stpp", n_subnets=3, min_side="auto")
    m.prepare(tiny_model)
    assert m.options()["min_side"] == STPP_MIN_FEATURE_SIDE * 4  # resolved and recorded: 12 px
    assert m.smallest_input(8) == 8 and set(_input_sides(tiny_model, m, 8)) == {8}
    assert m.smallest_input(64) == 27 and m.smallest_input(16) == 12
    big = make_method("stpp", min_side="auto")
    big.prepare(build_model("resnet18", 10, 3, 224))
    assert big.smallest_input(224) == 96 and big.smallest_input(128) == 96


def test_explicit_options_are_honoured(tiny_model):
    scale = make_method("stpp", min_scale=0.5, n_subnets=3, space="default")
    scale.prepare(tiny_model)
    assert scale.smallest_input(8) == 4
    sides = _input_sides(tiny_model, scale, 8, steps=4)
    assert min(sides) >= 4 and any(s < 8 for s in sides)
    side = make_method("stpp", min_side=6)
    side.prepare(tiny_model)
    assert side.smallest_input(8) == 6 and side.smallest_input(64) == 27
    off = make_method("stpp", small_inputs=False)
    off.prepare(tiny_model)
    assert off.smallest_input(8) == 8
    for bad, match in (({"min_scale": 0}, "min_scale"), ({"min_side": 0}, "min_side"),
                       ({"min_side": "big"}, "min_side"), ({"sub_input": "mine"}, "sub-net input mode"),
                       ({"main_ce": "x"}, "main cross-entropy"), ({"kl_ramp": "lin"}, "ramp"),
                       ({"sub_loss": "dkd"}, "sub-net loss"), ({"norm_type": "v3"}, "normalisation"),
                       ({"temperature": 0}, "temperature"), ({"space": "space9"}, "sampling space")):
        with pytest.raises(ValueError, match=match):
            make_method("stpp", **bad).prepare(tiny_model)


def test_saved_descriptions_rebuild_the_same_method(tiny_model):
    m = make_method("stpp", min_side="auto")
    m.prepare(tiny_model)
    again = method_from_description(m.describe())
    again.prepare(tiny_model)
    assert again.describe() == m.describe()
    assert [again.smallest_input(s) for s in (8, 32, 64)] == [m.smallest_input(s) for s in (8, 32, 64)]


def test_runs_saved_before_the_authors_stpp_keep_what_they_computed(tiny_model):
    """meta.json of an earlier stpp run has no main_ce: raw-logit CE, independent inputs, eps 1e-5."""
    old = method_from_description({"name": "stpp", "n_subnets": 6, "kl_minus": True, "small_inputs": True,
                                   "min_scale": 0.43, "min_side": 12, "space": None, "share_prefix": True})
    old.prepare(tiny_model)
    assert isinstance(old, StimulativeTraining)
    assert (old.main_ce, old.sub_input, old.norm_eps, old.smallest_input(8)) == ("raw", "independent", 1e-5, 8)
    assert old.space_name == "default" and len(old.space[0]) == 3


def test_an_input_too_small_for_the_network_is_a_clear_error_before_training():
    """The authors' range has no floor: 32 px images give DenseNet-121 13 px sub-net inputs."""
    model = build_model("densenet121", 10, 3, 32)
    with pytest.raises(ValueError, match=r"13 px .* too small for densenet121.*--min-side auto"):
        make_method("stpp").prepare(model)
    make_method("stpp", min_side="auto").prepare(model)  # 3 x its stride of 32: no shrinking
