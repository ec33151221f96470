#!/usr/bin/env bash
# Writes ROWS pseudo-random numbers (reproducible from SEED) into the job's run folder.
set -euo pipefail
rows=${1:-100}
seed=${2:-1}
out="${CCSPEC_RUN_DIR:-.}/numbers.csv"
echo "value" > "$out"
awk -v n="$rows" -v seed="$seed" 'BEGIN { srand(seed); for (i = 1; i <= n; i++) printf "%.4f\n", rand() * 100 }' >> "$out"
echo "# ccspec progress=100 message=\"wrote $rows rows\""
echo "# ccspec output csv=$out"
echo "# ccspec output rows=$rows"
