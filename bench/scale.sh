#!/usr/bin/env bash
# tunneld with 1k, 10k and 100k peers (issue 12): config to READY=1 and to every route, RSS, idle
# CPU, `wg show dump`, `wg setconf`, stop and route removal; optionally rtnetlink against
# `ip -batch` for the same routes. Root; every run in a fresh network namespace, removed after.
#
#   sudo bash bench/scale.sh                              # 1000,10000,100000 peers
#   sudo bash bench/scale.sh --peers 1000,10000 --idle 5  # choose the set
#   sudo bash bench/scale.sh --compare-routes             # adds the route-install comparison
#   options: --timeout S (per step, default 300), --idle S (default 10), --no-build
# TUNNELD_PATH / TUNNEL_BENCH_PATH use prebuilt binaries (e.g. NativeAOT) instead of artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) != 0 ]]; then
    echo "bench/scale.sh: needs root (network namespaces, TUN devices)" >&2
    exit 1
fi
for tool in ip wg python3; do
    command -v "$tool" >/dev/null || { echo "bench/scale.sh: needs $tool (scripts/setup.sh)" >&2; exit 1; }
done
build=1
args=()
for a in "$@"; do
    if [[ $a == --no-build ]]; then build=0; else args+=("$a"); fi
done
artifacts=${TUNNEL_ARTIFACTS:-artifacts}
if [[ $build == 1 && -z ${TUNNELD_PATH:-} ]]; then
    dotnet build tools/Tunneld -c Release -nologo -v q -m:1 >/dev/null
fi
if [[ $build == 1 && -z ${TUNNEL_BENCH_PATH:-} && " ${args[*]:-} " == *" --compare-routes "* ]]; then
    dotnet build bench/Tunnel.Bench -c Release -nologo -v q -m:1 >/dev/null
fi
exec python3 bench/scale/scale.py --tunneld "${TUNNELD_PATH:-$artifacts/bin/Tunneld/release/tunneld}" \
    --bench "${TUNNEL_BENCH_PATH:-$artifacts/bin/Tunnel.Bench/release/Tunnel.Bench}" "${args[@]}"
