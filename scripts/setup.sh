#!/usr/bin/env bash
# Installs the system packages Tunnel needs (Debian 12). Run as root, or it uses sudo when present.
set -euo pipefail
pkgs=(libsodium23 iproute2 python3 wireguard-tools wireguard-go iperf3 iputils-ping socat nftables procps gdb)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = "0" ] || sudo="sudo"
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v dotnet >/dev/null || { echo "the .NET 10 SDK is required (dotnet not on PATH)" >&2; exit 1; }

# The VM fork test (tests/vm-fork/run.sh): QEMU, a static busybox for the guest, kmod (depmod and
# modprobe --show-depends on the guest's modules), tcpdump for the captures, cpio for the
# initramfs, and Debian's generic 6.1 kernel (CONFIG_VMGENID=y), unpacked, never installed.
vm_pkgs=(qemu-system-x86 busybox-static kmod tcpdump cpio)
vm_missing=()
for p in "${vm_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || vm_missing+=("$p"); done
sudo=""; [ "$(id -u)" = "0" ] || sudo="sudo"
if [ ${#vm_missing[@]} -gt 0 ]; then
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${vm_missing[@]}"
fi
vm_cache=${TUNNEL_VMFORK_CACHE:-/var/cache/tunnel-vmfork}
if ! ls -d "$vm_cache"/kernel/lib/modules/*-amd64 >/dev/null 2>&1; then
  # The version linux-image-amd64 points at: a 6.1 with vmgenid built in and virtio as modules.
  kpkg=$(apt-cache depends linux-image-amd64 | sed -nE 's/.*Depends: (linux-image-6\.1\.0-[0-9]+-amd64)$/\1/p' | head -n 1)
  [ -n "$kpkg" ] || { echo "no linux-image-6.1.0-*-amd64 package found" >&2; exit 1; }
  $sudo mkdir -p "$vm_cache/kernel"
  (cd /tmp && $sudo apt-get download -q "$kpkg" && $sudo dpkg-deb -x "$kpkg"_*.deb "$vm_cache/kernel" && $sudo rm -f "$kpkg"_*.deb)
  kver=${kpkg#linux-image-}
  $sudo depmod -b "$vm_cache/kernel" "$kver"
fi
