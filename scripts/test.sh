#!/usr/bin/env bash
# Runs every test project of Tunnel.sln and ends with one line "N passed, N failed".
# Usage: scripts/test.sh [extra dotnet test args, e.g. --filter "Category!=Long"]
# Tests that need root (network namespaces, TUN) skip themselves loudly when not root.
# As root it also runs the VM fork test (tests/vm-fork/run.sh, QEMU guests); TUNNEL_SKIP_VMFORK=1 skips it.
set -uo pipefail
cd "$(dirname "$0")/.."
filter=("--filter" "Category!=Long")
if [ "${TUNNEL_LONG_TESTS:-0}" = "1" ]; then filter=(); fi
if [ "$(id -u)" != "0" ]; then
  echo "!!! NOT ROOT: tests that need network namespaces, TUN devices or wireguard-go will be SKIPPED !!!" >&2
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
dotnet build Tunnel.sln -c Release -nologo -v q 2>&1 | tail -n 20
build_rc=${PIPESTATUS[0]}
if [ "$build_rc" != "0" ]; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi
dotnet test Tunnel.sln -c Release --no-build -nologo "${filter[@]}" "$@" 2>&1 | tee "$log"
test_rc=${PIPESTATUS[0]}
passed=0; failed=0; skipped=0
while read -r line; do
  f=$(sed -nE 's/.*Failed: *([0-9]+),.*/\1/p' <<<"$line")
  p=$(sed -nE 's/.*Passed: *([0-9]+),.*/\1/p' <<<"$line")
  s=$(sed -nE 's/.*Skipped: *([0-9]+),.*/\1/p' <<<"$line")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
done < <(grep -oE '(Passed|Failed)! +- Failed: *[0-9]+, Passed: *[0-9]+, Skipped: *[0-9]+,' "$log")
if [ "$test_rc" != "0" ] && [ "$failed" = "0" ]; then failed=1; fi
# The VM fork test (tests/vm-fork/run.sh): tunneld in QEMU guests, a few minutes under TCG. It
# skips itself loudly without root or QEMU; TUNNEL_SKIP_VMFORK=1 leaves it out.
if [ "${TUNNEL_SKIP_VMFORK:-0}" = "1" ]; then
  echo "!!! TUNNEL_SKIP_VMFORK=1: the VM fork test (tests/vm-fork/run.sh) is SKIPPED !!!" >&2
else
  vm_log=$(mktemp)
  timeout 1200 bash tests/vm-fork/run.sh 2>&1 | tee "$vm_log"
  vm_rc=${PIPESTATUS[0]}
  vm_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$vm_log" | tail -n 1)
  rm -f "$vm_log"
  vm_passed=$(sed -nE 's/^([0-9]+) passed.*/\1/p' <<<"$vm_line")
  vm_failed=$(sed -nE 's/.* ([0-9]+) failed$/\1/p' <<<"$vm_line")
  if [ -z "$vm_line" ] || { [ "$vm_rc" != "0" ] && [ "${vm_failed:-0}" = "0" ]; }; then vm_failed=$(( ${vm_failed:-0} + 1 )); fi
  passed=$((passed + ${vm_passed:-0})); failed=$((failed + ${vm_failed:-0}))
fi
if [ "$skipped" != "0" ]; then echo "($skipped skipped: see SKIP lines above)"; fi
echo "$passed passed, $failed failed"
[ "$failed" = "0" ]
