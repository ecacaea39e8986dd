#!/usr/bin/env bash
# Install everything, then train the default model (DCGAN, book28 preset) on Fashion-MNIST for a
# few CPU minutes; the run folder gets sample grids, checkpoints, logs and summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ganforge train dcgan "$@"
