#!/usr/bin/env bash
# Install everything with the test dependencies, then run the test suite (pytest, on CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
.venv/bin/python -m pytest -q "$@"
