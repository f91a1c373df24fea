#!/usr/bin/env bash
# A handshake flood against a responder while a legitimate peer pings through it (issue 13).
# For each responder in RESPONDERS (tunneld, then wireguard-go, in one run):
#   - peer P (wireguard-go, established before the flood) pings the responder's tunnel address
#     every 20 ms (ping -i 0.02) for the flood's middle part;
#   - a flooder (tools/HandshakeFlood: initiations with a valid mac1 made from the responder's
#     public key, random content, unpaced within each millisecond, from many source ports) sends
#     RATE a second for DURATION seconds;
#   - a NEW peer Q (wireguard-go) comes up 3 s into the flood and pings once every 200 ms: the
#     time to its first reply is its handshake through the cookie round trip, and the cookie
#     replies that reached Q are counted on its link (tcpdump).
# Four namespaces: the responder's, with a veth pair to each of P's, Q's and the flooder's. The
# flooder, the responder, both peers and ping share this machine's CPUs (the flooder at nice
# FLOOD_NICE), so this measures what the responder does with the CPU it gets as much as anything.
#
# Usage (root): bench/flood.sh
#   RATE=50000 DURATION=20 FLOOD_NICE=10 ROUNDS=1 bench/flood.sh   # the defaults
#   RESPONDERS="td"  TUNNELD=/path/to/tunneld  FLOOD=/path/to/handshake-flood
#   FLOOD_SOURCES=64                  # flood from 64 addresses (10.98.3.2 up), not one: each has
#                                     # its own rate-limiter bucket at the responder
#   KEEP=/some/folder                 # keep the ping, flood and daemon logs there
#   RESPONDERS="before td wg" BEFORE=/path/to/other/tunneld   # another build too (e.g. main's)
# Needs wireguard-go, wg, ping, tcpdump, python3. Everything it creates (namespaces, veth pairs,
# daemons, a temporary folder) goes when it exits, pass or fail.
set -euo pipefail

RATE=${RATE:-50000}
DURATION=${DURATION:-20}
FLOOD_NICE=${FLOOD_NICE:-10}
RESPONDERS=${RESPONDERS:-"td wg"}
ROUNDS=${ROUNDS:-1}
FLOOD_SOURCES=${FLOOD_SOURCES:-1}
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" != 0 ]; then
  echo "flood.sh: needs root (network namespaces, TUN devices)" >&2
  exit 1
fi
for tool in wireguard-go wg ping tcpdump python3 ip; do
  command -v "$tool" >/dev/null || { echo "flood.sh: $tool is not installed" >&2; exit 1; }
done
artifacts="${TUNNEL_ARTIFACTS:-$repo/artifacts}"
if [ -z "${TUNNELD:-}" ]; then
  echo "building tunneld (Release)..." >&2
  dotnet build "$repo/tools/Tunneld" -c Release -nologo -v q >&2
  TUNNELD="$artifacts/bin/Tunneld/release/tunneld"
fi
if [ -z "${FLOOD:-}" ]; then
  echo "building handshake-flood (Release)..." >&2
  dotnet build "$repo/tools/HandshakeFlood" -c Release -nologo -v q >&2
  FLOOD="$artifacts/bin/HandshakeFlood/release/handshake-flood"
fi
[ -x "$TUNNELD" ] || { echo "flood.sh: no tunneld at $TUNNELD" >&2; exit 1; }
[ "${RESPONDERS/before/}" = "$RESPONDERS" ] || [ -x "${BEFORE:-}" ] || { echo "flood.sh: no tunneld at BEFORE=${BEFORE:-}" >&2; exit 1; }
[ -x "$FLOOD" ] || { echo "flood.sh: no handshake-flood at $FLOOD" >&2; exit 1; }

tag=$$
ns_r="fl-r-$tag"; ns_p="fl-p-$tag"; ns_q="fl-q-$tag"; ns_f="fl-f-$tag"
work=$(mktemp -d)
pids=()
ifaces=()

# shellcheck source=lib.sh
. "$repo/bench/lib.sh" # stop_pid

cleanup() {
  local rc=$?
  set +e
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  for ns in "$ns_r" "$ns_p" "$ns_q" "$ns_f"; do ip netns del "$ns" 2>/dev/null; done
  for name in "${ifaces[@]}"; do rm -f "/var/run/wireguard/$name.sock"; done
  [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$work"/*.txt "$work"/*.log "$KEEP"/ 2>/dev/null
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for ns in "$ns_r" "$ns_p" "$ns_q" "$ns_f"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
# Link n joins the responder (10.98.n.1) and one other namespace (10.98.n.2).
link() {
  local n=$1 ns=$2
  local a="flr$n-$tag" b="flx$n-$tag"
  ip link add "$a" type veth peer name "$b"
  ip link set "$a" netns "$ns_r"
  ip link set "$b" netns "$ns"
  ip -n "$ns_r" addr add "10.98.$n.1/24" dev "$a"
  ip -n "$ns" addr add "10.98.$n.2/24" dev "$b"
  ip -n "$ns_r" link set "$a" up
  ip -n "$ns" link set "$b" up
}
link 1 "$ns_p"
link 2 "$ns_q"
link 3 "$ns_f"
[ "$FLOOD_SOURCES" -ge 1 ] && [ "$FLOOD_SOURCES" -le 200 ] || { echo "flood.sh: FLOOD_SOURCES is 1 to 200" >&2; exit 2; }
for i in $(seq 2 "$FLOOD_SOURCES"); do ip -n "$ns_f" addr add "10.98.3.$((i + 1))/24" dev "flx3-$tag"; done

umask 077
for k in r p q; do wg genkey >"$work/$k.key"; wg pubkey <"$work/$k.key" >"$work/$k.pub"; done

# The responder: $1 = td|wg, $2 = interface name; tunnel address 10.201.0.1, UDP 51820, peers P
# (10.201.0.2) and Q (10.201.0.3) without endpoints (it learns them from their handshakes).
start_responder() {
  local kind=$1 name=$2
  ifaces+=("$name")
  if [ "$kind" = wg ]; then
    ip netns exec "$ns_r" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$name" >"$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do [ -S "/var/run/wireguard/$name.sock" ] && break; sleep 0.1; done
    ip netns exec "$ns_r" wg set "$name" listen-port 51820 private-key "$work/r.key" \
      peer "$(cat "$work/p.pub")" allowed-ips 10.201.0.2/32 \
      peer "$(cat "$work/q.pub")" allowed-ips 10.201.0.3/32
    ip -n "$ns_r" addr add 10.201.0.1/24 dev "$name"
    ip -n "$ns_r" link set "$name" up
  else
    cat >"$work/$name.conf" <<EOF
[Interface]
PrivateKey = $(cat "$work/r.key")
ListenPort = 51820
Address = 10.201.0.1/24

[Peer]
PublicKey = $(cat "$work/p.pub")
AllowedIPs = 10.201.0.2/32

[Peer]
PublicKey = $(cat "$work/q.pub")
AllowedIPs = 10.201.0.3/32
EOF
    chmod 600 "$work/$name.conf"
    local binary=$TUNNELD
    [ "$kind" = before ] && binary=$BEFORE
    ip netns exec "$ns_r" env Logging__LogLevel__Default=Debug "$binary" up "$work/$name.conf" --interface "$name" >"$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -S "/var/run/wireguard/$name.sock" ] && break; sleep 0.1; done
  fi
}

# A legitimate peer (wireguard-go): $1 = namespace, $2 = interface, $3 = key name, $4 = address,
# $5 = link number (the responder is 10.98.$5.1).
start_peer() {
  local ns=$1 name=$2 key=$3 addr=$4 n=$5
  ifaces+=("$name")
  ip netns exec "$ns" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$name" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do [ -S "/var/run/wireguard/$name.sock" ] && break; sleep 0.1; done
  ip netns exec "$ns" wg set "$name" private-key "$work/$key.key" \
    peer "$(cat "$work/r.pub")" allowed-ips 10.201.0.1/32 endpoint "10.98.$n.1:51820"
  ip -n "$ns" addr add "$addr/32" dev "$name"
  ip -n "$ns" link set "$name" up
  ip -n "$ns" route add 10.201.0.1/32 dev "$name"
}

declare -A label=([td]="tunneld" [before]="tunneld (before)" [wg]="wireguard-go $(wireguard-go --version 2>/dev/null | grep -o 'v[0-9.]*' | head -1)")
summary=$work/summary
: >"$summary"

# One responder: set up, flood, measure, tear down.
run() {
  local kind=$1 first=${#pids[@]}
  local resp="flr$tag" peer_p="flp$tag" peer_q="flq$tag"
  start_responder "$kind" "$resp"
  start_peer "$ns_p" "$peer_p" p 10.201.0.2 1
  local up=0
  for _ in $(seq 20); do
    if ip netns exec "$ns_p" ping -c1 -W1 10.201.0.1 >/dev/null 2>&1; then up=1; break; fi
  done
  [ "$up" = 1 ] || { echo "flood.sh: $kind: P cannot ping the responder; log:" >&2; tail -n 20 "$work/$resp.log" >&2; return 1; }

  ip netns exec "$ns_q" tcpdump -i "flx2-$tag" -n -U -w "$work/q-$kind.pcap" \
    'udp and src host 10.98.2.1 and udp[8:4] = 0x03000000' >/dev/null 2>&1 &
  pids+=($!)
  local tcpdump_pid=$!
  sleep 0.5

  ip netns exec "$ns_f" nice -n "$FLOOD_NICE" "$FLOOD" --target 10.98.3.1:51820 --public-key "$(cat "$work/r.pub")" \
    --rate "$RATE" --seconds "$DURATION" --ports 256 --source-base 10.98.3.2 --source-count "$FLOOD_SOURCES" >"$work/flood-$kind.txt" 2>&1 &
  pids+=($!)
  local flood_pid=$!
  sleep 1
  # P pings for the flood's middle part (it starts 1 s in and ends 1 s before the flood stops).
  local count=$(( (DURATION - 2) * 50 ))
  ip netns exec "$ns_p" ping -i 0.02 -c "$count" -W 1 10.201.0.1 >"$work/ping-$kind.txt" 2>&1 &
  pids+=($!)
  local ping_pid=$!
  sleep 2
  # Q is new: its first handshake starts 3 s into the flood.
  local q_start
  q_start=$(date +%s.%N)
  start_peer "$ns_q" "$peer_q" q 10.201.0.3 2
  ip netns exec "$ns_q" ping -D -i 0.2 -w $((DURATION - 4)) -c 1 10.201.0.1 >"$work/q-ping-$kind.txt" 2>&1 || true
  wait "$ping_pid" 2>/dev/null || true
  wait "$flood_pid" 2>/dev/null || true
  ip netns exec "$ns_r" wg show "$resp" latest-handshakes >"$work/hs-$kind.txt" 2>&1 || true
  stop_pid "$tcpdump_pid"
  local cookies
  cookies=$(tcpdump -r "$work/q-$kind.pcap" -n 2>/dev/null | wc -l)

  local i
  for ((i = ${#pids[@]} - 1; i >= first; i--)); do stop_pid "${pids[$i]}"; done
  pids=("${pids[@]:0:$first}")
  grep -ho 'handshakes: .*' "$work/$resp.log" >&2 || true

  python3 - "$kind" "${label[$kind]}" "$work/ping-$kind.txt" "$count" "$work/q-ping-$kind.txt" "$q_start" \
    "$cookies" "$work/hs-$kind.txt" "$(cat "$work/q.pub")" "$(cat "$work/flood-$kind.txt")" >>"$summary" <<'EOF'
import re, sys
kind, label, ping, count, qping, qstart, cookies, hs, qpub, flood = sys.argv[1:]
times = sorted(float(t) for t in re.findall(r'time=([\d.]+) ms', open(ping).read()))
count = int(count)
loss = 100.0 * (count - len(times)) / count
def pct(p):
    return times[min(len(times) - 1, int(p / 100 * len(times)))] if times else float('nan')
first = re.search(r'^\[([\d.]+)\].*time=', open(qping).read(), re.M)
q = f"{float(first.group(1)) - float(qstart):.1f} s" if first else "no reply"
done = any(l.split()[0] == qpub and l.split()[1] != '0' for l in open(hs) if len(l.split()) == 2)
rate = re.search(r'\(([\d]+)/s\)', flood)
print(f"| {label} | {rate.group(1) if rate else '?'}/s | {loss:.1f} % ({count - len(times)}/{count}) | "
      f"{pct(50):.2f} ms | {pct(99):.2f} ms | {times[-1] if times else float('nan'):.1f} ms | "
      f"{q} ({cookies} cookie repl{'y' if cookies == '1' else 'ies'}; handshake {'done' if done else 'NOT done'}) |")
EOF
  echo "flood.sh: ${label[$kind]}: $(cat "$work/flood-$kind.txt")" >&2
}

# The responders take turns, round after round: a load spike from elsewhere then hits each.
for round in $(seq "$ROUNDS"); do
  for kind in $RESPONDERS; do run "$kind"; done
done

echo
echo "handshake flood at ${RATE}/s for ${DURATION} s from ${FLOOD_SOURCES} address(es) (flooder at nice ${FLOOD_NICE}); P pings every 20 ms; $(nproc) CPUs, $(uname -r)"
echo "| responder | flood sent | ping loss | p50 RTT | p99 RTT | max RTT | new peer Q: first reply after |"
echo "|---|---|---|---|---|---|---|"
cat "$summary"
