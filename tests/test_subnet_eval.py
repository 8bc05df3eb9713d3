"""The app's incremental evaluator (core.subnet_eval.incremental) equals core.evaluate.accuracy.

Plans come one after another as clicks would, so later ones reuse earlier prefixes (swapped
orders, dropped entry blocks and empty stages included), for both BN settings.
"""

from __future__ import annotations

import random

import pytest
import torch

from st_app.core.data import load_dataset
from st_app.core.evaluate import accuracy, calibration_images
from st_app.core.plan import SubnetPlan, insertion_index
from st_app.core.subnet_eval.incremental import IncrementalEvaluator

TEXTS = ("0,1,2|3,4,5|6,7,8", "0,1,2|3,4,5|6,7", "0,1,2|3,4|6,7", "0,1|3,4|6,7", "0,1|4|7", "|4,5|7",
         "0,1,2||", "2,0,1|3,5,4|6,8,7", "2,0,1|3,5,4|6,8", "1|4|")


@pytest.fixture(scope="module")
def setup():
    from st_app.core.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet20", num_classes=10, in_channels=1, image_size=8)
    data = load_dataset("digits")
    with torch.no_grad():  # non-trivial running statistics
        model.train()
        model(data.train_x[:256])
    model.eval()
    return model, data


@pytest.mark.parametrize("n_calib", [0, 256])
def test_incremental_evaluator_equals_the_engine(setup, n_calib):
    model, data = setup
    ev = IncrementalEvaluator.snapshot(model, data.test_x, data.test_y, data.train_x, 1000)
    calib = calibration_images(data.train_x, 1000)[:n_calib] if n_calib else None
    rng = random.Random(3)
    plans = [SubnetPlan.parse(t, model.layout) for t in TEXTS]
    plans += [SubnetPlan.sample(model.layout, rng) for _ in range(3)]
    for plan in plans:
        got = ev.accuracy(plan, n_calib=n_calib)
        expected = accuracy(model, plan, data.test_x, data.test_y, bn="recalibrate" if n_calib else "main",
                            calib_images=calib)
        assert got == pytest.approx(expected, abs=1e-9), plan
    assert ev.prefixes is not None and len(ev.prefixes.items) > len(plans)
    # the snapshot keeps the main network's statistics and its eval mode
    reference = model.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in ev.model.state_dict().items())
    assert not ev.model.training


def test_cancel_check_stops_the_evaluation(setup):
    model, data = setup
    ev = IncrementalEvaluator.snapshot(model, data.test_x, data.test_y, data.train_x)
    calls = []

    class Stop(Exception):
        pass

    def check():
        calls.append(1)
        if len(calls) == 2:
            raise Stop

    with pytest.raises(Stop):
        ev.accuracy(model.layout.full_plan(), n_calib=256, check=check)
    assert len(calls) == 2
    # and the model is left as it was: the next answer is still exact
    plan = SubnetPlan.parse("0|3|6", model.layout)
    assert ev.accuracy(plan) == pytest.approx(accuracy(model, plan, data.test_x, data.test_y), abs=1e-9)


def test_one_insertion_rule_for_restore_and_move_to(setup):
    model, _ = setup
    layout = model.layout
    plan = SubnetPlan.parse("0,2|4,5|6", layout)
    assert plan.restore(1) == SubnetPlan.parse("0,1,2|4,5|6", layout)
    assert plan.restore(3) == SubnetPlan.parse("0,2|3,4,5|6", layout)  # a shape-changing block goes first
    assert insertion_index(layout, [5, 4], 3) == 0 and insertion_index(layout, [5, 4], 8) == 2
    assert plan.move_to(0, 5) == SubnetPlan.parse("2,0|4,5|6", layout)
    with pytest.raises(ValueError, match="off"):
        plan.move_to(1, 0)


def test_errors_number_stages_from_one(setup):
    model, _ = setup
    with pytest.raises(ValueError, match="belongs to stage 3, not stage 2"):
        SubnetPlan.parse("0|3,6|", model.layout)
    with pytest.raises(ValueError, match="stage 2"):
        SubnetPlan.parse("0|4,3|6", model.layout)
