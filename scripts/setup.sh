#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install biqa into it.
# Usage: bash scripts/setup.sh [EXTRAS]   e.g. EXTRAS=dev for the test suite.
# torch/torchvision are pinned to the releases this machine kind installs (2.14.1 / 0.29.1 on
# Python 3.11; pip takes them from the local wheel store where one is configured).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip_() { .venv/bin/python -m pip install --disable-pip-version-check -q "$@"; }
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  echo "[setup] installing torch 2.14.1 + torchvision 0.29.1 (first run only; large)"
  pip_ "torch==2.14.1" "torchvision==0.29.1"
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
echo "[setup] installing biqa ${extras:+with extras [$extras]}"
pip_ -e "$spec"
