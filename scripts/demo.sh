#!/usr/bin/env bash
# Set up (if needed) and run the main job: score the bundled example photos with the
# bundled default model, print a per-image table and write scores.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/biqa score --out scores.csv "$@"
