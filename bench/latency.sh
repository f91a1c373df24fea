#!/usr/bin/env bash
# Ping p50/p99 and loss beside a saturating TCP flow, tunneld pair against wireguard-go pair (and
# the mixed pairs), with the drop counters that say which queue lost the pings: bench/throughput.sh
# with PING=1 (see there for every setting).
#
# Usage (root): bench/latency.sh                          # 3 rounds of 10 s per pair
#   DURATION=10 ROUNDS=1 PAIRS="td-td wg-wg td-wg" bench/latency.sh
exec env PING=1 "$(dirname "$0")/throughput.sh" "$@"
