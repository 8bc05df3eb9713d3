"""The Train tab's set-up form: recipes as the CLI resolves them, the authors' method options,
every method and model family, and one app-wide device (a fake CUDA card where there is none)."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import torch

from st_app.cli import build_parser
from st_app.cli.train import METHOD_FLAGS, resolve_config
from st_app.core.methods import METHODS, method_option_names
from st_app.core.methods.recipes import RECIPE_CHOICES
from st_app.core.models import ARCHITECTURES
from st_app.core.train import TrainConfig, describe_devices
from st_app.gui.train.form import ADVANCED_FIELDS, METHOD_TIPS, RunForm, method_options_for
from st_app.gui.train.options import ADVANCED_OPTIONS, applies_to

SYNTH = "synthetic:1,8,10,64,32"


@pytest.fixture
def form(qtbot):
    f = RunForm()
    qtbot.addWidget(f)
    return f


def _choose_recipe(form: RunForm, name: str | None) -> None:
    """As the user does: pick the entry in the combo."""
    box = form.recipe_box
    i = box.findData(name)
    assert i >= 0, name
    box.setCurrentIndex(i)
    box.activated.emit(i)


def _configs(form: RunForm) -> list[TrainConfig]:
    """The configs the panel builds from the form (same calls as TrainingPanel.start)."""
    values = form.values()
    values.pop("out_root"), values.pop("probe_every")
    options = values.pop("method_options")
    return [TrainConfig(**{**values, "method": m, "method_options": method_options_for(m, options)})
            for m in form.checked_methods()]


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch believes in one 80 GiB CUDA card named FakeGPU (nothing is ever moved there)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: SimpleNamespace(name="FakeGPU", total_memory=80 * 2**30))


# ---------------------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("name", RECIPE_CHOICES)
def test_recipe_sets_the_form_as_train_recipe_resolves_it(form, name):
    _choose_recipe(form, name)
    assert form.recipe == name
    (config,) = _configs(form)
    cli = resolve_config(build_parser().parse_args(["train", "--recipe", name]))
    assert config.to_dict() == cli.to_dict()


def test_editing_after_a_recipe_shows_modified_and_custom_drops_it(form, tmp_path):
    _choose_recipe(form, "st+kl-")
    box = form.recipe_box
    assert box.currentText() == "st+kl-"
    form.widgets["epochs"].setValue(2)
    assert box.currentText() == "st+kl- (modified)"
    (config,) = _configs(form)
    assert config.recipe == "st+kl-" and config.epochs == 2  # like --recipe st+kl- --epochs 2
    assert config.method_options == {"kl_minus": True, "amplitude": 1.0, "temperature": 1.0}
    form.widgets["epochs"].setValue(200)
    assert box.currentText() == "st+kl-"  # back to the recipe's values
    form.widgets["temperature"].setText("2")
    assert box.currentText() == "st+kl- (modified)"
    form.widgets["dataset"].setCurrentText(SYNTH)  # where the data comes from is not the recipe
    form.widgets["temperature"].setText("1")
    assert box.currentText() == "st+kl-"
    _choose_recipe(form, None)
    assert box.currentText() == "custom" and form.recipe is None
    (config,) = _configs(form)
    assert config.recipe is None and config.method_options["kl_minus"] is True  # the values stay
    _choose_recipe(form, "st+kl-+snet6+small-inputs+space3")  # the last rung, shown by its alias
    assert box.currentText() == "st++" and form.checked_methods() == ("stpp",)
    assert form.recipe == "st+kl-+snet6+small-inputs+space3"


# ---------------------------------------------------------------------------------- method options
def test_advanced_offers_every_method_option_the_cli_maps_with_tips(form):
    offered = {o.key for o in ADVANCED_OPTIONS if o.kind == "method"}
    assert offered == set(METHOD_FLAGS.values())
    assert {o.key for o in ADVANCED_OPTIONS if o.kind == "config"} <= set(TrainConfig().to_dict())
    assert [row[0] for row in ADVANCED_FIELDS] == [o.key for o in ADVANCED_OPTIONS]
    for key, _label, _make, tip, _browse in ADVANCED_FIELDS:
        assert form.widgets[key].toolTip() == tip and len(tip) > 40
        if key in offered:
            assert applies_to(key), key
            assert "Applies to:" in tip
    assert "ST, ST++" in form.widgets["n_subnets"].toolTip()
    assert "ST 1, ST++ 6" in form.widgets["n_subnets"].toolTip()  # each method's default
    assert "Self-distillation" in form.widgets["temperature"].toolTip()


def test_options_no_checked_method_takes_are_disabled_and_not_passed(form):
    form.advanced.setChecked(True)
    for m, cb in form.method_checks.items():
        cb.setChecked(m == "ct")
    assert not any(form.widgets[o.key].isEnabled() for o in ADVANCED_OPTIONS if o.kind == "method")
    assert form.widgets["min_lr"].isEnabled()  # recipe-level rows apply to every method
    form.method_checks["sd"].setChecked(True)
    assert form.widgets["final_survival"].isEnabled() and not form.widgets["n_subnets"].isEnabled()
    form.widgets["final_survival"].setText("0.8")
    form.widgets["n_subnets"].setText("3")  # typed while no ST is checked: not passed
    ct, sd = _configs(form)
    assert ct.method_options == {} and sd.method_options == {"final_survival": 0.8}
    form.method_checks["stpp"].setChecked(True)
    assert form.widgets["n_subnets"].isEnabled()
    assert _configs(form)[2].method_options == {"n_subnets": 3}
    assert form.advanced.title() == "Advanced: 2 options set"
    form.widgets["amplitude"].setText("x")
    with pytest.raises(ValueError, match="Amplitude"):
        form.values()


def test_method_tips_cover_all_seven_methods(form):
    assert set(METHOD_TIPS) == set(METHODS) == set(form.method_checks)
    for m, cb in form.method_checks.items():
        assert cb.toolTip() == METHOD_TIPS[m]
    tip = METHOD_TIPS["stpp"]
    for words in ("KL-", "layer-normed", "small inputs", "6 sub-nets", "space3", "re-estimated"):
        assert words in tip


def test_model_picker_lists_every_family(form):
    box = form.widgets["model"]
    assert [box.itemText(i) for i in range(box.count())] == list(ARCHITECTURES)
    tip = box.toolTip()
    for family in ("CIFAR ResNets", "ImageNet ResNets", "WRN", "DenseNet", "vision transformers", "ResNeXt"):
        assert family in tip


def test_trained_run_records_the_advanced_options(qtbot, tmp_path, monkeypatch):
    """A real 1-epoch ST run from the form: meta.json holds the options and the BN setting."""
    from st_app.gui.train import panel as training_panel
    from st_app.gui.train.panel import TrainingPanel

    monkeypatch.setattr(training_panel, "QMessageBox", lambda *a, **k: None)
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    f = panel.form
    f.widgets["n_subnets"].setText("2")
    f.widgets["temperature"].setText("2")
    f.widgets["kl_ramp"].set_value("cos")
    f.widgets["sub_loss"].set_value("soft-ce")
    f.widgets["bn_reestimate"].set_value(True)
    f.widgets["bn_reestimate_images"].setText("32")
    f.widgets["min_lr"].setText("0.001")
    with qtbot.waitSignal(panel.runsFinished, timeout=60000) as done:
        assert panel.start(("st",), epochs=1, dataset=SYNTH, batch_size=32, device="cpu", out_root=str(tmp_path))
    qtbot.waitUntil(lambda: not panel.is_training(), timeout=10000)
    meta = json.loads((tmp_path / os.path.basename(done.args[0]["st"]) / "meta.json").read_text())
    config = meta["config"]
    assert config["method_options"] == {"n_subnets": 2, "temperature": 2.0, "kl_ramp": "cos", "sub_loss": "soft-ce"}
    assert config["bn_reestimate"] is True and config["bn_reestimate_images"] == 32 and config["min_lr"] == 0.001
    assert config["precision"] == "auto" and config["compile"] is False and config["device"] == "cpu"
    assert meta["method"]["n_subnets"] == 2 and meta["method"]["kl_ramp"] == "cos"
    assert set(config["method_options"]) <= method_option_names("st")
    assert panel.shutdown(5000)


# ---------------------------------------------------------------------------------------- devices
def test_describe_devices_names_each_cuda_card(fake_cuda):
    assert describe_devices() == [("auto", "auto (cuda:0)"), ("cuda:0", "cuda:0 — FakeGPU, 80 GiB"),
                                  *[d for d in describe_devices() if d[0] in ("mps", "cpu")]]
    assert describe_devices()[-1][0] == "cpu"


def test_a_card_torch_does_not_see_is_refused(fake_cuda):
    from st_app.core.train import TrainingError, resolve_device

    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(TrainingError, match="1 CUDA device"):
        resolve_device("cuda:1")


def test_cpu_only_device_list(form):
    box = form.widgets["device"]
    devices = [box.itemData(i) for i in range(box.count())]
    assert devices[0] == "auto" and "cpu" in devices
    if not torch.cuda.is_available():
        assert not any(str(d).startswith("cuda") for d in devices)


def test_one_device_choice_for_training_accuracy_and_analyses(qtbot, fake_cuda, settings, tiny_runs, monkeypatch):
    """Choosing the fake card in the Train tab's list: the session holds it, QSettings keeps it, and
    the TrainConfig, the accuracy worker and the analysis runner all request cuda:0."""
    from st_app.core.checkpoint import load_checkpoint
    from st_app.core.data import load_dataset
    from st_app.core.subnet_eval.incremental import IncrementalEvaluator
    from st_app.gui.analyses import runner as runner_mod
    from st_app.gui.devices import SETTINGS_KEY, wire_device
    from st_app.gui.explore.accuracy import AccuracyService, ModelPayload
    from st_app.gui.session import Session
    from st_app.gui.train.panel import TrainingPanel

    session = Session()
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    accuracy = AccuracyService()
    runner = runner_mod.AnalysisRunner()
    win = SimpleNamespace(session=session, settings=settings, accuracy=accuracy, training=panel,
                          analyses=SimpleNamespace(runner=runner))
    wire_device(win)
    box = panel.form.widgets["device"]
    labels = [box.itemText(i) for i in range(box.count())]
    assert "cuda:0 — FakeGPU, 80 GiB" in labels
    box.setCurrentIndex(labels.index("cuda:0 — FakeGPU, 80 GiB"))  # the user's pick
    assert session.device == "cuda:0" and settings.value(SETTINGS_KEY) == "cuda:0"
    assert accuracy.device == "cuda:0" and runner.device == "cuda:0"
    (config,) = [TrainConfig(**{**{k: v for k, v in panel.form.values().items()
                                   if k not in ("out_root", "probe_every", "method_options")}, "method": "st"})]
    assert config.device == "cuda:0" and config.precision == "auto"

    # the accuracy worker snapshots its model on cuda:0 (the move itself is done on the CPU here)
    asked = []
    real = IncrementalEvaluator.snapshot.__func__

    def snapshot(cls, *args, device="cpu", **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        asked.append(torch.device(device))
        return real(cls, *args, device="cpu", **kw)

    monkeypatch.setattr(IncrementalEvaluator, "snapshot", classmethod(snapshot))
    ck = load_checkpoint(tiny_runs["ct"])
    data = load_dataset("digits")
    with qtbot.waitSignal(accuracy.modelReady, timeout=20000):
        accuracy.set_model(ModelPayload("ct", "k1", ck.model, data.test_x, data.test_y, data.train_x))
    assert asked == [torch.device("cuda:0")]

    # the analysis runner moves its private copies to cuda:0 in its worker thread
    moved = []
    monkeypatch.setattr(runner_mod, "move_models", lambda cks, device: moved.append((cks, device)))
    copy = runner_mod.private_checkpoint(ck)
    with qtbot.waitSignal(runner.finished, timeout=10000):
        assert runner.start("noop", lambda **cb: {"analysis": "noop"}, [copy])
    assert moved == [([copy], "cuda:0")]
    assert accuracy.shutdown(3000)
    assert panel.shutdown(3000)


def test_window_restores_the_saved_device_and_falls_back_to_auto(make_window, settings):
    from st_app.gui.devices import SETTINGS_KEY

    settings.setValue(SETTINGS_KEY, "cuda:7")  # a card this machine does not have
    win = make_window(wait=False, enable_training=True)
    assert win.session.device == "auto" and win.accuracy.device == "auto"
    assert win.training.form.device() == "auto" and win.analyses.runner.device == "auto"
    win.session.set_device("cpu")
    assert win.training.form.device() == "cpu" and win.accuracy.device == "cpu"
    assert win.analyses.runner.device == "cpu" and settings.value(SETTINGS_KEY) == "cpu"


def test_move_models_on_the_cpu(tiny_runs):
    from st_app.core.checkpoint import load_checkpoint
    from st_app.gui.analyses.runner import move_models, private_checkpoint

    copy = private_checkpoint(load_checkpoint(tiny_runs["ct"]))
    move_models([copy], "cpu")
    assert next(copy.model.parameters()).device.type == "cpu"


def test_every_method_has_its_own_colour_and_label():
    """Table 1's seven methods are told apart in the check boxes, curves and legends."""
    from st_app.core.methods import METHODS
    from st_app.gui.train.plots import METHOD_COLORS, method_color, method_label

    assert set(METHODS) <= set(METHOD_COLORS)
    assert len({method_color(m) for m in METHODS}) == len(METHODS)
    assert len({method_label(m) for m in METHODS}) == len(METHODS)
    assert "#F0E442" not in {method_color(m).upper() for m in METHODS}  # yellow is unreadable on white


def test_analysis_pages_run_their_jobs_on_the_app_device(qtbot, settings, tiny_runs, monkeypatch):
    """A page's job gets the runner's device: its private copies are moved there and the
    training inside an analysis (loafing's alone-runs) is asked to run there."""
    from st_app.core.checkpoint import load_checkpoint
    from st_app.core.data import load_dataset
    from st_app.core.experiments import reports
    from st_app.gui.analyses import runner as runner_mod
    from st_app.gui.analyses.page import ModelPair
    from st_app.gui.analyses.panel import AnalysesPanel

    panel = AnalysesPanel(settings)
    qtbot.addWidget(panel)
    ct, st = load_checkpoint(tiny_runs["ct"]), load_checkpoint(tiny_runs["st"])
    panel.set_pair(ModelPair(ct=ct, st=st, data=load_dataset("digits")))
    panel.runner.device = "cuda:0"
    moved, asked = [], []
    monkeypatch.setattr(runner_mod, "move_models", lambda cks, device: moved.append(([c.model for c in cks], device)))

    def loafing_report(ct_, st_, data, **kw):  # noqa: ANN001, ANN003, ANN202
        asked.append((ct_.model, st_.model, kw["device"]))
        raise ValueError("stop here")

    monkeypatch.setattr(reports, "loafing_report", loafing_report)
    with qtbot.waitSignal(panel.runner.failed, timeout=10000):
        assert panel.run("loafing", epochs=1)
    (copies, device), = moved
    assert device == "cuda:0" and asked == [(copies[0], copies[1], "cuda:0")]
    assert copies[0] is not ct.model and copies[1] is not st.model  # private copies, not the Explore models
    assert panel.pages["loafing"].copies == []  # handed to the job, not kept by the page
    panel.shutdown(3000)
