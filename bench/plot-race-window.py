#!/usr/bin/env python3
"""Plots and tabulates the race-window sweep (bench/race-window.sh).

Usage: plot-race-window.py RESULTS.csv OUT.png > table.md

Reads one row per scenario (Tunnel.Bench race-window), averages over seeds, draws two panels
(packets sent under stale keys per clone; (key, nonce) pairs reused) against the notification
delay, one line per mode and packet rate, and prints the Markdown table for docs/BENCHMARKS.md.
"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MODES = ["Notifier", "HotPath", "Both"]
STYLE = {"Notifier": ("-", "o"), "HotPath": ("--", "s"), "Both": (":", "^")}
COLOURS = {100.0: "tab:blue", 1000.0: "tab:orange", 10000.0: "tab:red"}


def load(path):
    groups = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["mode"], float(row["rate_pps"]), float(row["delay_ms"]))
            groups[key].append(row)
    return groups


def mean(rows, column):
    return sum(float(r[column]) for r in rows) / len(rows)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    groups = load(sys.argv[1])
    rates = sorted({k[1] for k in groups})
    delays = sorted({k[2] for k in groups})
    modes = [m for m in MODES if any(k[0] == m for k in groups)]

    fig, (stale_ax, reuse_ax) = plt.subplots(1, 2, figsize=(13, 5.2))
    for mode in modes:
        line, marker = STYLE[mode]
        for rate in rates:
            xs = [d for d in delays if (mode, rate, d) in groups]
            stale = [mean(groups[(mode, rate, d)], "stale_per_clone") for d in xs]
            reused = [mean(groups[(mode, rate, d)], "reused_pairs") for d in xs]
            label = f"{mode}, {rate:,.0f} pkt/s"
            for ax, ys in ((stale_ax, stale), (reuse_ax, reused)):
                ax.plot(xs, ys, linestyle=line, marker=marker, color=COLOURS.get(rate, "black"),
                        label=label, markersize=5, linewidth=1.6)
    for ax, title, ylabel in (
        (stale_ax, "Packets sent under the snapshot's keys", "stale packets per clone (mean over seeds)"),
        (reuse_ax, "(key, nonce) pairs reused across clones", "reused pairs per fork (mean over seeds)"),
    ):
        # Both axes start at 0 (delay 0; no stale packet): linear up to 1, logarithmic above.
        ax.set_xscale("symlog", linthresh=1)
        ax.set_yscale("symlog", linthresh=1)
        ax.set_xlim(0, max(delays) * 1.3)
        ax.set_ylim(0, None)
        ax.set_xticks(delays)
        ax.set_xticklabels([f"{d:g}" for d in delays])
        ax.set_xlabel("notification delay after resume (ms)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = stale_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(modes), fontsize=9, frameon=False)
    clones = next(iter(groups.values()))[0]["clones"]
    seeds = len(next(iter(groups.values())))
    flat = [m for m in modes if m != "Notifier" and all(
        float(r["stale_packets"]) == 0 and float(r["reused_pairs"]) == 0
        for k, rows in groups.items() if k[0] == m for r in rows)]
    note = f" ({' and '.join(flat)}: 0 everywhere, drawn on the axis)" if flat else ""
    fig.suptitle(f"Fork race window: {clones} clones of one snapshot, {seeds} seeds per point{note}")
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    fig.savefig(sys.argv[2], dpi=110)

    # Table 1: stale packets per clone / reused pairs per fork, mean over seeds.
    def number(x):
        return f"{x:.1f}".rstrip("0").rstrip(".")

    print("Stale packets per clone / reused (key, nonce) pairs per fork, mean over seeds:")
    print()
    print("| Mode | Rate (pkt/s) | " + " | ".join(f"{d:g} ms" for d in delays) + " |")
    print("|---|---:|" + "---:|" * len(delays))
    for mode in modes:
        for rate in rates:
            cells = [f"{number(mean(groups[(mode, rate, d)], 'stale_per_clone'))} / "
                     f"{number(mean(groups[(mode, rate, d)], 'reused_pairs'))}"
                     if (mode, rate, d) in groups else "" for d in delays]
            print(f"| {mode} | {rate:,.0f} | " + " | ".join(cells) + " |")

    # Table 2: how long until a clone sends under new keys again (the availability side).
    print()
    print("Resume to the first packet under new keys (ms, fastest clone, mean over seeds and rates):")
    print()
    print("| Mode | " + " | ".join(f"{d:g} ms" for d in delays) + " |")
    print("|---|" + "---:|" * len(delays))
    for mode in modes:
        cells = []
        for d in delays:
            rows = [r for rate in rates for r in groups.get((mode, rate, d), []) if r["best_resume_to_new_key_ms"]]
            cells.append(number(mean(rows, "best_resume_to_new_key_ms")) if rows else "never")
        print(f"| {mode} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
