#!/usr/bin/env bash
# Create bench/.venv-snakemake with a pinned Snakemake, for the comparison in validate_bench.py.
# Usage: bench/setup_snakemake.sh   (PYTHON=python3.12 bench/setup_snakemake.sh to choose the interpreter)
set -euo pipefail
SNAKEMAKE_VERSION="${SNAKEMAKE_VERSION:-9.27.1}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-snakemake"
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "snakemake==$SNAKEMAKE_VERSION"
"$venv/bin/snakemake" --version
echo "snakemake installed: $venv/bin/snakemake"
