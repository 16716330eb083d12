#!/usr/bin/env bash
# Set up (if needed) with the test extras and run the whole test suite (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/python -m pytest -p no:cacheprovider "$@"
