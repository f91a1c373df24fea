#!/usr/bin/env bash
# Issue 12: the real `wg setconf` of N idle peers (one /32 each, random public keys) into a real
# tunneld over its UAPI socket, in a private network namespace; then `wg show dump`. Prints, per
# N: setconf time, dump time and lines, and tunneld's RSS before and after (growth per peer).
#
#   sudo bash bench/peers-uapi.sh                 # N = 10000 and 100000
#   sudo PEERS="1000 10000" bash bench/peers-uapi.sh
#   sudo IMPL=wireguard-go bash bench/peers-uapi.sh   # the same against wireguard-go
#   sudo DAEMON_ENV="DOTNET_GCConserveMemory=5" bash bench/peers-uapi.sh   # runtime settings to try
#
# Needs root (netns, TUN), wg and a built tunneld (dotnet build -c Release). Cleans up its
# namespace, process and files, pass or fail.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
artifacts="${TUNNEL_ARTIFACTS:-$repo/artifacts}"
tunneld="$artifacts/bin/Tunneld/release/tunneld.dll"
impl="${IMPL:-tunneld}"
peers_list="${PEERS:-10000 100000}"
ns="tt-$$-peers"
ifname="tp$$"
ifname="${ifname:0:15}"
work="$(mktemp -d)"
daemon=""

cleanup() {
    [[ -n "$daemon" ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -f "/var/run/wireguard/$ifname.sock"
    rm -rf "$work"
}
trap cleanup EXIT

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

start_daemon() {
    if [[ "$impl" == wireguard-go ]]; then
        ip netns exec "$ns" env WG_PROCESS_FOREGROUND=1 wireguard-go "$ifname" >"$work/daemon.log" 2>&1 &
    else
        ip netns exec "$ns" env LOG_LEVEL=error ${DAEMON_ENV:-} dotnet "$tunneld" -f "$ifname" >"$work/daemon.log" 2>&1 &
    fi
    daemon=$!
    for _ in $(seq 1 200); do
        [[ -S "/var/run/wireguard/$ifname.sock" ]] && return 0
        sleep 0.1
    done
    echo "daemon did not come up:" >&2
    cat "$work/daemon.log" >&2
    exit 1
}

echo "| daemon | peers | config file (MB) | wg setconf (s) | wg show dump (s) | dump lines | RSS before (MB) | RSS after set (MB) | RSS per peer (bytes) | RSS after dump (MB) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in $peers_list; do
    ip netns add "$ns"
    start_daemon
    sleep 1 # let the runtime settle before the baseline
    python3 - "$n" "$(wg genkey)" >"$work/wg.conf" <<'EOF'
import base64, os, sys
n, private = int(sys.argv[1]), sys.argv[2]
out = [f"[Interface]\nPrivateKey = {private}\nListenPort = 51999\n"]
for i in range(1, n + 1):
    key = base64.b64encode(os.urandom(32)).decode()
    out.append(f"[Peer]\nPublicKey = {key}\nAllowedIPs = 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}/32\n")
sys.stdout.write("\n".join(out))
EOF
    before=$(rss_kb "$daemon")
    t0=$(date +%s.%N)
    ip netns exec "$ns" wg setconf "$ifname" "$work/wg.conf"
    set_s=$(echo "$(date +%s.%N) - $t0" | bc)
    sleep 2
    after=$(rss_kb "$daemon")
    t0=$(date +%s.%N)
    lines=$(ip netns exec "$ns" wg show "$ifname" dump | wc -l)
    dump_s=$(echo "$(date +%s.%N) - $t0" | bc)
    sleep 2
    dumped=$(rss_kb "$daemon")
    file_mb=$(awk -v b="$(stat -c %s "$work/wg.conf")" 'BEGIN {printf "%.1f", b / 1e6}')
    awk -v impl="$impl" -v n="$n" -v mb="$file_mb" -v s="$set_s" -v d="$dump_s" \
        -v l="$lines" -v b="$before" -v a="$after" -v r="$dumped" \
        'BEGIN {printf "| %s | %d | %s | %.2f | %.2f | %d | %.1f | %.1f | %d | %.1f |\n", impl, n, mb, s, d, l, b / 1024, a / 1024, (a - b) * 1024 / n, r / 1024}'
    kill "$daemon"
    wait "$daemon" 2>/dev/null || true
    daemon=""
    ip netns del "$ns"
done
