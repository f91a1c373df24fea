#!/usr/bin/env bash
# The race window (issue 7): packets that VM clones send under the snapshot's keys, and the
# (key, nonce) pairs they reuse, against the clones' notification delay and the packet rate, for
# the fork guard's Notifier, HotPath and Both modes, from the fork simulation (tools/ForkSim).
#
#   bash bench/race-window.sh              # full sweep: 3 modes x 3 rates x 8 delays x 3 seeds
#   SEEDS=5 bash bench/race-window.sh      # more seeds per point
#
# Writes docs/race-window.csv (one row per scenario) and docs/race-window.png (the plot), both
# committed, and bench/results/race-window.md (the tables for docs/BENCHMARKS.md). Virtual time: the figures do
# not depend on the machine or its load. Needs python3 with matplotlib; installs Debian's
# python3-matplotlib if it is missing (run as root, not meant for CI).
# Honours TUNNEL_ARTIFACTS for build output, like the rest of the repository.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
project="$repo/bench/Tunnel.Bench"
csv="$repo/docs/race-window.csv"
mkdir -p "$repo/bench/results"

# Debian's python3 (which python3-matplotlib installs into), unless PYTHON names another.
python="${PYTHON:-$( [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3 )}"
if ! "$python" -c 'import matplotlib' 2>/dev/null; then
    echo "python3-matplotlib missing: installing it (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-matplotlib >/dev/null
fi

dotnet build -c Release "$project" -v quiet -nologo
dotnet run -c Release --no-build --project "$project" -- race-window --seeds "${SEEDS:-3}" --out "$csv"

"$python" "$repo/bench/plot-race-window.py" "$csv" "$repo/docs/race-window.png" > "$repo/bench/results/race-window.md"
echo "CSV:   $csv"
echo "Plot:  $repo/docs/race-window.png"
echo "Table: $repo/bench/results/race-window.md"
