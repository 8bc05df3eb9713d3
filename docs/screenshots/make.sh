#!/usr/bin/env bash
# The README's screenshots, made by the app itself (python main.py --screenshot), at 1280x720.
# Run from the repository root; a throw-away HOME keeps your settings and runs out of it.
set -euo pipefail
export HOME="$(mktemp -d)" QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
out=docs/screenshots
shot() { python main.py --reset-settings --screenshot "$@"; }
shot $out/main_window.png
shot $out/edited_plan_recalibrated.png --plan "0,2,1|3,5|6,7" --bn recalibrate
shot $out/presentation.png --presentation
shot $out/analyses_robustness.png --tab analyses --analysis robustness
shot $out/analyses_subnets_recalibrated.png --tab analyses --analysis subnets --bn recalibrate
shot $out/block_importance_ct.png --colour ct
shot $out/guided_demo.png --demo --presentation
shot $out/training.png --demo --tab train

# other families: the bundled vit-micro pair (its example session: the one-block sub-net), and a
# DenseNet-BC-40 pair trained here on digits (10 epochs each, about a minute on 2 cores)
shot $out/vit_micro_loafing.png resources/sessions/vit-micro-loafing.stlab
runs="$(mktemp -d)"
for m in ct st; do
  python -m st_app train --model densenet-bc-40 --dataset digits --method $m --epochs 10 --seed 0 --quiet \
    --out "$runs/densenet-bc-40-$m"
done
shot $out/densenet_block_graph.png --ct "$runs/densenet-bc-40-ct" --st "$runs/densenet-bc-40-st" --plan "depths:2,6,1"
