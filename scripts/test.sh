#!/usr/bin/env bash
# Install everything with the test dependencies, then run the test suite (pytest, on CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
# torch-fidelity is the reference the Inception agreement test compares with.  --no-deps: its
# own requirements pull torchvision (and with it another torch); the test imports only its
# pure-torch Inception module.
.venv/bin/pip install -q --no-deps "torch-fidelity==0.4.0"
.venv/bin/python -m pytest -q "$@"
