#!/usr/bin/env bash
# Install everything with the test dependencies, then run the test suite (pytest, on CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
# The studio's browser tests drive Debian's Chromium through its chromedriver (no browser is
# downloaded at run time); under CI they fail rather than skip without them.
if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1 \
  && command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium chromium-driver; } >/dev/null; then
    echo "warning: could not install Debian's chromium and chromium-driver (the studio's browser tests need them)" >&2
  fi
fi
# torch-fidelity is the reference the Inception agreement test compares with.  --no-deps: its
# own requirements pull torchvision (and with it another torch); the test imports only its
# pure-torch Inception module.
.venv/bin/pip install -q --no-deps "torch-fidelity==0.4.0"
.venv/bin/python -m pytest -q "$@"
