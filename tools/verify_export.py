#!/usr/bin/env python3
"""Verify an `airisk audit export` file without trusting the operator.

Usage:
    python3 tools/verify_export.py EXPORT.jsonl --verifier-key 'name+keyid+base64' \
        --tenant acme [--checkpoint KEPT.note]

The verifier key and the tenant must come from what you know (the bank's key registry, a signed
letter, your engagement), NOT from the export file: the file is produced by the operator you are
auditing. If the file names another key or another tenant, verification fails.

--checkpoint names a file holding a checkpoint you kept from an earlier moment (the signed note
text of an earlier export's header or of `GET /v1/audit/checkpoint`). The export must then be
consistent with it: the root of its first <kept size> leaves must be exactly the root the kept
checkpoint signed, so the ledger was neither rolled back (an older backup restored: fewer
entries than you once saw) nor rewritten. The check recomputes that root from the exported leaves
themselves, which is equivalent to an RFC 6962 consistency proof between the two checkpoints.

Checks, in order, stopping at the first failure (exit 1, naming the entry):
  1. line 1 is the checkpoint header; every later line is an entry, numbered 0, 1, 2, ... without
     gaps;
  2. each entry's leaf_hash is SHA-256(0x00 || leaf) of its exact leaf bytes;
  3. each leaf is a JSON object naming this tenant and its own seq;
  4. the header's checkpoint is signed by the verifier key (C2SP signed note, Ed25519) and its
     origin names this tenant;
  5. the RFC 6962 root of the first <checkpoint size> leaves equals the checkpoint's root;
  6. with --checkpoint: the kept note is signed by the verifier key for the same tenant's ledger,
     the export holds at least its size of entries (else: rolled back or truncated), and the root
     of its first <kept size> leaves equals the kept root (else: history rewritten).

Needs Python 3.8+ and the `cryptography` package (Ed25519). Memory stays flat: the tree is folded
with a compact frontier while the file streams.
"""

import argparse
import base64
import hashlib
import json
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # pragma: no cover
    sys.exit("error: this tool needs the 'cryptography' package (pip install cryptography)")


class Failure(Exception):
    """The export does not verify; the message says where and why."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """The right edge of an RFC 6962 tree: one (size, hash) per perfect subtree, largest first."""

    def __init__(self):
        self.size = 0
        self.stack = []  # list of (subtree size, hash)

    def append(self, h: bytes):
        size, node = 1, h
        while self.stack and self.stack[-1][0] == size:
            left_size, left = self.stack.pop()
            node = node_hash(left, node)
            size += left_size
        self.stack.append((size, node))
        self.size += 1

    def root(self) -> bytes:
        if not self.stack:
            return hashlib.sha256(b"").digest()
        node = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            node = node_hash(left, node)
        return node


def parse_verifier_key(text: str):
    try:
        name, key_id_hex, key_b64 = text.strip().split("+", 2)
        key = base64.b64decode(key_b64, validate=True)
    except ValueError as e:
        raise Failure(f"the verifier key is malformed: {e}")
    if len(key) != 33 or key[0] != 0x01:
        raise Failure("the verifier key is not an Ed25519 signed-note key")
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + key[1:]).digest()[:4]
    if key_id.hex() != key_id_hex:
        raise Failure("the verifier key's key id does not match its key")
    return name, key_id, Ed25519PublicKey.from_public_bytes(key[1:])


def verify_note(note: str, verifier):
    name, key_id, public_key = verifier
    if not note.endswith("\n") or any(c < " " and c != "\n" for c in note):
        raise Failure("the checkpoint note is malformed")
    split = note.rfind("\n\n")
    if split < 0:
        raise Failure("the checkpoint note has no signature block")
    text, signatures = note[: split + 1], note[split + 2 :]
    verified = False
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            raise Failure("a signature line is malformed")
        sig_name, _, sig_b64 = line[2:].partition(" ")
        blob = base64.b64decode(sig_b64, validate=True)
        if sig_name == name and blob[:4] == key_id:
            try:
                public_key.verify(blob[4:], text.encode())
            except InvalidSignature:
                raise Failure("the checkpoint signature does not verify: text or signature altered")
            verified = True
    if not verified:
        raise Failure("the checkpoint is not signed by the given verifier key")
    lines = text[:-1].split("\n")
    if len(lines) != 3:
        raise Failure("the checkpoint text is not exactly origin, size and root")
    origin, size, root_b64 = lines
    if not (size == "0" or (size.isdigit() and not size.startswith("0"))):
        raise Failure("the checkpoint size is not canonical decimal")
    root = base64.b64decode(root_b64, validate=True)
    if len(root) != 32:
        raise Failure("the checkpoint root is not 32 bytes")
    return origin, int(size), root


def verify(lines, verifier_key: str, expected_tenant: str, kept_note=None):
    """Returns (origin, checkpoint size, entries, root, kept size or None) or raises Failure."""
    verifier = parse_verifier_key(verifier_key)
    kept_origin = kept_size = kept_root = None
    if kept_note is not None:
        try:
            kept_origin, kept_size, kept_root = verify_note(kept_note, verifier)
        except Failure as e:
            raise Failure(f"the kept checkpoint: {e}")
        if not kept_origin.endswith("/" + expected_tenant):
            raise Failure(f"the kept checkpoint is for {kept_origin!r}, not tenant {expected_tenant}'s ledger")
    kept_seen_root = None
    frontier = Frontier()
    if kept_size == 0:
        kept_seen_root = frontier.root()
    header = None
    origin = size = root = tenant = None
    covered_root = None
    entries = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError as e:
            raise Failure(f"line {number}: not JSON ({e})")
        if header is None:
            if item.get("type") != "checkpoint":
                raise Failure("line 1: the export must start with its checkpoint header")
            header = item
            if header.get("verifier_key") not in (None, verifier_key.strip()):
                raise Failure("the export names another verifier key than the one you trust")
            if not header.get("checkpoint"):
                raise Failure("the export carries no signed checkpoint")
            origin, size, root = verify_note(header["checkpoint"], verifier)
            tenant = header.get("tenant_id")
            if tenant != expected_tenant:
                raise Failure(f"the export is tenant {tenant!r}'s ledger, not {expected_tenant!r}'s, the tenant you expect")
            if not origin.endswith("/" + str(tenant)):
                raise Failure(f"the checkpoint origin {origin!r} is not tenant {tenant}'s ledger")
            if kept_origin is not None and kept_origin != origin:
                raise Failure(f"the kept checkpoint is for {kept_origin!r}, the export for {origin!r}")
            if size == 0:
                covered_root = frontier.root()
            continue
        if item.get("type") != "entry":
            raise Failure(f"line {number}: not an entry")
        seq = item.get("seq")
        if seq != entries:
            raise Failure(f"entry {entries}: missing or out of order (line {number} says seq {seq})")
        leaf = base64.b64decode(item["leaf"], validate=True)
        h = leaf_hash(leaf)
        if h.hex() != item.get("leaf_hash"):
            raise Failure(f"entry {seq}: leaf bytes do not match leaf_hash (record altered)")
        try:
            record = json.loads(leaf)
        except ValueError:
            raise Failure(f"entry {seq}: the leaf is not JSON")
        if record.get("seq") != seq:
            raise Failure(f"entry {seq}: the leaf says seq {record.get('seq')} (records moved)")
        if record.get("tenant_id") != tenant:
            raise Failure(f"entry {seq}: the leaf belongs to tenant {record.get('tenant_id')}")
        frontier.append(h)
        entries += 1
        if entries == size:
            covered_root = frontier.root()
        if entries == kept_size:
            kept_seen_root = frontier.root()
    if header is None:
        raise Failure("the export is empty")
    if entries < size:
        raise Failure(f"the checkpoint commits to {size} entries; the export holds only {entries} (truncated)")
    if covered_root != root:
        raise Failure(f"the root of the first {size} entries differs from the signed checkpoint")
    if kept_size is not None:
        if entries < kept_size:
            raise Failure(
                f"rolled back or truncated: your kept checkpoint commits to {kept_size} entries; "
                f"the export holds only {entries}"
            )
        if kept_seen_root != kept_root:
            raise Failure(
                f"history rewritten: the root of the first {kept_size} entries differs from your kept checkpoint"
            )
    return origin, size, entries, root, kept_size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", help="the JSON Lines file written by `airisk audit export`")
    parser.add_argument("--verifier-key", required=True, help="the ledger's verifier key, from a trusted channel")
    parser.add_argument("--tenant", required=True, help="the tenant whose ledger you expect; a file naming another is refused")
    parser.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="a checkpoint note you kept from earlier; the export must be consistent with it (no rollback)",
    )
    args = parser.parse_args()
    try:
        kept_note = None
        if args.checkpoint is not None:
            with open(args.checkpoint, "r", encoding="utf-8", newline="") as f:
                # As saved: maybe CRLF, maybe with blank lines around; the note is LF and ends in
                # exactly one newline.
                kept_note = f.read().replace("\r\n", "\n").strip() + "\n"
        with open(args.export, "r", encoding="utf-8") as f:
            origin, size, entries, root, kept_size = verify(f, args.verifier_key, args.tenant, kept_note)
    except Failure as e:
        print(f"NOT VERIFIED: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"verified: {origin}: {entries} entries; checkpoint of size {size} signed, root {root.hex()}")
    if kept_size is not None:
        print(f"consistent with your kept checkpoint of size {kept_size}: its {kept_size} entries are the first of this export")
    if entries > size:
        print(f"note: entries {size}..{entries - 1} came after the checkpoint and are not covered by it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
