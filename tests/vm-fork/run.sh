#!/usr/bin/env bash
# A real VM fork, end to end: tunneld inside a QEMU guest (-device vmgenid), cloned from one
# snapshot into two VMs while traffic flows, once per fork-guard mode, and what each clone sent
# counted on the wire (tests/vm-fork/wire.py). Needs root, qemu-system-x86, busybox-static,
# tcpdump, wireguard-go and the guest kernel scripts/setup.sh unpacks; skips loudly without them.
#
#   bash tests/vm-fork/run.sh            all five runs, then "N passed, N failed"
#   TUNNEL_VMFORK_MODES="off both" ...   a subset (names as in the output lines)
#   TUNNEL_VMFORK_KEEP=1 ...             keep the work directory (consoles, captures) for a look
#   TUNNEL_VMFORK_TUNNELD=PATH ...       a tunneld already published with NativeAOT (see below)
#
# Per run: one network namespace per VM, each with a tap (fixed MAC: the clones keep the parent's
# ARP cache), a wireguard-go peer holding the same keys, and a tcpdump on the tap. The parent
# boots, traffic flows, QMP `stop` + `migrate "exec:cat > state"`; two clones start with
# `-incoming "exec:cat state"` in their own namespaces and are `cont`ed back to back.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${TUNNEL_VMFORK_CACHE:-/var/cache/tunnel-vmfork}
modes=${TUNNEL_VMFORK_MODES:-"off notifier hotpath both no-vmgenid"}

skip() {
  echo "!!! SKIPPED: the VM fork test: $* !!!" >&2
  echo "0 passed, 0 failed"
  exit 0
}
[ "$(id -u)" = "0" ] || skip "needs root (network namespaces, taps, /dev/mem in the guest)"
for tool in qemu-system-x86_64 tcpdump wireguard-go wg python3 cpio dotnet; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (run scripts/setup.sh)"
done
busybox=/bin/busybox
[ -x "$busybox" ] && { ldd "$busybox" 2>&1 || true; } | grep -q "not a dynamic" || skip "busybox-static is not installed"
kernel_dir=$(ls -d "$cache"/kernel/lib/modules/*-amd64 2>/dev/null | head -n 1)
[ -n "$kernel_dir" ] || skip "no guest kernel in $cache/kernel (run scripts/setup.sh)"
kver=$(basename "$kernel_dir")
vmlinuz="$cache/kernel/boot/vmlinuz-$kver"
[ -f "$vmlinuz" ] || skip "no $vmlinuz"
[ -f "$kernel_dir/modules.dep" ] || depmod -b "$cache/kernel" "$kver"

work=$(mktemp -d /tmp/tunnel-vmfork.XXXXXX)
tag="vf$$"
pids=()
namespaces=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  for ns in "${namespaces[@]}"; do ip netns delete "$ns" 2>/dev/null; done
  rm -f /var/run/wireguard/"$tag"*.sock
  if [ "${TUNNEL_VMFORK_KEEP:-0}" = "1" ]; then echo "vm-fork: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "vm-fork: $(date -u +%H:%M:%S) $*" >&2; }

# ---- the guest: tunneld (NativeAOT), the host's glibc/libsodium/libssl, busybox, modules ----
if [ -n "${TUNNEL_VMFORK_TUNNELD:-}" ]; then
  # A tunneld published beforehand (the same command as below), for quicker reruns.
  mkdir -p "$work/aot" && cp "$TUNNEL_VMFORK_TUNNELD" "$work/aot/tunneld"
elif log "publishing tunneld with NativeAOT" && ! dotnet publish "$repo/tools/Tunneld" -c Release -r linux-x64 -p:PublishAot=true \
    -p:InvariantGlobalization=true -o "$work/aot" -nologo -v q >"$work/publish.log" 2>&1; then
  tail -n 20 "$work/publish.log" >&2
  echo "vm-fork: NativeAOT publish failed"; echo "0 passed, 1 failed"; exit 1
fi
guest_key=$(wg genkey); peer_key=$(wg genkey)
guest_pub=$(wg pubkey <<<"$guest_key"); peer_pub=$(wg pubkey <<<"$peer_key")
echo "$peer_key" >"$work/peer.key"

root="$work/initramfs"
mkdir -p "$root"/{bin,lib/modules,lib64,lib/x86_64-linux-gnu,opt,etc/wireguard}
cp "$busybox" "$root/bin/busybox"
cp "$here/init" "$root/init"; chmod 755 "$root/init"
cp "$work/aot/tunneld" "$root/opt/tunneld"
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
for lib in libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libgcc_s.so.1 libz.so.1 \
    libsodium.so.23 libssl.so.3 libcrypto.so.3; do
  cp -L "/lib/x86_64-linux-gnu/$lib" "$root/lib/x86_64-linux-gnu/" || { echo "vm-fork: no host $lib"; exit 1; }
done
# Dependency order, as modprobe computes it on the unpacked tree (depmod ran in scripts/setup.sh).
for m in virtio_pci virtio_net tun; do
  modprobe -d "$cache/kernel" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  cp "$ko" "$root/lib/modules/"; basename "$ko"
done >"$root/lib/modules/order"
cat >"$root/etc/wireguard/wg0.conf" <<EOF
[Interface]
PrivateKey = $guest_key
ListenPort = 51820
Address = 10.78.0.2/24

[Peer]
PublicKey = $peer_pub
AllowedIPs = 10.78.0.1/32
Endpoint = 10.77.0.1:51820
EOF
chmod 600 "$root/etc/wireguard/wg0.conf"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"
log "guest: kernel $kver, initramfs $(($(stat -c %s "$work/initramfs.cpio") / 1048576)) MiB"

# ---- one namespace: tap (fixed MAC), wireguard-go peer, capture ----
# net_up NAME: namespace $tag-NAME with tap0 10.77.0.1, peer wg 10.78.0.1, capture $work/NAME.pcap
net_up() {
  # Interface names have 15 bytes: the run's first three letters and the VM's letter.
  local ns="$tag-$1" wg="$tag${1:0:3}${1: -1}"
  ip netns add "$ns" || return 1
  namespaces+=("$ns")
  ip -n "$ns" link set lo up
  ip -n "$ns" tuntap add dev tap0 mode tap
  ip -n "$ns" link set tap0 address 02:77:00:00:00:01
  ip -n "$ns" addr add 10.77.0.1/24 dev tap0
  ip -n "$ns" link set tap0 up
  ip netns exec "$ns" env WG_PROCESS_FOREGROUND=1 wireguard-go "$wg" >"$work/$1.wg.log" 2>&1 &
  pids+=($!)
  local i=0
  until [ -S "/var/run/wireguard/$wg.sock" ]; do
    i=$((i + 1)); [ $i -gt 100 ] && { log "wireguard-go $wg never listened"; return 1; }
    sleep 0.1
  done
  ip netns exec "$ns" wg set "$wg" private-key "$work/peer.key" listen-port 51820 \
    peer "$guest_pub" allowed-ips 10.78.0.2/32 endpoint 10.77.0.2:51820 || return 1
  ip -n "$ns" addr add 10.78.0.1/24 dev "$wg"
  ip -n "$ns" link set "$wg" up
  ip netns exec "$ns" tcpdump -i tap0 -U -s 192 -w "$work/$1.pcap" udp port 51820 2>"$work/$1.tcpdump.log" &
  pids+=($!)
  i=0
  until grep -q "listening on" "$work/$1.tcpdump.log" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 100 ] && { log "tcpdump on $ns never started"; return 1; }
    sleep 0.1
  done
}

# qemu_start NAME VMGENID(yes|no) ARGS PINGS [EXTRA QEMU ARGS...]: a VM in namespace $tag-NAME
# (tunneld ARGS, PINGS of the guest's own, 0 = endless); its pid in $qemu_pid
qemu_start() {
  local name=$1 vmgenid=$2 args=$3 pings=$4; shift 4
  local device=()
  [ "$vmgenid" = "yes" ] && device=(-device vmgenid,guid=auto)
  # The same command line for parent and clones (a migration target must match its source);
  # guid=auto gives each QEMU process, so each clone, a new generation ID.
  ip netns exec "$tag-$name" qemu-system-x86_64 -nodefaults -no-user-config -machine pc -accel tcg \
    -cpu max -m 256 -smp 1 -display none -monitor none -no-reboot \
    -serial "file:$work/$name.console" -qmp "unix:$work/$name.qmp,server=on,wait=off" \
    -kernel "$vmlinuz" -initrd "$work/initramfs.cpio" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4 tunnel.args=$args tunnel.pings=$pings" \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
    -device virtio-net-pci,netdev=n0,mac=52:54:00:77:00:02 \
    "${device[@]}" "$@" >"$work/$name.qemu.log" 2>&1 &
  qemu_pid=$!
  pids+=("$qemu_pid")
}

# ping_from NAME: the host side's traffic through the tunnel, from namespace NAME's peer
ping_from() {
  ip netns exec "$tag-$1" ping -q -i 0.01 -W 1 10.78.0.2 >/dev/null 2>&1 &
  pids+=($!)
}

passed=0; failed=0
check() { # check CONDITION-TEXT RESULT
  if [ "$2" = "0" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "vm-fork: FAILED: $1"; fi
}

# run_mode NAME VMGENID TUNNELD-ARGS [GUEST-PINGS (default 0: endless)]
run_mode() {
  local name=$1 vmgenid=$2 args=$3 pings=${4:-0} run="$1"
  log "$name: parent boots (tunneld up wg0 ${args//,/ })"
  net_up "$run-p" || return 1
  qemu_start "$run-p" "$vmgenid" "$args" "$pings"
  local parent=$qemu_pid
  if ! python3 "$here/wire.py" wait "$work/$run-p.pcap" 10.77.0.2 1 240 "$parent"; then
    log "$name: no traffic from the parent"; tail -n 30 "$work/$run-p.console" >&2; return 1
  fi
  ping_from "$run-p"
  # Steady traffic both ways for a moment, then the snapshot.
  python3 "$here/wire.py" wait "$work/$run-p.pcap" 10.77.0.2 300 120 "$parent" || { log "$name: traffic too slow"; return 1; }
  log "$name: snapshot (stop, migrate to a file)"
  python3 "$here/qmp.py" snapshot "$work/$run-p.qmp" "$work/state" 180 || return 1
  kill "$parent" 2>/dev/null; wait "$parent" 2>/dev/null
  log "$name: state $(($(stat -c %s "$work/state") / 1048576)) MiB; two clones load it"
  net_up "$run-a" || return 1
  net_up "$run-b" || return 1
  qemu_start "$run-a" "$vmgenid" "$args" "$pings" -S -incoming "exec:cat $work/state"
  local clone_a=$qemu_pid
  qemu_start "$run-b" "$vmgenid" "$args" "$pings" -S -incoming "exec:cat $work/state"
  local clone_b=$qemu_pid
  python3 "$here/qmp.py" wait-paused "$work/$run-a.qmp" "$work/$run-b.qmp" 180 || return 1
  local conts
  conts=$(python3 "$here/qmp.py" cont "$work/$run-a.qmp" "$work/$run-b.qmp") || return 1
  log "$name: clones running"
  # The clones' peers are fresh wireguard-go processes with no session, which would start a
  # handshake at once. A real peer keeps its session and starts none, so traffic from the peer
  # side (and with it any handshake the peer starts) begins only after a while: until then, what
  # the clones send is up to their own fork handling.
  sleep "${TUNNEL_VMFORK_PEER_DELAY:-2}"
  ping_from "$run-a"; ping_from "$run-b"
  sleep "${TUNNEL_VMFORK_CLONE_SECONDS:-6}"
  kill "$clone_a" "$clone_b" 2>/dev/null; wait "$clone_a" "$clone_b" 2>/dev/null
  sleep 0.5 # tcpdump writes with -U; let the last frames land
  # shellcheck disable=SC2086 # two numbers
  python3 "$here/wire.py" detect "$name" "$work/$run-p.pcap" "$work/$run-a.pcap" "$work/$run-b.pcap" \
    $conts 10.77.0.2 2>"$work/$run.detect.json" | tee "$work/$run.line"
  # What tunneld in clone a logged about the fork (colour codes stripped).
  grep -h "vm fork\|VM fork\|crng reseeded due" "$work/$run-a.console" | sed -e 's/\x1b\[[0-9;]*m//g' -e "s/^/vm-fork: $name clone a: /" >&2
  rm -f "$work/state"
}

# check_mode NAME: the expectations on the line run_mode printed
check_mode() {
  local name=$1 line stale reused same rekey
  line=$(cat "$work/$name.line" 2>/dev/null)
  if [ -z "$line" ]; then check "$name: the run did not complete" 1; return; fi
  stale=$(sed -nE 's/.* stale=([0-9]+).*/\1/p' <<<"$line")
  reused=$(sed -nE 's/.* reused=([0-9]+).*/\1/p' <<<"$line")
  same=$(sed -nE 's/.* same_ephemeral=([0-9]+).*/\1/p' <<<"$line")
  rekey=$(sed -nE 's/.* rekey_ms=(.*)$/\1/p' <<<"$line")
  case "$name" in
    off) check "off: clones reuse (key, nonce) pairs (the negative control)" "$([ "$reused" -gt 0 ]; echo $?)" ;;
    notifier) check "notifier: both clones rekey" "$([[ "$rekey" != *-* ]]; echo $?)" ;;
    hotpath|both)
      check "$name: no (key, nonce) reuse" "$([ "$reused" = 0 ]; echo $?)"
      check "$name: no identical handshake ephemerals" "$([ "$same" = 0 ]; echo $?)"
      check "$name: both clones rekey" "$([[ "$rekey" != *-* ]]; echo $?)" ;;
    no-vmgenid) check "no-vmgenid: the clones' randomness is identical (same ephemerals)" "$([ "$same" -gt 0 ]; echo $?)" ;;
  esac
  : "$stale"
}

start=$(date +%s)
for mode in $modes; do
  case "$mode" in
    off) run_mode off yes "--fork-mode,off" ;;
    notifier) run_mode notifier yes "--fork-mode,notifier,--fork-source,kmsg" ;;
    hotpath) run_mode hotpath yes "--fork-mode,hotpath,--fork-source,vmgenid" ;;
    both) run_mode both yes "--fork-mode,both,--fork-source,vmgenid" ;;
    # No vmgenid device: the guest never learns it was cloned (kmsg stays silent), so both clones
    # go on from one copied generator and answer their peer's initiation with one ephemeral.
    # The guest pings only at the start: a packet it sends right after an authenticated receive
    # (here: the peer's initiation) draws the new-handshake timer's jitter from that generator,
    # and when the TUN thread's draw fell before the response's in one clone only, the clones'
    # streams were 4 bytes apart and their ephemerals differed (same_ephemeral=0 in about a
    # third of runs, on any commit). With the guest only answering, its first packet after the
    # initiation is the answer to a ping that follows the handshake, so the response draws first
    # in both clones: what they send is decided by their state, not by thread timing.
    no-vmgenid) run_mode no-vmgenid no "--fork-mode,notifier,--fork-source,kmsg" 50 ;;
    *) echo "vm-fork: unknown mode $mode"; failed=$((failed + 1)); continue ;;
  esac
  check_mode "$mode"
  # Each run's processes and namespaces go before the next (same addresses, same tap names).
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  pids=()
  for ns in "${namespaces[@]}"; do ip netns delete "$ns" 2>/dev/null; done
  namespaces=()
done
log "qemu $(qemu-system-x86_64 --version | head -n 1 | awk '{print $4}'), guest kernel $kver, $(($(date +%s) - start)) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
