#!/usr/bin/env python3
"""Generates blake2s.json: BLAKE2s, keyed BLAKE2s and HMAC-BLAKE2s known answers, computed with
Python's hashlib/hmac as an independent oracle for the project's own BLAKE2s.

Inputs are deterministic (byte i of a message is i mod 251, byte i of a key is (7*i + 3) mod 256),
so the file is reproducible: python3 gen_blake2s.py > blake2s.json
"""
import hashlib
import hmac
import json


def message(n):
    return bytes(i % 251 for i in range(n))


def key(n):
    return bytes((7 * i + 3) % 256 for i in range(n))


def main():
    unkeyed = [{"input": message(n).hex(), "digest": hashlib.blake2s(message(n)).hexdigest()}
               for n in range(0, 261)]

    lengths = [0, 1, 2, 31, 32, 33, 63, 64, 65, 127, 128, 129, 191, 192, 255, 256, 257, 260]
    keyed = []
    for out in (16, 32):
        for k in (1, 8, 16, 31, 32):
            for n in lengths:
                keyed.append({
                    "key": key(k).hex(),
                    "input": message(n).hex(),
                    "outlen": out,
                    "digest": hashlib.blake2s(message(n), key=key(k), digest_size=out).hexdigest(),
                })

    hmacs = []
    for k in (0, 1, 8, 32, 63, 64, 65, 100):
        for n in (0, 1, 32, 64, 65, 200):
            hmacs.append({
                "key": key(k).hex(),
                "input": message(n).hex(),
                "mac": hmac.new(key(k), message(n), hashlib.blake2s).hexdigest(),
            })

    print(json.dumps({"unkeyed": unkeyed, "keyed": keyed, "hmac": hmacs}, indent=1))


if __name__ == "__main__":
    main()
