#!/usr/bin/env python3
"""WireGuard packets a guest sent, read from tcpdump captures of its tap device.

  wire.py wait CAPTURE GUEST_IP N TIMEOUT_S [PID]
      exit 0 once CAPTURE holds N transport packets sent by GUEST_IP (the parent's traffic flows);
      1 on timeout or as soon as process PID (the VM) is gone
  wire.py detect MODE PARENT CLONE_A CLONE_B CONT_A CONT_B GUEST_IP
      the fork detector: prints one line
      "vm-fork mode=M stale=N reused=N same_ephemeral=N rekey_ms=A/B" and the counts as JSON on stderr

What the detector counts (only packets the guest sent: source GUEST_IP, UDP source port 51820):
  old keys   receiver indices of the transport packets in the parent's capture (the sessions the
             snapshot holds)
  stale      transport packets in the clones' captures under an old receiver index
  reused     (receiver index, counter) pairs seen with two different ciphertexts across the three
             captures: the same key and nonce sealing different plaintexts
  same_ephemeral  handshake ephemerals (initiation or response) that both clones sent
  rekey_ms   per clone, from its `cont` to its first transport packet under a new receiver index
"""
import hashlib
import json
import os
import struct
import sys
import time

WG_PORT = 51820


def packets(path, guest_ip):
    """(timestamp, wireguard payload) of every UDP datagram GUEST_IP sent from port 51820."""
    src = bytes(int(x) for x in guest_ip.split("."))
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0xA1B2C3D4:
        endian, scale = "<", 1e-6
    elif magic == 0xA1B23C4D:
        endian, scale = "<", 1e-9
    else:
        raise SystemExit(f"{path}: not a little-endian pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit(f"{path}: link type {linktype}, expected Ethernet")
    at = 24
    while at + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[at:at + 16])
        frame = data[at + 16:at + 16 + caplen]
        at += 16 + caplen
        if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17 or ip[12:16] != src:
            continue
        udp = ip[ihl:]
        if len(udp) < 8 or struct.unpack(">H", udp[0:2])[0] != WG_PORT:
            continue
        yield sec + frac * scale, udp[8:]


def transport(payload):
    """(receiver index, counter, ciphertext digest) of a transport message, else None."""
    if len(payload) < 16 or payload[0] != 4:
        return None
    index, counter = struct.unpack("<IQ", payload[4:16])
    return index, counter, hashlib.sha256(payload[16:]).digest()


def ephemeral(payload):
    """The unencrypted ephemeral key of a handshake initiation (type 1) or response (type 2)."""
    if payload[:1] == b"\x01" and len(payload) >= 40:
        return payload[8:40]
    if payload[:1] == b"\x02" and len(payload) >= 44:
        return payload[12:44]
    return None


def wait(path, guest_ip, count, timeout, pid=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        seen = sum(1 for _, p in packets(path, guest_ip) if transport(p))
        if seen >= count:
            return 0
        if pid is not None:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                print(f"wire.py: the VM (pid {pid}) exited", file=sys.stderr)
                return 1
        time.sleep(0.5)
    return 1


def detect(mode, parent, clone_a, clone_b, cont_a, cont_b, guest_ip):
    old = set()
    sealed = {}  # (index, counter) -> set of ciphertext digests, across all captures
    for _, p in packets(parent, guest_ip):
        t = transport(p)
        if t:
            old.add(t[0])
            sealed.setdefault(t[:2], set()).add(t[2])
    stale = 0
    ephemerals = []
    rekey = []
    for capture, cont in ((clone_a, cont_a), (clone_b, cont_b)):
        mine = set()
        first_new = None
        for ts, p in packets(capture, guest_ip):
            e = ephemeral(p)
            if e:
                mine.add(e)
            t = transport(p)
            if not t:
                continue
            sealed.setdefault(t[:2], set()).add(t[2])
            if t[0] in old:
                stale += 1
            elif first_new is None:
                first_new = ts
        ephemerals.append(mine)
        rekey.append("-" if first_new is None else str(max(0, round((first_new - cont) * 1000))))
    reused = sum(1 for digests in sealed.values() if len(digests) > 1)
    same = len(ephemerals[0] & ephemerals[1])
    print(f"vm-fork mode={mode} stale={stale} reused={reused} same_ephemeral={same} "
          f"rekey_ms={rekey[0]}/{rekey[1]}")
    print(json.dumps({"mode": mode, "old_indices": len(old), "stale": stale, "reused": reused,
                      "same_ephemeral": same, "rekey_ms": rekey,
                      "handshakes": [len(e) for e in ephemerals]}), file=sys.stderr)
    return 0


def main(argv):
    if len(argv) in (5, 6) and argv[0] == "wait":
        return wait(argv[1], argv[2], int(argv[3]), float(argv[4]), int(argv[5]) if len(argv) == 6 else None)
    if len(argv) == 8 and argv[0] == "detect":
        return detect(argv[1], argv[2], argv[3], argv[4], float(argv[5]), float(argv[6]), argv[7])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
