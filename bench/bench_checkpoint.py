"""What a transactional, checksummed epoch save and a checked load cost (not a test).

    python bench/bench_checkpoint.py                     # resnet20 (digits shape) and resnet50 (ImageNet)
    python bench/bench_checkpoint.py --models resnet20 --repeats 10

For each model, with an SGD optimizer whose momentum buffers are filled: the median seconds of

- ``plain save``: what the Trainer did before run transactions - weights, optimizer, meta and
  metrics as four separate temp + rename writes (safetensors ``save_file``, no checksums);
- ``commit``: :meth:`RunFolder.commit` of the same files (staged + fsynced, manifest with
  sha256, moved into place, checksums of the tensor data in each header);
- ``plain load`` (safetensors ``load_file`` + meta.json + building the model) and ``checked load``
  (:func:`load_checkpoint`: manifest sha256 of every file, tensor checksum, meta schema);

and the ratios commit / plain save and checked / plain load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from st_app.core import checkpoint as ckpt  # noqa: E402
from st_app.core.models import build_model  # noqa: E402
from st_app.core.runfolder import RunFolder  # noqa: E402

SHAPES = {"resnet20": (10, 1, 8), "resnet50": (1000, 3, 224)}


def _atomic(path: Path, write) -> None:  # noqa: ANN001 - the old code path, for comparison
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    write(tmp)
    os.replace(tmp, path)


def plain_save(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: str) -> None:
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    _atomic(folder / "model.safetensors", lambda t: save_file(state, t, metadata={"st_app": meta}))
    flat, header = ckpt._optimizer_to_flat(optimizer)
    _atomic(folder / "optimizer.safetensors",
            lambda t: save_file(flat, t, metadata={"st_app_optimizer": json.dumps(header)}))
    _atomic(folder / "meta.json", lambda t: Path(t).write_text(meta))
    _atomic(folder / "metrics.jsonl", lambda t: Path(t).write_text('{"epoch": 1}\n'))


def median_seconds(fn, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(name: str, root: Path, repeats: int) -> str:
    """One table row for ``name``."""
    classes, channels, size = SHAPES[name]
    model = build_model(name, classes, channels, size)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, channels, size, size)).sum().backward()
    optimizer.step()
    meta = {"epoch": 1, "config": {"model": name}}

    def files() -> dict[str, bytes]:
        return ckpt.checkpoint_files(model, meta, optimizer) | {"metrics.jsonl": b'{"epoch": 1}\n'}

    megabytes = sum(len(v) for v in files().values()) / 2**20
    plain_dir, run_dir = root / f"{name}-plain", root / f"{name}-run"
    plain_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(meta)
    save_plain = median_seconds(lambda: plain_save(plain_dir, model, optimizer, text), repeats)
    with RunFolder(run_dir, writer=True) as run:
        commit = median_seconds(lambda: run.commit(files(), epoch=1), repeats)

    def load_old() -> None:
        json.loads((plain_dir / "meta.json").read_text())
        ckpt.build_from_state(model.config, load_file(str(plain_dir / "model.safetensors")), plain_dir)

    load_plain = median_seconds(load_old, repeats)
    load_checked = median_seconds(lambda: ckpt.load_checkpoint(run_dir), repeats)
    return (f"{name:<10} {megabytes:6.1f} {save_plain:10.3f}s {commit:7.3f}s {commit / save_plain:5.2f}x "
            f"{load_plain:10.3f}s {load_checked:12.3f}s {load_checked / load_plain:5.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet20,resnet50")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dir", default=None, help="folder to write in (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench_ckpt_"))
    print(f"{'model':<10} {'MB':>6} {'plain save':>11} {'commit':>8} {'ratio':>6} {'plain load':>11} "
          f"{'checked load':>13} {'ratio':>6}")
    for name in args.models.split(","):
        print(measure(name, root, args.repeats), flush=True)
    print(f"(files in {root}; median of {args.repeats}; 1 torch thread)")


if __name__ == "__main__":
    main()
