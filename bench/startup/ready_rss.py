#!/usr/bin/env python3
"""Start-to-READY=1 time and resident memory of `tunneld up`, for one or more tunneld binaries.

Usage (root): python3 bench/startup/ready_rss.py [--runs N] BINARY [BINARY ...]
Each run: a fresh network namespace, a one-peer config, `tunneld up` with NOTIFY_SOCKET pointing at
a datagram socket; the time is from spawn to the READY=1 datagram, the RSS is VmRSS 2 s after
READY=1; then SIGTERM, and the namespace is deleted. Prints the median and range per binary.
"""
import os, socket, statistics, subprocess, sys, tempfile, time, uuid

def one_run(binary, workdir):
    ns = "tsb-" + uuid.uuid4().hex[:8]
    name = "sb" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        key = subprocess.run([binary, "genkey"], capture_output=True, text=True, check=True).stdout.strip()
        peer = subprocess.run([binary, "pubkey"], input=subprocess.run([binary, "genkey"], capture_output=True,
                              text=True, check=True).stdout, capture_output=True, text=True, check=True).stdout.strip()
        conf = os.path.join(workdir, name + ".conf")
        with open(conf, "w") as f:
            f.write(f"[Interface]\nPrivateKey = {key}\nListenPort = 51820\nAddress = 10.70.0.1/24\n\n"
                    f"[Peer]\nPublicKey = {peer}\nAllowedIPs = 10.71.0.0/24\n")
        os.chmod(conf, 0o600)
        notify = os.path.join(workdir, name + ".notify")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(notify)
        s.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=notify)
        start = time.monotonic()
        p = subprocess.Popen(["ip", "netns", "exec", ns, binary, "up", conf], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while s.recv(64) != b"READY=1":
            pass
        ready = time.monotonic() - start
        time.sleep(2)
        rss = 0
        with open(f"/proc/{p.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        p.terminate()
        p.wait(20)
        s.close()
        os.unlink(notify)
        return ready * 1000, rss / 1024
    finally:
        subprocess.run(["ip", "netns", "del", ns])

def main():
    args = sys.argv[1:]
    runs = 5
    if args[:1] == ["--runs"]:
        runs, args = int(args[1]), args[2:]
    with tempfile.TemporaryDirectory(prefix="tunneld-startup-") as workdir:
        for binary in args:
            results = [one_run(binary, workdir) for _ in range(runs)]
            ms = [r[0] for r in results]
            mb = [r[1] for r in results]
            print(f"{binary}: start to READY=1 median {statistics.median(ms):.0f} ms "
                  f"(range {min(ms):.0f}-{max(ms):.0f}), RSS median {statistics.median(mb):.1f} MiB "
                  f"(range {min(mb):.1f}-{max(mb):.1f}), {runs} runs")

if __name__ == "__main__":
    main()
