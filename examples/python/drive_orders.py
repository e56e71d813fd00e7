#!/usr/bin/python3
"""drive_orders.py - whole orders through a running booking-commands, from Python.

Drives, one command at a time with current times (so nothing races the expiry sweep):
  1. an RTB order: create, submit, accept, a payment with the wrong amount (rejected),
     the right payment, start, deliver, complete;
  2. an IB order under an auto-accept rule: autoaccept.set, create, submit (accepted at
     once by the rule), payment;
  3. a card flow on a confirmed order: a reschedule card proposed by the buyer and
     accepted by the provider, an extras card declined, a note;
  4. answers found by command id: a resent command (duplicate) and a forged signature
     (a DLQ record that carries the command id).
Prints one JSON line per command (step, what it got, what it expected) and exits 0 when
every answer is the expected one, 1 otherwise, 3 on a Kafka failure or timeout.

usage: drive_orders.py (-b HOST:PORT | --brokers-file PATH) --key PATH.sk --key-id ID
                       [--topic-prefix PFX] [--timeout S]
"""
import argparse
import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from booking_client import BookingClient, rfc3339  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description="drive whole orders through booking-commands")
    ap.add_argument("-b", "--bootstrap")
    ap.add_argument("--brokers-file")
    ap.add_argument("--key", required=True)
    ap.add_argument("--key-id", required=True)
    ap.add_argument("--topic-prefix", default="")
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    bootstrap = a.bootstrap
    if a.brokers_file:
        with open(a.brokers_file) as f:
            bootstrap = f.readline().strip()  # the first line is the broker list
    if not bootstrap:
        ap.error("-b or --brokers-file is required")

    run = "%x" % int(time.time() * 1000)  # ids unique per run: rerunnable on one broker
    now = datetime.datetime.now(datetime.timezone.utc)
    start = (now + datetime.timedelta(days=30)).replace(hour=9, minute=0, second=0,
                                                        microsecond=0)
    buyer = {"user_id": "usr_py_buyer", "role": "buyer"}
    prov = {"user_id": "usr_py_prov", "role": "provider"}
    system = {"role": "system"}
    items = [{"kind": "package", "title": "Half-day shoot", "qty": 1, "unit_cents": 40000},
             {"kind": "travel", "title": "Travel", "qty": 1, "unit_cents": 2500}]
    total = 40000 + 2500 + 4000 + 8800
    seq = [0]

    def cmd(order_id, ctype, actor, payload=None, **extra):
        seq[0] += 1
        c = {"id": "cmd_py_%s_%02d" % (run, seq[0]), "type": ctype, "order_id": order_id,
             "actor": actor, "at": rfc3339()}
        c.update(extra)
        if payload is not None:
            c["payload"] = payload
        return c

    def create(order_id, mode, sp):
        return cmd(order_id, "order.create", buyer, {
            "mode": mode, "provider_user_id": prov["user_id"], "service_profile_id": sp,
            "role_code": "photographer", "city": "Paris",
            "start_ts": rfc3339(start), "end_ts": rfc3339(start + datetime.timedelta(hours=4)),
            "timezone": "Europe/Paris", "location": {"kind": "remote"}, "currency": "EUR",
            "line_items": items, "platform_fee_cents": 4000, "tax_cents": 8800,
            "policy": {"cancellation": "flexible"}})

    def expires():
        return rfc3339(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2))

    client = BookingClient(bootstrap, a.key, a.key_id, a.topic_prefix)
    bad = 0

    def step(name, c, want_status, want_code=None, **kw):
        nonlocal bad
        ans = client.call(c, timeout=a.timeout, **kw)
        ok = ans.status == want_status and (want_code is None or ans.code == want_code)
        # every answer names the command it answers
        ok = ok and ans.command_id == c["id"]
        bad += not ok
        line = {"step": name, "ok": ok, "want": [want_status, want_code]}
        line.update(ans.as_dict())
        print(json.dumps(line), flush=True)
        return ans

    try:
        # 1. RTB
        o = "ord_py_rtb_" + run
        step("rtb create", create(o, "RTB", "sp_py_rtb_" + run), "accepted", "ok")
        step("rtb submit", cmd(o, "request.submit", buyer,
                               {"message": "Available?", "expires_at": expires()}),
             "accepted", "ok")
        v = step("rtb accept", cmd(o, "request.accept", prov), "accepted", "ok").version
        step("rtb payment, wrong amount", cmd(o, "payment.captured", system,
                                             {"payment_intent_id": "pi_" + run,
                                              "amount_cents": total - 1}),
             "rejected", "amount_mismatch")
        step("rtb payment", cmd(o, "payment.captured", system,
                                {"payment_intent_id": "pi_" + run, "amount_cents": total},
                                expected_version=v), "accepted", "ok")
        step("rtb start", cmd(o, "order.start", prov), "accepted", "ok")
        step("rtb deliver", cmd(o, "order.deliver", prov), "accepted", "ok")
        step("rtb complete", cmd(o, "order.complete", buyer), "accepted", "ok")

        # 2. IB under an auto-accept rule (the rule's key is the service profile): the
        #    profiles service binds the profile to its provider, who then sets the rule
        sp = "sp_py_ib_" + run
        step("ib bind", cmd(sp, "profile.bind", system,
                            {"service_profile_id": sp, "provider_user_id": prov["user_id"]}),
             "accepted", "ok")
        step("ib rule", cmd(sp, "autoaccept.set", prov,
                            {"rule_id": "rule_py_" + run, "service_profile_id": sp,
                             "min_price_cents": 10000, "allow_ib": True}), "accepted", "ok")
        o = "ord_py_ib_" + run
        step("ib create", create(o, "IB", sp), "accepted", "ok")
        step("ib submit (the rule accepts)", cmd(o, "request.submit", buyer,
                                                {"message": "Booked"}), "accepted", "ok")
        step("ib payment", cmd(o, "payment.captured", system,
                               {"payment_intent_id": "pi_ib_" + run, "amount_cents": total}),
             "accepted", "ok")

        # 3. cards on the confirmed IB order
        card = "acd_py_" + run
        step("card open (reschedule)", cmd(o, "card.open", buyer, {
            "type": "reschedule", "card_id": card, "expires_at": expires(),
            "payload": {"start_ts": rfc3339(start + datetime.timedelta(days=1)),
                        "end_ts": rfc3339(start + datetime.timedelta(days=1, hours=4))}}),
             "accepted", "ok")
        step("card accept by the buyer (not theirs to answer)",
             cmd(o, "card.respond", buyer, {"card_id": card, "action": "accept"}),
             "rejected", "forbidden")
        step("card accept", cmd(o, "card.respond", prov, {"card_id": card, "action": "accept"}),
             "accepted", "ok")
        card2 = "acd_py_x_" + run
        step("card open (extras)", cmd(o, "card.open", prov, {
            "type": "extras", "card_id": card2,
            "payload": {"line_items": [{"kind": "extra", "title": "Retouching", "qty": 5,
                                        "unit_cents": 1500}]}}), "accepted", "ok")
        step("card decline", cmd(o, "card.respond", buyer, {"card_id": card2,
                                                           "action": "decline"}),
             "accepted", "ok")
        step("note", cmd(o, "note.add", buyer, {"text": "See you there"}), "accepted", "ok")

        # 4. answers found by command id
        again = cmd(o, "note.add", buyer, {"text": "Once"})
        step("sent once", again, "accepted", "ok")
        step("sent again (same id)", again, "duplicate", "ok")
        forged = cmd(o, "note.add", buyer, {"text": "forged"})
        sent = client.send(forged, tamper=True)
        ans = client.await_command_id(forged["id"], timeout=a.timeout)
        ok = (ans.kind == "dlq" and ans.reason.startswith("auth: ")
              and (ans.headers.get("src-partition"), ans.headers.get("src-offset"))
              == (str(sent.partition), str(sent.offset)))
        bad += not ok
        print(json.dumps(dict(step="forged signature (found by command id)", ok=ok,
                              want=["dlq", None], **ans.as_dict())), flush=True)
    except (TimeoutError, Exception) as e:  # a Kafka failure or no answer
        print(json.dumps({"error": str(e)}), flush=True)
        client.close()
        return 3
    client.close()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
