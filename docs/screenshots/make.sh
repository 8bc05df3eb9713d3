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
