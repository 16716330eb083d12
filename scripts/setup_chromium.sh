#!/usr/bin/env bash
# Install Debian's chromium when no Chromium is on PATH: tests/test_gmad.py renders the gMAD page in
# headless Chromium. Called by scripts/test.sh (the README's test command, also run by .ci/run).
#
# Never fails its caller: when it cannot install (no apt-get, not root and no password-less sudo, no
# network, a failed install) it prints a warning; the page test then skips with that reason, or fails
# when CI=true, so a CI run without a browser is noticed. BIQA_SKIP_CHROMIUM=1: do not try.
# Measured on Debian 12 (bookworm), chromium 156: 113 MB to fetch, 414 MB installed, 1 min 41 s.
set -uo pipefail

for c in chromium chromium-browser chromium-headless-shell; do
  if command -v "$c" >/dev/null 2>&1; then
    exit 0
  fi
done

TEST="tests/test_gmad.py::test_page_renders_in_headless_chromium"
warn() {
  echo "[setup] WARNING: $*; $TEST will be skipped (and fail under CI=true)" >&2
}

if [ "${BIQA_SKIP_CHROMIUM:-0}" = 1 ]; then
  warn "BIQA_SKIP_CHROMIUM=1: not installing chromium"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  warn "no Chromium on PATH and no apt-get to install Debian's chromium (install Chromium yourself)"
  exit 0
fi
sudo_=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_=(sudo -n)
  else
    warn "no Chromium on PATH, and installing Debian's chromium needs root (apt-get install chromium)"
    exit 0
  fi
fi

log="$(mktemp "${TMPDIR:-/tmp}/biqa-chromium-apt.XXXXXX")"
apt_() {
  ${sudo_[@]+"${sudo_[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 "$@" >>"$log" 2>&1
}
echo "[setup] installing Debian's chromium for the gMAD page test (first run only; about 110 MB to fetch)"
start=$SECONDS
# the package lists of the image first; refresh them only when that fails (stale or absent lists)
if ! apt_ install --no-install-recommends chromium; then
  echo "[setup] apt-get install chromium failed; running apt-get update and trying again"
  if ! { apt_ update && apt_ install --no-install-recommends chromium; }; then
    tail -n 15 "$log" >&2
    warn "apt-get could not install chromium (full log: $log)"
    exit 0
  fi
fi
if ! command -v chromium >/dev/null 2>&1; then
  warn "apt-get installed chromium but no 'chromium' is on PATH (log: $log)"
  exit 0
fi
rm -f "$log"
echo "[setup] chromium installed in $((SECONDS - start)) s: $(chromium --version 2>/dev/null | head -n 1)"
