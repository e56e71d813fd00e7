#!/usr/bin/python3
"""check_vectors.py - the reference client agrees with fixtures/wire/ (TAP on stdout):
its encoding, signing key loading, signatures and partitioner reproduce every vector.

usage: check_vectors.py [WIRE_DIR]   (default: ../../fixtures/wire)
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from booking_client import encode, load_signing_key, murmur2, partition_for  # noqa: E402

wire = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../fixtures/wire")
key = load_signing_key(os.path.join(wire, "wire-test.sk"))
n = bad = 0


def ok(cond, what):
    global n, bad
    n += 1
    bad += not cond
    print("%s %d - %s" % ("ok" if cond else "not ok", n, what))


with open(os.path.join(wire, "vectors.jsonl")) as f:
    vectors = [json.loads(line) for line in f if line.strip()]
ok(len(vectors) >= 10, "%d vectors" % len(vectors))
for v in vectors:
    value = bytes.fromhex(v["value_hex"])
    if v["content_type"] == "application/msgpack":
        ok(encode(v["command"]) == value, "%s: msgpack bytes" % v["name"])
    else:
        ok(json.loads(value) == v["command"], "%s: JSON value" % v["name"])
    ok(key.sign(value).signature.hex() == v["signature_hex"], "%s: signature" % v["name"])
    ok(all(partition_for(v["key"], int(c)) == p for c, p in v["partition"].items()),
       "%s: partitions" % v["name"])
with open(os.path.join(wire, "partitions.json")) as f:
    keys = json.load(f)
for k in keys:
    ok(murmur2(k["key"].encode("utf-8")) == k["murmur2"]
       and all(partition_for(k["key"], int(c)) == p for c, p in k["partition"].items()),
       "partitions.json: %r" % k["key"])
print("1..%d" % n)
sys.exit(1 if bad else 0)
