#!/usr/bin/env python3
"""tunneld at scale (issue 12): N peers with a /32 each (every tenth also an IPv6 /128).

Run through bench/scale.sh (root). Per peer count, in a fresh network namespace of its own:
  ready     spawn of `tunneld up FILE` to the READY=1 datagram on NOTIFY_SOCKET
  routes    every allowed IP's route on the interface (ip -j route), checked right after READY=1
            (tunneld installs them before it notifies); the time is spawn to that check
  route install  tunneld's own figure for adding them (its log line "N route(s) added ... in M ms")
  rss       VmRSS after READY=1 and the idle window
  idle cpu  utime+stime of the daemon over --idle seconds (/proc/PID/stat), % of one core
  show dump `wg show IF dump` (real wg over the UAPI socket), and that it lists every peer
  rss after dump  VmRSS right after that dump (what the get's snapshot and reply left behind)
  setconf   `wg setconf IF FILE` with the same N peers (the file less wg-quick's keys)
  stop      SIGTERM to exit, and that no route of the peers is left in the namespace
Clearing every session and re-handshaking after a fork need live sessions with N responders:
they are measured in-process (bench/Tunnel.Bench, issue 12's timer/rekey work), not here.
A step that fails or times out prints 'failed (...)' and the rest of that row is skipped where
it depends on it; the namespace and the daemon are removed, pass or fail.
"""
import argparse, base64, json, os, re, signal, socket, subprocess, sys, tempfile, time, uuid

ADDRESS = "10.255.0.1/24"


def peer_addresses(i):
    v4 = f"10.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
    v6 = f"fd00:64::{i >> 16:x}:{i & 0xffff:x}" if i % 10 == 0 else None
    return v4, v6


def write_configs(workdir, name, peers, private_key):
    """The tunneld file (with Address) and the wg setconf file (without), same peers."""
    lines = []
    for i in range(peers):
        v4, v6 = peer_addresses(i)
        allowed = f"{v4}/32" + (f", {v6}/128" if v6 else "")
        lines.append(f"\n[Peer]\nPublicKey = {base64.b64encode(os.urandom(32)).decode()}\nAllowedIPs = {allowed}\n")
    body = "".join(lines)
    up = os.path.join(workdir, name + ".conf")
    setconf = os.path.join(workdir, name + ".wg.conf")
    with open(up, "w") as f:
        f.write(f"[Interface]\nPrivateKey = {private_key}\nAddress = {ADDRESS}\n{body}")
    with open(setconf, "w") as f:
        f.write(f"[Interface]\nPrivateKey = {private_key}\n{body}")
    os.chmod(up, 0o600)
    os.chmod(setconf, 0o600)
    return up, setconf


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def route_destinations(ns, *selector):
    found = set()
    for family in ("-4", "-6"):
        out = subprocess.run(["ip", "-n", ns, "-j", family, "route", "show", *selector],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            found.update(r["dst"] for r in json.loads(out.stdout))
    return found


def expected_destinations(peers):
    """As ip prints them: host routes without /32 or /128; IPv6 in its compressed form."""
    import ipaddress
    want = set()
    for i in range(peers):
        v4, v6 = peer_addresses(i)
        want.add(v4)
        if v6:
            want.add(str(ipaddress.IPv6Address(v6)))
    return want


def timed(command, timeout):
    start = time.monotonic()
    try:
        r = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"failed (timeout {timeout} s)", ""
    if r.returncode == 0:
        return time.monotonic() - start, None, r.stdout
    # e.g. SIGPIPE: the daemon closed the UAPI connection before the whole request was written
    status = f"killed by {signal.Signals(-r.returncode).name}" if r.returncode < 0 else f"exit {r.returncode}"
    return None, f"failed ({status}: {r.stderr.strip()[-120:] or 'no message'})", r.stdout


def one(binary, peers, args, workdir):
    row = {"peers": f"{peers:,}"}
    ns = f"tsc-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    name = "sc" + uuid.uuid4().hex[:8]
    key = subprocess.run([binary, "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    up, setconf = write_configs(workdir, name, peers, key)
    want = expected_destinations(peers)
    notify_path = os.path.join(workdir, name + ".notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    daemon = None
    try:
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        start = time.monotonic()
        log = open(os.path.join(workdir, name + ".log"), "w")  # the console logger writes to stdout
        daemon = subprocess.Popen(["ip", "netns", "exec", ns, binary, "up", up, "--interface", name], env=env,
                                  stdout=log, stderr=log)
        log.close()  # the daemon has its own descriptor
        deadline = start + args.timeout
        ready = None
        while ready is None:
            left = deadline - time.monotonic()
            if left <= 0 or daemon.poll() is not None:
                break
            notify.settimeout(min(left, 1.0))
            try:
                if notify.recv(64) == b"READY=1":
                    ready = time.monotonic() - start
            except socket.timeout:
                pass
        if ready is None:
            with open(os.path.join(workdir, name + ".log")) as f:
                last = (f.read().strip().splitlines() or ["no output"])[-1]
            why = f"exit {daemon.returncode}: {last[-100:]}" if daemon.poll() is not None else f"timeout {args.timeout} s"
            row["ready"] = f"failed ({why})"
            return row
        row["ready"] = f"{ready:.2f} s"
        with open(os.path.join(workdir, name + ".log")) as f:
            added = re.search(r"(\d+) route\(s\) added to \S+ in (\d+) ms", f.read())
        row["route install"] = f"{added.group(2)} ms" if added else "no log line"
        routed = route_destinations(ns, "dev", name)
        routes_at = time.monotonic() - start
        missing = len(want - routed)
        row["routes"] = f"{routes_at:.2f} s, all {len(want):,}" if missing == 0 else f"failed ({missing:,} of {len(want):,} missing)"
        pid = daemon.pid  # ip netns exec execs tunneld: the same process
        t0 = cpu_ticks(pid)
        time.sleep(args.idle)
        idle = (cpu_ticks(pid) - t0) / os.sysconf("SC_CLK_TCK") / args.idle * 100
        row["idle cpu"] = f"{idle:.2f} % ({args.idle} s)"
        row["rss"] = f"{rss_mib(pid):.1f} MiB"
        took, failure, out = timed(["ip", "netns", "exec", ns, "wg", "show", name, "dump"], args.timeout)
        listed = max(0, len(out.splitlines()) - 1)
        row["show dump"] = failure or (f"{took * 1000:.0f} ms" + ("" if listed == peers else f" (listed {listed:,})"))
        row["rss after dump"] = f"{rss_mib(pid):.1f} MiB"
        took, failure, _ = timed(["ip", "netns", "exec", ns, "wg", "setconf", name, setconf], args.timeout)
        row["setconf"] = failure or f"{took * 1000:.0f} ms"
        stop = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(args.timeout)
            stopped = time.monotonic() - stop
            left = len(want & route_destinations(ns, "table", "all"))
            row["stop"] = f"{stopped * 1000:.0f} ms, " + ("no route left" if left == 0 else f"failed ({left:,} routes left)")
        except subprocess.TimeoutExpired:
            row["stop"] = f"failed (timeout {args.timeout} s)"
        return row
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        notify.close()
        os.unlink(notify_path)
        subprocess.run(["ip", "netns", "del", ns])
        subprocess.run(["rm", "-f", f"/var/run/wireguard/{name}.sock"])


def compare_routes(bench, peers, timeout):
    """Tunnel.Bench route-install, rtnetlink and ip -batch, for the same routes as the rows."""
    rows = []
    for count in peers:
        routes = count + (count + 9) // 10
        for method in ([], ["--ip-batch"]):
            ns = f"tsc-{os.getpid()}-{uuid.uuid4().hex[:6]}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            try:
                r = subprocess.run(["ip", "netns", "exec", ns, bench, "route-install", "--routes", str(routes), *method],
                                   capture_output=True, text=True, timeout=timeout)
                rows.append(r.stdout.strip() or f"{method or 'rtnetlink'} {routes}: failed ({r.stderr.strip()[-120:]})")
            except subprocess.TimeoutExpired:
                rows.append(f"{method or 'rtnetlink'} {routes}: failed (timeout {timeout} s)")
            finally:
                subprocess.run(["ip", "netns", "del", ns])
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tunneld", required=True)
    p.add_argument("--bench", help="Tunnel.Bench executable, for --compare-routes")
    p.add_argument("--peers", default="1000,10000,100000")
    p.add_argument("--timeout", type=int, default=300, help="seconds per step before it counts as failed")
    p.add_argument("--idle", type=int, default=10, help="seconds of the idle CPU window")
    p.add_argument("--compare-routes", action="store_true", help="also time rtnetlink against ip -batch")
    args = p.parse_args()
    counts = [int(x) for x in args.peers.split(",")]
    columns = ["peers", "ready", "routes", "route install", "rss", "idle cpu", "show dump", "rss after dump",
               "setconf", "stop"]
    with open("/proc/loadavg") as f:
        print(f"load average before: {' '.join(f.read().split()[:3])}", flush=True)
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns), flush=True)
    with tempfile.TemporaryDirectory(prefix="tunneld-scale-") as workdir:
        for n in counts:
            row = one(args.tunneld, n, args, workdir)
            print("| " + " | ".join(row.get(c, "-") for c in columns) + " |", flush=True)
    if args.compare_routes:
        print("\nroute install, same routes (N /32 and N/10 /128), wall and CPU; then link deletion:")
        for line in compare_routes(args.bench, counts, args.timeout):
            print("    " + line, flush=True)
    with open("/proc/loadavg") as f:
        print(f"load average after: {' '.join(f.read().split()[:3])}")


if __name__ == "__main__":
    main()
