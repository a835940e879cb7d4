#!/usr/bin/env python3
"""The peer of `cargo bench -p airisk-core --bench encryption`, in Python.

Same workload and same format as airisk's `Encryptor::encrypt` / `decrypt`: a str in, AES-256-GCM
with a random 12-byte nonce from os.urandom and the documented AAD, `v1.<kid>.<base64url>` out
(and back); `encrypt_raw` is AESGCM.encrypt alone, bytes to bytes, for reference. Uses `cryptography`'s AESGCM (OpenSSL underneath). Prints ops/s and MB/s per case;
with --json, one JSON object on the last line for bench/encryption.sh.

    python3 bench/encryption_python.py [--seconds 2] [--json]
"""

import argparse
import base64
import json
import os
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY = bytes(range(32))  # public benchmark key
KID = "bench"
AAD = b"airisk.v1\x00" + KID.encode() + b"\x00"  # context-free AAD, see docs/ENCRYPTION.md
PREFIX = "v1." + KID + "."


def encrypt(aead: AESGCM, plaintext: str) -> str:
    nonce = os.urandom(12)
    sealed = aead.encrypt(nonce, plaintext.encode(), AAD)
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()


def decrypt(aead: AESGCM, ciphertext: str) -> str:
    version, kid, payload = ciphertext.split(".", 2)
    if version != "v1" or kid != KID:
        raise ValueError("not a v1 ciphertext of this key")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return aead.decrypt(raw[:12], raw[12:], AAD).decode()


def encrypt_raw(aead: AESGCM, plaintext: bytes) -> bytes:
    """AES-GCM alone (bytes in, bytes out): no str handling, no base64."""
    return aead.encrypt(os.urandom(12), plaintext, AAD)


def measure(fn, arg, seconds: float) -> float:
    """Calls fn(arg) in batches until `seconds` have passed; returns calls per second."""
    batch, calls = 256, 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn(arg)
        calls += batch
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per case (default 2)")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary line")
    args = parser.parse_args()

    aead = AESGCM(KEY)
    text = "abcdefghijklmnopqrstuvwxyz0123456789"
    results = {}
    for label, size in (("256B", 256), ("16KiB", 16 * 1024)):
        plaintext = (text * (size // len(text) + 1))[:size]
        sealed = encrypt(aead, plaintext)
        assert decrypt(aead, sealed) == plaintext
        for op, fn, arg in (("encrypt", lambda p: encrypt(aead, p), plaintext),
                            ("decrypt", lambda c: decrypt(aead, c), sealed),
                            ("encrypt_raw", lambda p: encrypt_raw(aead, p), plaintext.encode())):
            ops = measure(fn, arg, args.seconds)
            results[f"{label}/{op}"] = {"ops_per_s": ops, "mb_per_s": ops * size / 1e6}
            print(f"python {label:>5} {op:<11}: {ops:>12,.0f} ops/s  {ops * size / 1e6:>9,.1f} MB/s")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
