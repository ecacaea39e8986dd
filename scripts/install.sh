#!/usr/bin/env bash
# Install GANForge into ./.venv: Fashion-MNIST from Debian where apt is available, torch first
# (so pip never swaps it for another build), then the package.  Usage: scripts/install.sh [extras]
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq dataset-fashion-mnist; } >/dev/null; then
    echo "warning: could not install Debian's dataset-fashion-mnist; see README (Data)" >&2
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
# The CPU build of PyTorch 2.13; set TORCH_SPEC to install another (e.g. a CUDA build) instead.
.venv/bin/pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/pip install -q -e ".${extras:+[$extras]}"
