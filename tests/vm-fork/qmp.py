#!/usr/bin/env python3
"""The few QMP exchanges the VM fork test needs (QEMU's JSON monitor on a unix socket).

  qmp.py snapshot SOCK STATE_FILE TIMEOUT_S   stop, migrate "exec:cat > STATE_FILE", wait until completed
  qmp.py wait-paused SOCK... TIMEOUT_S        wait until every VM finished loading its incoming state
  qmp.py cont SOCK...                         cont every VM back to back; prints each one's host time
"""
import json
import socket
import sys
import time


class Qmp:
    def __init__(self, path, timeout=30.0):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        self.file = self.sock.makefile("rwb")
        self.read()  # the greeting
        self.command("qmp_capabilities")

    def read(self):
        while True:
            line = self.file.readline()
            if not line:
                raise SystemExit("QMP: connection closed")
            message = json.loads(line)
            if "event" not in message:
                return message

    def send(self, name, **arguments):
        message = {"execute": name}
        if arguments:
            message["arguments"] = arguments
        self.file.write(json.dumps(message).encode() + b"\n")
        self.file.flush()

    def command(self, name, **arguments):
        self.send(name, **arguments)
        reply = self.read()
        if "error" in reply:
            raise SystemExit(f"QMP {name}: {reply['error']}")
        return reply["return"]


def snapshot(path, state, timeout):
    q = Qmp(path)
    q.command("stop")
    q.command("migrate", uri=f"exec:cat > {state}")
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = q.command("query-migrate").get("status")
        if status == "completed":
            return 0
        if status in ("failed", "cancelled"):
            raise SystemExit(f"migrate: {status}")
        time.sleep(0.2)
    raise SystemExit("migrate: timed out")


def wait_paused(paths, timeout):
    deadline = time.time() + timeout
    vms = [Qmp(p, timeout) for p in paths]
    for q in vms:
        while q.command("query-status")["status"] != "paused":
            if time.time() > deadline:
                raise SystemExit("incoming migration: timed out")
            time.sleep(0.2)
    return 0


def cont(paths):
    vms = [Qmp(p) for p in paths]
    for q in vms:  # all commands first, then the replies: the clones resume as close together as we can
        q.send("cont")
    times = []
    for q in vms:
        reply = q.read()
        if "error" in reply:
            raise SystemExit(f"QMP cont: {reply['error']}")
        times.append(time.time())
    print(" ".join(f"{t:.6f}" for t in times))
    return 0


def main(argv):
    if len(argv) == 4 and argv[0] == "snapshot":
        return snapshot(argv[1], argv[2], float(argv[3]))
    if len(argv) >= 3 and argv[0] == "wait-paused":
        return wait_paused(argv[1:-1], float(argv[-1]))
    if len(argv) >= 2 and argv[0] == "cont":
        return cont(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
