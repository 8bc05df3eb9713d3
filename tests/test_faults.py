"""Fault injection, as a hostile user would try it: kill -9 at every write boundary of a
checkpoint, two writers on one run, a full disk, outputs aimed at a run's own files or at
devices, and a table of bad inputs for every CLI option and every meta.json field.

Training runs are forked from this process (torch is already imported, so a 2-epoch resnet20 on
64 synthetic 8x8 images costs well under a second) and kill themselves with SIGKILL at the named
boundary through the ``ST_APP_FAULT`` hook of :mod:`st_app.core.runfolder`; they run the real
``python -m st_app`` entry point. One concurrent writer is a real ``python -m st_app``
subprocess.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from st_app.core import checkpoint as ckpt
from st_app.core.resources import resource_path
from st_app.core.runfolder import MANIFEST_FILE, TXN_DIR, RunFolder, RunLockedError, fault_points, has_run

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the fault tests fork training processes (POSIX)")

ROOT = Path(__file__).resolve().parent.parent
SYN = "synthetic:1,8,10,64,32"
TRAIN = ["train", "--model", "resnet20", "--dataset", SYN, "--method", "st", "--epochs", "2", "--batch-size", "32",
         "--seed", "0", "--threads", "1", "--quiet"]
FILES = ["command.txt", "meta.json", "metrics.jsonl", "model.safetensors", "optimizer.safetensors"]
RUN_LISTING = {".lock", MANIFEST_FILE, *FILES}
TIMING = ("epoch_seconds", "eval_seconds")


# ------------------------------------------------------------------------------- helpers
def fork_cli(argv: list[str], env: dict[str, str] | None = None, log: Path | None = None,
             stopped: bool = False, timeout: float = 120) -> int:
    """Run ``python -m st_app *argv`` in a forked child; its exit code (-9 when it was killed).

    With ``stopped`` it returns the child's pid as soon as it has stopped itself (SIGSTOP).
    """
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 99
        try:
            os.environ.update(env or {})
            fd = os.open(log if log else os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - pytest may have swapped these
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            torch.set_num_threads(1)
            from st_app.cli import main

            code = main(argv)
        except BaseException:  # noqa: BLE001 - report as an exit code, never unwind into pytest
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + timeout
    flags = os.WNOHANG | (os.WUNTRACED if stopped else 0)
    while True:
        done, status = os.waitpid(pid, flags)
        if done:
            if stopped and os.WIFSTOPPED(status):
                return pid
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"{argv} did not finish in {timeout} s")
        time.sleep(0.01)


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), f"{a.name}: {k} differs"


def metric_rows(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in ckpt.read_metrics(run)]


def digest(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` but the lock (whose pid note a refused writer may not touch
    anyway), by content."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    from st_app.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's usage errors leave through SystemExit, as in a real process
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code: int, out: str, err: str, expect: str = "") -> None:
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and out == "", (out, err)
    assert expect.lower() in err.lower(), err


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """The uninterrupted run (epoch 2) and the same run as it stood after epoch 1."""
    from st_app.cli import main

    base = tmp_path_factory.mktemp("refs")
    full, first = base / "full", base / "first"
    # in this process: it also imports everything a run needs (the first SGD() imports torch._dynamo,
    # seconds), so every forked child starts warm
    assert main([*TRAIN, "--out", str(full)]) == 0
    # killed as epoch 2 begins to be written: exactly the committed epoch 1 of the same run
    assert fork_cli([*TRAIN, "--out", str(first)], {"ST_APP_FAULT": "kill:stage:model.safetensors@2"}) == -9
    assert json.loads((first / "meta.json").read_text())["epoch"] == 1
    return {2: full, 1: first}


def check_reader_sees_one_epoch(run: Path, refs: dict[int, Path]) -> int:
    """What eval/the app would load right now: one whole epoch, equal to that epoch of the reference."""
    loaded = ckpt.load_checkpoint(run)
    epoch = loaded.meta["epoch"]
    assert epoch in (1, 2)
    want = tensors(refs[epoch] / "model.safetensors")
    got = loaded.model.state_dict()
    for k, v in want.items():
        assert torch.equal(got[k], v), f"the reader mixed epochs: {k}"
    assert [r["epoch"] for r in ckpt.read_metrics(run)] == list(range(1, epoch + 1))
    return epoch


def assert_equals_uninterrupted(run: Path, ref: Path) -> None:
    for name in ("model.safetensors", "optimizer.safetensors"):
        assert_same_tensors(run / name, ref / name)
    opt_header = [json.loads(ckpt.tensorfile.metadata((d / "optimizer.safetensors").read_bytes())["st_app_optimizer"])
                  for d in (run, ref)]
    assert opt_header[0] == opt_header[1]
    assert metric_rows(run) == metric_rows(ref)  # every epoch exactly once, same numbers
    assert {p.name for p in run.iterdir()} == RUN_LISTING  # no temp files, no transaction left


# ------------------------------------------------------------------ kill -9 at every boundary
BOUNDARIES = fault_points(FILES)
CASES = [("kill", b) for b in BOUNDARIES] + [("torn", f"stage:{n}") for n in FILES]


@pytest.mark.parametrize("action, boundary", CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_kill_at_a_write_boundary_then_resume_is_bit_identical(refs, tmp_path, action, boundary):
    run = tmp_path / "run"
    code = fork_cli([*TRAIN, "--out", str(run)], {"ST_APP_FAULT": f"{action}:{boundary}@2"})
    assert code == -signal.SIGKILL
    committed = boundary == "committed" or boundary.startswith(("apply", "applied"))
    assert check_reader_sees_one_epoch(run, refs) == (2 if committed else 1)
    assert fork_cli(["train", "--resume", "--out", str(run), "--quiet"]) == 0
    assert_equals_uninterrupted(run, refs[2])


@pytest.mark.parametrize("boundary", ["staged:meta.json", "committed"])
def test_kill_during_the_first_epoch(refs, tmp_path, boundary):
    """Before the first commit there is no run (a new train may start there); after it, resume."""
    run = tmp_path / "run"
    assert fork_cli([*TRAIN, "--out", str(run)], {"ST_APP_FAULT": f"kill:{boundary}@1"}) == -9
    if boundary == "committed":
        assert check_reader_sees_one_epoch(run, refs) == 1
        assert fork_cli(["train", "--resume", "--out", str(run), "--quiet"]) == 0
    else:
        with pytest.raises(ckpt.CheckpointError, match="not a run folder"):
            ckpt.load_checkpoint(run)
        assert fork_cli([*TRAIN, "--out", str(run)]) == 0
    assert_equals_uninterrupted(run, refs[2])


def test_stale_transactions_and_temp_files_are_cleaned_on_open(refs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(refs[1], run)
    shutil.rmtree(run / TXN_DIR, ignore_errors=True)
    (run / TXN_DIR).mkdir()
    (run / TXN_DIR / "model.safetensors").write_bytes(b"half a file")  # never committed
    (run / ".model.safetensors.x1y2.tmp").write_bytes(b"left by an old writer")
    assert ckpt.load_checkpoint(run).meta["epoch"] == 1  # readers ignore both, and write nothing
    assert (run / TXN_DIR).exists()
    RunFolder(run, writer=True).release()
    assert {p.name for p in run.iterdir()} == RUN_LISTING


# -------------------------------------------------------------------------- two writers
def test_two_concurrent_trains_exactly_one_runs(refs, tmp_path, capsys):
    run = tmp_path / "run"
    holder = fork_cli([*TRAIN, "--out", str(run)], {"ST_APP_FAULT": "stop:committed@1"}, stopped=True)
    try:
        before = digest(run)
        # a second train, as a real separate program
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        env.pop("ST_APP_FAULT", None)
        proc = subprocess.run([sys.executable, "-m", "st_app", *TRAIN, "--out", str(run)], capture_output=True,
                              text=True, env=env, cwd=ROOT, timeout=300)
        assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, f"being written by process {holder}")
        assert str(run / ".lock") in proc.stderr
        # a resume beside the running train, from this process
        assert_one_line_error(*run_cli(capsys, "train", "--resume", "--out", run, "--quiet"), f"process {holder}")
        # readers never block: the committed epoch 1 loads while the writer holds the lock
        assert check_reader_sees_one_epoch(run, refs) == 1
        assert digest(run) == before
    finally:
        os.kill(holder, signal.SIGCONT)
    _, status = os.waitpid(holder, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert_equals_uninterrupted(run, refs[2])


def test_a_second_trainer_in_the_same_process_is_refused_until_the_first_ends(tmp_path):
    from st_app.core.train import TrainConfig, Trainer

    cfg = TrainConfig(dataset=SYN, method="ct", epochs=1, batch_size=32, device="cpu")
    first = Trainer(cfg, out_dir=tmp_path / "run")
    with pytest.raises(RunLockedError, match="another trainer in this process"):
        Trainer(cfg, out_dir=tmp_path / "run")
    first.run()  # releases the lock when it ends
    with pytest.raises(Exception, match="already holds a run"):
        Trainer(cfg, out_dir=tmp_path / "run")
    Trainer.resume(tmp_path / "run").close()


# ---------------------------------------------------------------------------- full disks
def test_a_full_disk_mid_save_keeps_the_previous_epoch(refs, tmp_path):
    """Injected ENOSPC (the same OSError a full disk raises) while staging epoch 2."""
    run, log = tmp_path / "run", tmp_path / "log"
    code = fork_cli([*TRAIN, "--out", str(run)], {"ST_APP_FAULT": "enospc:stage:optimizer.safetensors@2"}, log=log)
    err = log.read_text()
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "No space left on device" in err and "optimizer.safetensors" in err and "previous state" in err
    assert check_reader_sees_one_epoch(run, refs) == 1
    assert not (run / TXN_DIR).exists()
    assert fork_cli(["train", "--resume", "--out", str(run), "--quiet"]) == 0
    assert_equals_uninterrupted(run, refs[2])


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root / CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_really_full_tmpfs_keeps_the_previous_epoch(refs, tmp_path):
    with tmpfs(tmp_path / "disk", "size=3500k") as disk:
        run, log = disk / "run", tmp_path / "log"
        code = fork_cli([*TRAIN, "--out", str(run)], log=log)  # epoch 1 fits (2.2 MB), epoch 2 cannot be staged
        err = log.read_text()
        assert code == 2 and err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err, err
        assert check_reader_sees_one_epoch(run, refs) == 1
        assert not (run / TXN_DIR).exists()
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        assert fork_cli(["train", "--resume", "--out", str(run), "--quiet"]) == 0
        assert_equals_uninterrupted(run, refs[2])


def test_a_read_only_mount_is_one_line(tmp_path, capsys):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        assert_one_line_error(*run_cli(capsys, *TRAIN, "--out", ro / "run"), "Read-only file system")
        assert_one_line_error(*run_cli(capsys, "analyze", "subnets", "--ct", "x", "--st", "x", "--out", ro / "rep"),
                              "Read-only file system")


# ------------------------------------------------------------------------------- outputs
def test_export_refuses_run_files_and_devices_and_asks_for_force(refs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(refs[2], run)
    before = digest(run)
    common = ["export", "--checkpoint", run, "--plan", "depths:1,1,1"]
    for out, expect in [(run / "model.safetensors", "file of the run folder"), (run / "meta.json", "file of the run"),
                        (run / "manifest.json", "file of the run"), ("/dev/null", "not a regular file"),
                        (run, "a folder"), ("", "empty"), (run / "model.safetensors" / "x.onnx", "Not a directory"),
                        (tmp_path / ("x" * 300 + ".onnx"), "File name too long")]:
        assert_one_line_error(*run_cli(capsys, *common, "--out", out), expect)
    assert digest(run) == before
    assert Path("/dev/null").is_char_device()
    code, out, _ = run_cli(capsys, "eval", "--checkpoint", run, "--dataset", SYN, "--json")
    assert code == 0 and json.loads(out)["epoch"] == 2  # the run still evaluates
    onnx = tmp_path / "sub.onnx"
    onnx.write_bytes(b"precious")
    assert_one_line_error(*run_cli(capsys, *common, "--out", onnx), "pass --force")
    assert onnx.read_bytes() == b"precious"
    code, out, err = run_cli(capsys, *common, "--out", onnx, "--force")
    assert code == 0 and onnx.stat().st_size > 1000 and not list(tmp_path.glob(".sub.onnx*")), err


def test_analyze_needs_force_to_replace_a_report(refs, tmp_path, capsys):
    args = ["analyze", "importance", "--ct", refs[2], "--st", refs[2], "--dataset", SYN, "--out", tmp_path, "--quiet"]
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    saved = (tmp_path / "importance.json").read_bytes()
    assert_one_line_error(*run_cli(capsys, *args), "pass --force")
    assert (tmp_path / "importance.json").read_bytes() == saved
    assert run_cli(capsys, *args, "--force")[0] == 0


# ------------------------------------------------------------------- checksums and sources
def test_a_flipped_byte_is_reported_not_loaded(refs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(refs[2], run)
    data = bytearray((run / "model.safetensors").read_bytes())
    data[-100] ^= 0x01  # inside a weight
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(bytes(data))
    (run / "model.safetensors").write_bytes(bytes(data))
    assert_one_line_error(*run_cli(capsys, "eval", "--checkpoint", run, "--dataset", SYN), "does not match its sha256")
    assert_one_line_error(*run_cli(capsys, "eval", "--checkpoint", lone, "--dataset", SYN), "is damaged")
    assert_one_line_error(*run_cli(capsys, "train", "--resume", "--out", run), "does not match its sha256")


def test_old_run_folders_still_load_and_gain_a_manifest_without_losing_files(tmp_path):
    demos = [resource_path("checkpoints", f"digits-resnet20-{m}") for m in ("ct", "st")]
    for path in demos:
        before = digest(path)
        loaded = ckpt.load_checkpoint(path)
        assert loaded.meta["epoch"] == 30 and len(ckpt.read_metrics(path)) == 30
        assert digest(path) == before and not (path / MANIFEST_FILE).exists()  # reading writes nothing
    old = tmp_path / "old"
    shutil.copytree(demos[0], old)
    loaded = ckpt.load_checkpoint(old)
    ckpt.save_checkpoint(old, loaded.model, loaded.meta)  # rewrites model + meta, carries the rest
    manifest = json.loads((old / MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == {"model.safetensors", "meta.json", "metrics.jsonl", "command.txt"}
    assert len(ckpt.read_metrics(old)) == 30


# ---------------------------------------------------------------- every bad input, one line
def _cli_cases(run: Path, tmp: Path) -> list[tuple[list, str]]:
    a_file = tmp / "a_file"
    a_file.write_text("x")
    big = "100000000000000000000000"
    train = [a for a in TRAIN if a != "--quiet"]
    t = lambda *extra: [*train, *extra, "--out", tmp / "new"]  # noqa: E731
    ev = lambda *extra: ["eval", "--checkpoint", run, "--dataset", SYN, *extra]  # noqa: E731
    an = lambda name, *extra: ["analyze", name, "--ct", run, "--st", run, "--dataset", SYN, *extra,  # noqa: E731
                               "--out", tmp / "rep"]
    return [
        (t("--space", "0|0-99999999999999|0"), "space for stage 2"),
        (t("--space", "0|０-1|0"), "ASCII"),
        (t("--lr", "1e308"), "--lr"), (t("--lr", "nan"), "--lr"), (t("--lr", "-1"), "--lr"), (t("--lr", "0"), "--lr"),
        (t("--momentum", "1e308"), "--momentum"), (t("--momentum", "1"), "--momentum"),
        (t("--weight-decay", "1e308"), "--weight-decay"), (t("--weight-decay", "-0.1"), "--weight-decay"),
        (t("--device", "meta"), "unknown device 'meta'"), (t("--device", "xla"), "unknown device 'xla'"),
        (t("--image-size", "100000"), "--image-size"), (t("--image-size", "0"), "--image-size"),
        (["train", "--dataset", "synthetic:0,0,0,0,0", "--out", tmp / "new"], "synthetic"),
        (["train", "--dataset", "synthetic:1,8,1", "--out", tmp / "new"], "classes"),
        (["train", "--dataset", "synthetic:-1,8,10", "--out", tmp / "new"], "synthetic"),
        (["train", "--dataset", "synthetic:1,1024,10,100000,100", "--out", tmp / "new"], "GiB"),
        (["train", "--dataset", "synthetic:a,b", "--out", tmp / "new"], "malformed synthetic"),
        (["train", "--dataset", "synthetic:1,８,10", "--out", tmp / "new"], "malformed synthetic"),
        (t("--epochs", big), "--epochs"), (t("--epochs", "0"), "--epochs"), (t("--epochs", "1e23"), "--epochs"),
        (t("--epochs", "１２"), "ASCII"), (t("--epochs", "١٢"), "ASCII"),
        (t("--subnets", big), "--subnets"), (t("--subnets", "0"), "--subnets"),
        (t("--batch-size", "0"), "--batch-size"), (t("--batch-size", big), "--batch-size"),
        (t("--seed", "-1"), "--seed"), (t("--seed", big), "--seed"),
        (t("--threads", "0"), "--threads"), (t("--threads", "100000"), "--threads"),
        (t("--min-scale", "0"), "--min-scale"), (t("--min-scale", "2"), "--min-scale"), (t("--min-side", "0"), "--min-side"),
        (t("--final-survival", "inf"), "--final-survival"), (t("--final-survival", "1.5"), "--final-survival"),
        ([*train, "--out", ""], "empty"), ([*train, "--out", a_file], "not a folder"),
        ([*train, "--out", a_file / "run"], "Not a directory"), ([*train, "--out", tmp / ("r" * 300)], "too long"),
        ([*train, "--out", run], "already holds a run"),
        (["train", "--resume", "--out", tmp / "nowhere"], "not a run folder"),
        (["train", "--resume", "--out", tmp], "holds no finished epoch"),
        (ev("--plans", "０|３|６"), "ASCII"), (ev("--plans", "٠|٣|٦"), "ASCII"), (ev("--plans", "depths:١,1,1"), "ASCII"),
        (ev("--limit", "0"), "--limit"), (ev("--limit", big), "--limit"), (ev("--calib-images", big), "--calib-images"),
        (ev("--seed", "-1"), "--seed"), (ev("--device", "meta"), "unknown device"),
        (an("robustness", "--repeats", "99999999999"), "--repeats"), (an("robustness", "--max-k", "0"), "--max-k"),
        (an("robustness", "--max-swaps", big), "--max-swaps"), (an("subnets", "--limit", big), "--limit"),
        (an("subnets", "--test-images", "0"), "--test-images"), (an("subnets", "--calib-images", "0"), "--calib-images"),
        (an("importance", "--seed", big), "--seed"), (an("loafing", "--epochs", big), "--epochs"),
        (an("importance", "--threads", "0"), "--threads"), (an("subnets", "--device", "xla"), "unknown device"),
        (["analyze", "compare", "--epochs", big, "--out", tmp / "rep"], "--epochs"),
        (["analyze", "compare", "--batch-size", "0", "--out", tmp / "rep"], "--batch-size"),
        (["analyze", "compare", "--lr", "1e308", "--out", tmp / "rep"], "--lr"),
        (["analyze", "importance", "--ct", run, "--st", run, "--out", ""], "empty"),
        (["analyze", "importance", "--ct", run, "--st", run, "--out", a_file], "not a folder"),
        (["train", "--out"], "expected one argument"), (["eval"], "required"), (["nonsense"], "invalid choice"),
    ]


def test_every_bad_cli_input_is_exit_2_and_one_line(refs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(refs[2], run)
    before = digest(run)
    cases = _cli_cases(run, tmp_path)
    for argv, expect in cases:
        code, out, err = run_cli(capsys, *argv)
        assert_one_line_error(code, out, err, expect)
        assert not has_run(tmp_path / "new"), argv
    assert digest(run) == before
    assert len(cases) > 70


META_CASES = [
    ("config", "a string"), ("config", [1, 2]), ("dataset", "digits"), ("method", "st"),
    ("model.num_classes", -1), ("model.num_classes", 10**12), ("model.num_classes", "10"), ("model.num_classes", 2.5),
    ("model.in_channels", 0), ("model.image_size", 100000), ("model.arch", 5), ("model.arch", "resnet9000"),
    ("model", None), ("branch_scales", [float("nan")] * 9), ("branch_scales", ["x"] * 9), ("branch_scales", [1.0] * 3),
    ("branch_scales", [float("inf")] * 9), ("epoch", -1), ("epoch", "3"), ("epoch", 10**30),
    ("config.epochs", 10**23), ("config.lr", float("inf")), ("config.lr", 1e308), ("config.batch_size", 0),
    ("config.seed", -5), ("config.data_dir", 5), ("config.momentum", True), ("method.n_subnets", 10**23),
    ("method.final_survival", float("inf")), ("method.space", "0|0-99999999999"), ("dataset.num_classes", -1),
    ("dataset.classes", "0123"), ("dataset.n_train", -4),
]


def _set(meta: dict, dotted: str, value) -> dict:
    meta = json.loads(json.dumps(meta))
    *parents, last = dotted.split(".")
    node = meta
    for p in parents:
        node = node[p]
    node[last] = value
    return meta


@pytest.mark.parametrize("field, value", META_CASES, ids=[f"{f}={str(v)[:12]}" for f, v in META_CASES])
def test_every_bad_meta_field_is_exit_2_and_one_line(refs, tmp_path, capsys, rewrite_run_file, field, value):
    run = tmp_path / "run"
    shutil.copytree(refs[2], run)
    meta = json.loads((run / "meta.json").read_text())
    rewrite_run_file(run, "meta.json", json.dumps(_set(meta, field, value)))  # crafted, not damaged
    before = digest(run)
    top = field.split(".")[0]
    for argv in (["eval", "--checkpoint", run, "--dataset", SYN], ["train", "--resume", "--out", run, "--quiet"],
                 ["analyze", "subnets", "--ct", run, "--st", run, "--dataset", SYN, "--out", tmp_path / "rep"]):
        code, out, err = run_cli(capsys, *argv)
        assert_one_line_error(code, out, err)
        assert str(run / "meta.json") in err and (top in err or "model" in err), err
    assert digest(run) == before


def test_a_recorded_data_path_is_never_used_silently(refs, tmp_path, capsys, rewrite_run_file):
    run = tmp_path / "run"
    shutil.copytree(refs[2], run)
    meta = json.loads((run / "meta.json").read_text())
    meta = _set(_set(meta, "dataset.name", "imagefolder:../../../../etc"), "config.dataset", "imagefolder:../../../../etc")
    rewrite_run_file(run, "meta.json", json.dumps(meta))
    for argv in (["eval", "--checkpoint", run], ["train", "--resume", "--out", run, "--quiet"],
                 ["analyze", "importance", "--ct", run, "--st", run, "--out", tmp_path / "rep"]):
        assert_one_line_error(*run_cli(capsys, *argv), "never used silently")
    # with --data-dir the user names the folder: it is read (and here it is not an image folder)
    assert_one_line_error(*run_cli(capsys, "eval", "--checkpoint", run, "--data-dir", tmp_path / "none"),
                          "image folder")


def test_a_checkpoint_meta_that_is_not_an_object(refs, tmp_path, capsys, rewrite_run_file):
    run = tmp_path / "run"
    shutil.copytree(refs[2], run)
    for text in ("[]", '"x"', "5", "null"):
        rewrite_run_file(run, "meta.json", text)
        assert_one_line_error(*run_cli(capsys, "eval", "--checkpoint", run, "--dataset", SYN), "meta.json")


def test_a_nan_before_any_epoch_says_nothing_was_saved(tmp_path, monkeypatch, capsys):
    from st_app.core.methods import StimulativeTraining

    real = StimulativeTraining.step

    def poisoned(self, model, x, y, rng):
        out = real(self, model, x, y, rng)
        out["loss"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(StimulativeTraining, "step", poisoned)
    code, out, err = run_cli(capsys, *[a for a in TRAIN if a != "--quiet"], "--out", tmp_path / "run")
    assert_one_line_error(code, out, err, "no epoch had finished, so nothing was saved")
    assert "is kept" not in err and not has_run(tmp_path / "run")


def test_a_commit_that_fails_after_its_commit_point_is_completed_not_lost(tmp_path, monkeypatch):
    """An OS error while moving a committed epoch into place: the epoch is done at the next
    commit (or open), never thrown away, and readers see it in the meantime."""
    from st_app.core.runfolder import RunFolderError, read_run

    with RunFolder(tmp_path / "run") as run:
        run.commit({"a.txt": b"one", "b.txt": b"one"}, epoch=1)
        monkeypatch.setenv("ST_APP_FAULT", "enospc:apply:b.txt@2")
        with pytest.raises(RunFolderError, match="not yet in place"):
            run.commit({"a.txt": b"two", "b.txt": b"two"}, epoch=2)
        view = read_run(run.path, ["a.txt", "b.txt"])
        assert view.epoch == 2 and view.files == {"a.txt": b"two", "b.txt": b"two"}
        monkeypatch.delenv("ST_APP_FAULT")
        run.commit({"a.txt": b"three"}, epoch=3)  # b.txt is carried over from epoch 2, not 1
    view = read_run(tmp_path / "run", ["a.txt", "b.txt"])
    assert view.epoch == 3 and view.files == {"a.txt": b"three", "b.txt": b"two"}
    assert not (tmp_path / "run" / TXN_DIR).exists()
