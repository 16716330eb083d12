#!/usr/bin/env bash
# Set up (if needed) with the test extras and a headless Chromium, and run the whole test suite (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/setup_chromium.sh  # headless Chromium for the gMAD page test (Debian's chromium, when absent)
.venv/bin/python -m pytest -p no:cacheprovider "$@"
