"""The paper's loafing result on the bundled digits, trained from scratch (about a minute).

Targets from the issue: both main nets >= 97%; over the 27 ordered sub-nets, with main-net BN
ST's mean is >= 3 points above CT's; with recalibrated BN ST's std is at most half of CT's and
ST's worst sub-net beats CT's worst.
"""

import pytest
import torch

from st_app.core.evaluate import calibration_images, sweep
from st_app.core.plan import ordered_space
from st_app.core.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def runs():
    # One thread: tiny 8x8 batches gain little from two, and two threads spin badly when
    # anything else shares the cores (measured: 80 s alone with one thread).
    torch.set_num_threads(1)
    trained = {m: Trainer(TrainConfig(method=m, epochs=30, seed=0, device="cpu")) for m in ("ct", "st")}
    for tr in trained.values():
        tr.run()
    return trained


@pytest.mark.slow
def test_stimulative_training_reduces_loafing_on_digits(runs):
    stats = {}
    for name, tr in runs.items():
        d = tr.data
        assert tr.history[-1]["test_acc"] >= 97.0, (name, tr.history[-1])
        plans = ordered_space(tr.model.layout)
        calib = calibration_images(d.train_x, 1000)
        stats[name] = {
            "main": sweep(tr.model, plans, d.test_x, d.test_y, bn="main").summary(),
            "recal": sweep(tr.model, plans, d.test_x, d.test_y, bn="recalibrate", calib_images=calib).summary(),
        }
    ct, st = stats["ct"], stats["st"]
    assert st["main"]["mean"] >= ct["main"]["mean"] + 3.0, stats
    assert st["recal"]["std"] <= 0.5 * ct["recal"]["std"], stats
    assert st["recal"]["min"] > ct["recal"]["min"], stats


@pytest.mark.slow
def test_bf16_autocast_keeps_the_main_net_within_a_point_of_fp32(runs):
    """The fast path's precision does not change what is learnt (bf16 autocast on the CPU)."""
    torch.set_num_threads(1)
    bf16 = Trainer(TrainConfig(method="ct", epochs=30, seed=0, device="cpu", precision="bf16"))
    bf16.run()
    fp32_acc, bf16_acc = runs["ct"].history[-1]["test_acc"], bf16.history[-1]["test_acc"]
    assert abs(bf16_acc - fp32_acc) <= 1.0, (fp32_acc, bf16_acc)
