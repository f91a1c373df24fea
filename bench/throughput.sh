#!/usr/bin/env bash
# iperf3 TCP throughput through the tunnel, in one run on this machine, for
#   wireguard-go <-> wireguard-go   (the reference)
#   tunneld      <-> tunneld
#   tunneld      ->  wireguard-go   (tunneld encrypts: iperf3 client on the tunneld side)
#   wireguard-go ->  tunneld        (tunneld decrypts: the same pair, iperf3 -R)
# Two network namespaces joined by a veth pair; both ends and iperf3 share this machine's CPUs,
# so the figures measure CPU cost per byte as much as anything. The pairs take turns, round after
# round (a load spike from elsewhere then hits every pair rather than one), and the table shows
# the median of the rounds and its ratio to wireguard-go <-> wireguard-go.
#
# Usage (root): bench/throughput.sh            # 3 rounds of 10 s per pair
#   DURATION=5 ROUNDS=1 bench/throughput.sh    # quicker, rougher
#   TUNNELD=/path/to/tunneld                   # skip the build and use this binary
#   PAIRS="wg-wg td-td"                        # a subset (wg-wg, td-td, td-wg, wg-td)
#   VERBOSE=1                                  # also print tunneld's data-path counters per run
#   STREAMS=4                                  # iperf3 -P 4: parallel TCP streams
#   REVERSE=1                                  # iperf3 -R on every pair: end b sends
#   CRYPTO_WORKERS=N                           # tunneld --crypto-workers N (default: one per CPU)
#   PING=1                                     # also ping through the tunnel every 10 ms beside the flow:
#                                              # loss, p50/p99 RTT, and the drop counters that moved
#                                              # (UDP RcvbufErrors per namespace, TUN drops); bench/latency.sh
# Needs wireguard-go, wg (wireguard-tools), iperf3, ping, python3. Everything it creates (two
# namespaces, the veth pair, the daemons, iperf3, a temporary folder) goes when it exits, pass or fail.
set -euo pipefail

DURATION=${DURATION:-10}
STREAMS=${STREAMS:-1}
REVERSE=${REVERSE:-}
PING=${PING:-}
ROUNDS=${ROUNDS:-3}
PAIRS=${PAIRS:-"wg-wg td-td td-wg wg-td"}
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" != 0 ]; then
  echo "throughput.sh: needs root (network namespaces, TUN devices)" >&2
  exit 1
fi
for tool in wireguard-go wg iperf3 ping python3 ip; do
  command -v "$tool" >/dev/null || { echo "throughput.sh: $tool is not installed" >&2; exit 1; }
done

if [ -z "${TUNNELD:-}" ]; then
  echo "building tunneld (Release)..." >&2
  dotnet build "$repo/tools/Tunneld" -c Release -nologo -v q >&2
  TUNNELD="${TUNNEL_ARTIFACTS:-$repo/artifacts}/bin/Tunneld/release/tunneld"
fi
[ -x "$TUNNELD" ] || { echo "throughput.sh: no tunneld at $TUNNELD" >&2; exit 1; }

# Names carry our PID so two runs (or a test suite) never collide; interface names stay under 15.
tag=$$
ns_a="tput-a-$tag"; ns_b="tput-b-$tag"
veth_a="tpva$tag"; veth_b="tpvb$tag"
work=$(mktemp -d)
pids=()     # every background process we start, killed by PID on exit
ifaces=()   # tunnel interface names, whose UAPI sockets we remove on exit

# shellcheck source=lib.sh
. "$repo/bench/lib.sh" # stop_pid

cleanup() {
  local rc=$?
  set +e
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  ip netns del "$ns_a" 2>/dev/null
  ip netns del "$ns_b" 2>/dev/null
  for name in "${ifaces[@]}"; do rm -f "/var/run/wireguard/$name.sock"; done
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add "$veth_a" type veth peer name "$veth_b"
ip link set "$veth_a" netns "$ns_a"
ip link set "$veth_b" netns "$ns_b"
ip -n "$ns_a" addr add 10.99.0.1/24 dev "$veth_a"
ip -n "$ns_b" addr add 10.99.0.2/24 dev "$veth_b"
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set "$veth_a" up
ip -n "$ns_b" link set "$veth_b" up

umask 077
wg genkey >"$work/a.key"; wg pubkey <"$work/a.key" >"$work/a.pub"
wg genkey >"$work/b.key"; wg pubkey <"$work/b.key" >"$work/b.pub"

# One end: $1 = a|b, $2 = wg|td, $3 = interface name. Side a is 10.200.0.1 on UDP 51820,
# side b 10.200.0.2 on 51821; each knows the other's endpoint.
start_end() {
  local side=$1 kind=$2 name=$3 ns key peer addr peer_addr port peer_port peer_ip
  if [ "$side" = a ]; then
    ns=$ns_a; key=$work/a.key; peer=$(cat "$work/b.pub"); addr=10.200.0.1; peer_addr=10.200.0.2
    port=51820; peer_port=51821; peer_ip=10.99.0.2
  else
    ns=$ns_b; key=$work/b.key; peer=$(cat "$work/a.pub"); addr=10.200.0.2; peer_addr=10.200.0.1
    port=51821; peer_port=51820; peer_ip=10.99.0.1
  fi
  ifaces+=("$name")
  if [ "$kind" = wg ]; then
    ip netns exec "$ns" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$name" >"$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do [ -S "/var/run/wireguard/$name.sock" ] && break; sleep 0.1; done
    ip netns exec "$ns" wg set "$name" listen-port "$port" private-key "$key" \
      peer "$peer" allowed-ips "$peer_addr/32" endpoint "$peer_ip:$peer_port"
    ip -n "$ns" addr add "$addr/24" dev "$name"
    ip -n "$ns" link set "$name" up
  else
    cat >"$work/$name.conf" <<EOF
[Interface]
PrivateKey = $(cat "$key")
ListenPort = $port
Address = $addr/24

[Peer]
PublicKey = $peer
AllowedIPs = $peer_addr/32
Endpoint = $peer_ip:$peer_port
EOF
    chmod 600 "$work/$name.conf"
    ip netns exec "$ns" env ${VERBOSE:+Logging__LogLevel__Default=Debug} "$TUNNELD" up "$work/$name.conf" --interface "$name" \
      ${CRYPTO_WORKERS:+--crypto-workers "$CRYPTO_WORKERS"} >"$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -S "/var/run/wireguard/$name.sock" ] && break; sleep 0.1; done
  fi
}

# Brings a pair up, measures one iperf3 run and takes the pair down; sets bps (bits per second).
# Runs in this shell, not a $(...) subshell, so the exit trap knows every PID it started.
# $1 = kind of end a, $2 = kind of end b, $3 = "-R" to make b the sender.
measure() {
  local kind_a=$1 kind_b=$2 reverse=${3:-} first=${#pids[@]}
  local name_a="tpa${tag}" name_b="tpb${tag}"
  start_end a "$kind_a" "$name_a"
  start_end b "$kind_b" "$name_b"
  local up=0
  for _ in $(seq 20); do
    if ip netns exec "$ns_a" ping -c1 -W1 10.200.0.2 >/dev/null 2>&1; then up=1; break; fi
  done
  if [ "$up" != 1 ]; then
    echo "throughput.sh: $kind_a <-> $kind_b: no ping through the tunnel; logs:" >&2
    tail -n 20 "$work/$name_a.log" "$work/$name_b.log" >&2
    return 1
  fi
  ip netns exec "$ns_b" iperf3 -s -1 >/dev/null 2>&1 &
  pids+=($!)
  local server=$!
  sleep 0.3
  local json=$work/iperf.json pinger=
  if [ -n "$PING" ]; then
    drop_counters "$name_a" "$name_b" >"$work/drops.before"
    # Beside the flow, after its first second (the TCP ramp-up), for the rest of it.
    (sleep 1; ip netns exec "$ns_a" ping -i 0.01 -W 1 -c $(( (DURATION - 1) * 100 )) 10.200.0.2 >"$work/ping.txt" 2>&1) &
    pids+=($!)
    pinger=$!
  fi
  if ! ip netns exec "$ns_a" iperf3 -c 10.200.0.2 -t "$DURATION" -O 1 -P "$STREAMS" $reverse -J >"$json" 2>&1; then
    echo "throughput.sh: iperf3 failed for $kind_a <-> $kind_b $reverse:" >&2
    head -c 2000 "$json" >&2
    return 1
  fi
  wait "$server" 2>/dev/null || true
  if [ -n "$pinger" ]; then
    wait "$pinger" 2>/dev/null || true
    drop_counters "$name_a" "$name_b" >"$work/drops.after"
    ping_line=$(python3 "$work/ping.py" "$work/ping.txt" "$work/drops.before" "$work/drops.after")
  fi
  # Stop this pair's daemons (newest first) before the next pair takes the same names and ports.
  local i
  for ((i = ${#pids[@]} - 1; i >= first; i--)); do stop_pid "${pids[$i]}"; done
  pids=("${pids[@]:0:$first}")
  if [ -n "${VERBOSE:-}" ]; then
    grep -ho 'data path: .*' "$work/$name_a.log" "$work/$name_b.log" >&2 || true
  fi
  bps=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))' "$json")
}

# Counters of the places a packet can be dropped on its way, in both namespaces: the UDP socket
# buffers (RcvbufErrors: the daemon did not read fast enough) and the tunnel interface's RX (the
# daemon wrote a packet the kernel dropped) and TX (the TUN queue towards the daemon was full)
# drops. "name value" lines, for a before/after difference.
drop_counters() {
  local name_a=$1 name_b=$2 side ns dev
  for side in a b; do
    if [ $side = a ]; then ns=$ns_a; dev=$name_a; else ns=$ns_b; dev=$name_b; fi
    ip netns exec "$ns" awk -v side=$side '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) n[i] = $i; h = 1 }
      else for (i = 2; i <= NF; i++) if (n[i] ~ /RcvbufErrors|SndbufErrors/) print side "." n[i], $i }' /proc/net/snmp
    echo "$side.tun_rx_dropped $(ip netns exec "$ns" cat "/sys/class/net/$dev/statistics/rx_dropped")"
    echo "$side.tun_tx_dropped $(ip netns exec "$ns" cat "/sys/class/net/$dev/statistics/tx_dropped")"
  done
}
cat >"$work/ping.py" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
rtts = sorted(float(x) for x in re.findall(r"time=([\d.]+)", text))
m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
sent, got = (int(m[1]), int(m[2])) if m else (0, 0)
def q(p): return rtts[min(len(rtts) - 1, int(p * len(rtts)))] if rtts else float("nan")
before = dict(l.split() for l in open(sys.argv[2]))
after = dict(l.split() for l in open(sys.argv[3]))
drops = ",".join(f"{k}+{int(after[k]) - int(before[k])}" for k in after if after[k] != before[k])
print(f"{100 * (sent - got) / sent if sent else float('nan'):.1f} {q(0.5):.2f} {q(0.99):.2f} {drops or '-'}")
EOF

declare -A label=(
  [wg-wg]="wireguard-go <-> wireguard-go"
  [td-td]="tunneld <-> tunneld"
  [td-wg]="tunneld -> wireguard-go"
  [wg-td]="wireguard-go -> tunneld"
)
declare -A results=() pings=()
for round in $(seq "$ROUNDS"); do
  for pair in $PAIRS; do
    ping_line=
    # REVERSE: the same sender and receiver kinds, but the data flows from namespace b to a
    # (iperf3 -R), so the iperf3 client is on the receiving side.
    case $pair${REVERSE:+-R} in
      wg-wg) measure wg wg ;;
      td-td) measure td td ;;
      td-wg) measure td wg ;;
      wg-td) measure td wg -R ;;
      wg-wg-R) measure wg wg -R ;;
      td-td-R) measure td td -R ;;
      td-wg-R) measure wg td -R ;;
      wg-td-R) measure wg td ;;
      *) echo "throughput.sh: unknown pair $pair" >&2; exit 2 ;;
    esac
    results[$pair]="${results[$pair]:-} $bps"
    [ -n "$ping_line" ] && pings[$pair]="${pings[$pair]:-}${ping_line};"
    printf 'round %d %-32s %6.3f Gbit/s %s\n' "$round" "${label[$pair]}" "$(python3 -c "print($bps/1e9)")" \
      "${ping_line:+ping loss % / p50 ms / p99 ms / drops: $ping_line}" >&2
  done
done

echo
echo "iperf3 TCP, ${DURATION} s per run, -P $STREAMS${REVERSE:+, -R (data from namespace b to a)}, median of ${ROUNDS} round(s); $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$PAIRS" "$(declare -p results)" "$(declare -p pings)" <<'EOF'
import re, statistics, sys
pairs = sys.argv[1].split()
results = dict(re.findall(r'\[([\w-]+)\]="([^"]*)"', sys.argv[2]))
pings = dict(re.findall(r'\[([\w-]+)\]="([^"]*)"', sys.argv[3]))
label = {"wg-wg": "wireguard-go <-> wireguard-go", "td-td": "tunneld <-> tunneld",
         "td-wg": "tunneld -> wireguard-go", "wg-td": "wireguard-go -> tunneld"}
med = {p: statistics.median(int(x) for x in results[p].split()) for p in pairs}
ref = med.get("wg-wg")
print(f"| {'pair':<30} | {'Gbit/s (median)':>15} | {'runs, Gbit/s':<24} | {'vs wireguard-go':>15} |")
print(f"|{'-'*32}|{'-'*17}|{'-'*26}|{'-'*17}|")
for p in pairs:
    runs = " ".join(f"{int(x)/1e9:.2f}" for x in results[p].split())
    ratio = f"{med[p]/ref:.2f}" if ref else "-"
    print(f"| {label[p]:<30} | {med[p]/1e9:>15.3f} | {runs:<24} | {ratio:>15} |")
if pings:
    print()
    print("Ping every 10 ms beside the flow (per round: loss %, p50 ms, p99 ms, drop counters that moved;")
    print("a. = namespace a, b. = namespace b):")
    print()
    print("| pair | loss % | p50 ms | p99 ms | drops |")
    print("|---|---:|---:|---:|---|")
    for p in pairs:
        for run in filter(None, pings.get(p, "").split(";")):
            loss, p50, p99, drops = run.split(" ", 3)
            print(f"| {label[p]} | {loss} | {p50} | {p99} | {drops} |")
EOF
