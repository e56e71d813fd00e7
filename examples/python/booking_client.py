"""booking_client.py - a small upstream client for booking-log, written from docs/wire.md.

Signs commands (Ed25519, PyNaCl), sends them as msgpack to booking.commands on the
partition murmur2_random picks for their order id, and waits for each one's answer: its
result on booking.command-results or its DLQ record on booking.dlq, matched exactly by
the (partition, offset) the command was written at and, where that is not known, by
command id. Debian packages: python3-confluent-kafka, python3-nacl, python3-msgpack.

    client = BookingClient("127.0.0.1:9092", "web-1.sk", "web-1")
    answer = client.call({"id": "cmd_1", "type": "order.create", ...})
    answer.status, answer.code      # "accepted", "ok" / "dlq", None
    client.close()
"""
import base64
import datetime
import json
import time

import msgpack
import nacl.signing
from confluent_kafka import OFFSET_END, Consumer, KafkaException, Producer, TopicPartition

TOPICS = ("booking.commands", "booking.command-results", "booking.dlq")


def load_signing_key(path):
    """A `bookingctl keygen` .sk file: base64 of seed (32 bytes) || public key (32 bytes).
    PyNaCl wants the seed: the first 32 bytes."""
    with open(path, "rb") as f:
        raw = base64.b64decode(f.read().strip())
    if len(raw) != 64:
        raise ValueError("%s: expected 64 bytes of key, got %d" % (path, len(raw)))
    key = nacl.signing.SigningKey(raw[:32])
    if bytes(key.verify_key) != raw[32:]:
        raise ValueError("%s: the public half does not match the seed" % path)
    return key


def murmur2(data):
    """Kafka's murmur2 (seed 0x9747b28c), unsigned 32 bits (docs/wire.md)."""
    m, n = 0x5BD1E995, len(data)
    h = (0x9747B28C ^ n) & 0xFFFFFFFF
    for i in range(n // 4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail, rest = n & ~3, n % 4
    if rest >= 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h = ((h ^ data[tail]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def partition_for(key, count):
    """The partition of a record key among `count` partitions (murmur2_random)."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % count


def encode(cmd):
    """The record value of a command: msgpack of the dict, keys in its order."""
    return msgpack.packb(cmd, use_bin_type=True)


def rfc3339(t=None):
    """A UTC timestamp as RFC 3339 text with microseconds (now when t is None)."""
    t = t or datetime.datetime.now(datetime.timezone.utc)
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Answer:
    """What became of a command: kind "result" (status, code, message, version,
    event_ids) or "dlq" (status "dlq", reason)."""

    def __init__(self, kind, command_id, headers, value=None, reason=None):
        self.kind = kind
        self.command_id = command_id
        self.headers = headers
        self.value = value or {}
        self.status = self.value.get("status", "dlq" if kind == "dlq" else None)
        self.code = self.value.get("code")
        self.message = self.value.get("message", reason)
        self.version = self.value.get("version")
        self.event_ids = self.value.get("event_ids", [])
        self.reason = reason

    def as_dict(self):
        d = {"command_id": self.command_id, "status": self.status}
        if self.kind == "result":
            d.update(code=self.code, version=self.version, message=self.message)
        else:
            d["reason"] = self.reason
        return d

    def __repr__(self):
        return "Answer(%r)" % self.as_dict()


class Sent:
    """A command on its way: its id, and where it landed once delivered."""

    def __init__(self, command_id, key):
        self.command_id = command_id
        self.key = key
        self.partition = None
        self.offset = None
        self.error = None


class BookingClient:
    """Signs, sends and awaits answers. Not thread-safe: one caller at a time."""

    def __init__(self, bootstrap, key_path, key_id, topic_prefix="", conf=None):
        self.key = load_signing_key(key_path) if key_path else None
        self.key_id = key_id
        self.topics = {t: topic_prefix + t for t in TOPICS}
        base = {"bootstrap.servers": bootstrap}
        base.update(conf or {})
        self.producer = Producer(dict(base, **{
            "partitioner": "murmur2_random",  # librdkafka's default is not Kafka's
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 0,  # one command at a time: do not wait for more
        }))
        self.consumer = Consumer(dict(base, **{
            "group.id": "booking-client-%d" % id(self),  # assign() only: never joins
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 5,  # answers in milliseconds on every broker
        }))
        md = self.producer.list_topics(timeout=30)
        cmds = md.topics.get(self.topics["booking.commands"])
        if cmds is None or cmds.error is not None:
            raise KafkaException("topic %s not found" % self.topics["booking.commands"])
        self.partitions = len(cmds.partitions)
        # read both answer topics from their current ends, noted before anything is sent
        assign = []
        for t in (self.topics["booking.command-results"], self.topics["booking.dlq"]):
            tm = md.topics.get(t)
            if tm is None or tm.error is not None:
                raise KafkaException("topic %s not found" % t)
            for p in tm.partitions:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(t, p), timeout=30)
                assign.append(TopicPartition(t, p, high if high >= 0 else OFFSET_END))
        self.consumer.assign(assign)
        self.by_position = {}  # (partition, offset) -> Answer
        self.by_command_id = {}  # command id -> [Answer, ...]

    # --- sending -------------------------------------------------------------------
    def sign(self, value):
        return self.key.sign(value).signature

    def send(self, cmd, content_type="application/msgpack", sign=True, tamper=False):
        """Produce one command; returns a Sent with its partition and offset filled once
        the broker acknowledged it (this call waits for that). tamper=True corrupts the
        signature (to see a DLQ record come back)."""
        if content_type == "application/json":
            value = json.dumps(cmd, separators=(",", ":")).encode("utf-8")
        else:
            value = encode(cmd)
        headers = [("content-type", content_type.encode())]
        if sign:
            sig = bytearray(self.sign(value))
            if tamper:
                sig[7] ^= 0x20
            headers += [("key-id", self.key_id.encode()), ("signature", bytes(sig))]
        key = cmd["order_id"]
        sent = Sent(cmd.get("id"), key)

        def delivered(err, msg):
            if err is not None:
                sent.error = err
            else:
                sent.partition, sent.offset = msg.partition(), msg.offset()

        self.producer.produce(self.topics["booking.commands"], value=value,
                              key=key.encode("utf-8"), headers=headers, on_delivery=delivered)
        self.producer.flush(30)
        if sent.error is not None or sent.offset is None:
            raise KafkaException("produce %s: %s" % (sent.command_id, sent.error))
        want = partition_for(key, self.partitions)
        if sent.partition != want:  # the processor would dead-letter it
            raise AssertionError("key %s went to partition %d, murmur2 says %d"
                                 % (key, sent.partition, want))
        return sent

    # --- answers -------------------------------------------------------------------
    def _take(self, msg):
        h = {k: (v.decode("utf-8", "replace") if v is not None else None)
             for k, v in (msg.headers() or [])}
        if "seal" in h:
            return  # the processor's seal over a batch of results (docs/wire.md, "Seals")
        if msg.topic() == self.topics["booking.dlq"]:
            if h.get("src-topic") != self.topics["booking.commands"]:
                return
            a = Answer("dlq", h.get("command-id"), h, reason=h.get("reason"))
        else:
            value = msgpack.unpackb(msg.value(), raw=False)
            a = Answer("result", value.get("command_id"), h, value=value)
        pos = (int(h.get("src-partition", -1)), int(h.get("src-offset", -1)))
        if pos in self.by_position:
            return  # a result written twice after a processor crash: keep the first
        self.by_position[pos] = a
        if a.command_id:
            self.by_command_id.setdefault(a.command_id, []).append(a)

    def poll(self, timeout=0.05):
        msg = self.consumer.poll(timeout)
        while msg is not None:
            if msg.error() is None:
                self._take(msg)
            msg = self.consumer.poll(0)

    def await_answer(self, sent, timeout=30.0):
        """The answer to a sent command, matched by its (partition, offset)."""
        deadline = time.monotonic() + timeout
        pos = (sent.partition, sent.offset)
        while pos not in self.by_position:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer to %s within %.0f s" % (sent.command_id, timeout))
            self.poll()
        return self.by_position[pos]

    def await_command_id(self, command_id, timeout=30.0):
        """The first answer naming this command id (results, and DLQ records whose id
        could be read): for callers that did not keep the offset."""
        deadline = time.monotonic() + timeout
        while command_id not in self.by_command_id:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer to %s within %.0f s" % (command_id, timeout))
            self.poll()
        return self.by_command_id[command_id][0]

    def call(self, cmd, timeout=30.0, **kw):
        """Send a command and wait for its answer."""
        return self.await_answer(self.send(cmd, **kw), timeout)

    def close(self):
        self.producer.flush(10)
        self.consumer.close()
