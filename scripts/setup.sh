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
