#!/usr/bin/env bash
# Runs the BenchmarkDotNet micro-benchmarks (bench/Tunnel.Bench) in Release with MicroConfig's
# short job (3 warm-ups, 10 x 150 ms iterations, one process per case: a few minutes on 2 cores).
#
#   bash bench/run-micro.sh                       # everything
#   FILTER='*Aead*' bash bench/run-micro.sh       # one class (BenchmarkDotNet glob on full names)
#   bash bench/run-micro.sh --job default         # extra arguments go to BenchmarkDotNet
#
# Writes bench/results/micro-<UTC time>/ (BenchmarkDotNet's reports and the console log; ignored
# by git) and rewrites bench/results/summary.md (committed): the machine, the command and every
# table of this run. Honours TUNNEL_ARTIFACTS for build output, like the rest of the repository.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
project="$repo/bench/Tunnel.Bench"
filter="${FILTER:-*}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$repo/bench/results/micro-$stamp"
mkdir -p "$out"

machine() {
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
    echo "- OS: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
    echo "- .NET: SDK $(dotnet --version), runtime $(dotnet --list-runtimes | awk '/Microsoft.NETCore.App/ {v=$2} END {print v}')"
    echo "- libsodium: $(dpkg-query -W -f '${Version}' libsodium23 2>/dev/null || echo unknown)"
    echo "- Load average $1: $(cut -d' ' -f1-3 /proc/loadavg)"
}

{ echo "Started $(date -u '+%Y-%m-%d %H:%M:%S') UTC"; machine "at start"; } | tee "$out/machine.md"

dotnet build -c Release "$project" -v quiet -nologo
dotnet run -c Release --no-build --project "$project" -- \
    --filter "$filter" --artifacts "$out" "$@" 2>&1 | tee "$out/console.log"

machine "at end" | tail -1 >> "$out/machine.md"

summary="$repo/bench/results/summary.md"
{
    echo "# Micro-benchmark summary (bench/run-micro.sh, run micro-$stamp)"
    echo
    echo "Command: \`FILTER='$filter' bash bench/run-micro.sh $*\`"
    echo
    sed 's/^Started/- Started/' "$out/machine.md"
    for report in "$out"/results/*-report-github.md; do
        [ -e "$report" ] || continue
        echo
        echo "## $(basename "$report" -report-github.md | sed 's/^Tunnel\.Bench\.//')"
        echo
        cat "$report"
    done
} > "$summary"
echo "Reports: $out"
echo "Summary: $summary"
