#!/usr/bin/env bash
# The GPU check (issue 11), run on a lent CUDA machine: bash bench/device_check.sh (writes to $OUT or ./device-out).
# CUDA tests, the GPU benchmark, fp32-vs-bf16 accuracy on digits, then torch.compile.
set -u
OUT=${OUT:-device-out}; mkdir -p "$OUT"
export PYTHONPATH=. OMP_NUM_THREADS=4
{
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -c "import torch; print('torch', torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0))"
echo "== tests/test_gpu.py (not compile)"
timeout 150 python -m pytest -q -p no:cacheprovider tests/test_gpu.py -k "not compile" -s 2>&1 | tail -25
echo "== bench"
timeout 280 python bench/bench_gpu.py --json "$OUT/bench_gpu.json" 2>&1
echo "== digits 30 epochs fp32 vs bf16 (ct, st)"
for m in ct st; do for p in fp32 bf16; do
  timeout 40 python -m st_app train --model resnet20 --dataset digits --method $m --epochs 30 --seed 0 \
    --precision $p --quiet --out "$OUT/digits-$m-$p" 2>&1 | tail -1
done; done
echo "== compile test"
timeout 100 python -m pytest -q -p no:cacheprovider tests/test_gpu.py -k compile 2>&1 | tail -5
} 2>&1 | tee "$OUT/log.txt"
