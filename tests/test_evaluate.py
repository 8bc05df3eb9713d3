import torch

from st_app.core.data import load_dataset
from st_app.core.evaluate import accuracy, calibration_images, select_plans, sweep
from st_app.core.models import build_model
from st_app.core.plan import SubnetPlan, ordered_space


def test_recalibration_leaves_the_model_untouched(tiny_model):
    data = load_dataset("synthetic:1,8,10,128,64")
    plan = SubnetPlan.parse("depths:1,1,1", tiny_model.layout)
    tiny_model.train()
    with torch.no_grad():
        for i in range(3):
            tiny_model(data.train_x[i * 32:(i + 1) * 32])
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    calib = calibration_images(data.train_x, 64)
    a_main = accuracy(tiny_model, plan, data.test_x, data.test_y, bn="main")
    a_rec = accuracy(tiny_model, plan, data.test_x, data.test_y, bn="recalibrate", calib_images=calib)
    assert 0 <= a_main <= 100 and 0 <= a_rec <= 100
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert tiny_model.training  # train flag restored


def test_sweep_summary_and_sampling():
    m = build_model("resnet20", 10, 1, 8)
    data = load_dataset("synthetic:1,8,10,64,40")
    plans = ordered_space(m.layout)[:5]
    res = sweep(m, plans, data.test_x, data.test_y)
    accs = [r.accuracy for r in res.results]
    s = res.summary()
    assert len(accs) == 5 and s["min"] == min(accs) and s["max"] == max(accs)
    assert abs(s["mean"] - sum(accs) / 5) < 1e-9
    d = res.to_dict()
    assert d["results"][0]["plan"] == str(plans[0]) and d["n_images"] == 40
    big = build_model("resnet56", 10, 1, 8)
    sample, sampled = select_plans(big, limit=50, seed=1)
    assert sampled and len(sample) == len(set(sample)) == 50
    assert sample == select_plans(big, limit=50, seed=1)[0]
    full, sampled = select_plans(m, limit=50)
    assert not sampled and len(full) == 27


def test_digits_split_is_fixed():
    d = load_dataset("digits")
    assert (len(d.train_y), len(d.test_y)) == (1437, 360)
    assert d.train_x.shape[1:] == (1, 8, 8) and d.num_classes == 10
    assert torch.equal(d.test_y, load_dataset("digits").test_y)
    assert abs(float(d.train_x.mean())) < 1e-4
