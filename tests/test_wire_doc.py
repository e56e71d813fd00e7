#!/usr/bin/env python3
"""test_wire_doc.py - docs/wire.md against the code (TAP).

The generated part must be current (scripts/gen-wire-docs.sh --check). The hand-written
part must name only what exists: every header in its header tables is a string the
processor or `bookingctl send` writes or reads, and every header the processor writes is
documented; every envelope, payload, result, event and rules field is a key the codecs
or the decider read or write; every DLQ reason prefix is one the processor produces;
every command type and error code named in backticks exists.

usage: test_wire_doc.py BOOKINGCTL SRCDIR
"""
import glob
import os
import re
import subprocess
import sys

BK, SRC = sys.argv[1], sys.argv[2]
DOC = open(os.path.join(SRC, "docs/wire.md"), encoding="utf-8").read()
n = 0
failed = 0


def ok(cond, what, detail=""):
    global n, failed
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, what))
    if not cond:
        failed += 1
        for line in str(detail).splitlines():
            print("#   " + line)


def read(*paths):
    out = ""
    for p in paths:
        with open(os.path.join(SRC, p), encoding="utf-8") as f:
            out += f.read()
    return out


def literals(code):
    """Every C string literal of a source text."""
    return set(re.findall(r'"((?:[^"\\\n]|\\.)*)"', code))


def hand_written(doc):
    """The doc without its generated block."""
    return re.sub(r"<!-- BEGIN GENERATED.*?<!-- END GENERATED -->", "", doc, flags=re.S)


def section(doc, title):
    m = re.search(r"^#+ " + re.escape(title) + r"\n(.*?)(?=^#+ |\Z)", doc, flags=re.S | re.M)
    return m.group(1) if m else ""


def table_rows(text, first_header):
    """Rows (lists of cells) of every table in text whose first column is first_header."""
    rows, inside = [], False
    for line in text.splitlines():
        if not line.startswith("|"):
            inside = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == first_header:
            inside = True
            continue
        if inside and not all(c and set(c) <= set("-:") for c in cells):
            rows.append(cells)
    return rows


def ticks(cell):
    return re.findall(r"`([^`]+)`", cell)


# 1. the generated part is current
r = subprocess.run([os.path.join(SRC, "scripts/gen-wire-docs.sh"), "--check", BK],
                   capture_output=True, text=True)
ok(r.returncode == 0, "the generated part of docs/wire.md is current", r.stdout + r.stderr)

HAND = re.sub(r"```.*?```", "", hand_written(DOC), flags=re.S)  # prose and tables only
# the processor writes its seals through lib/trust (bk_trust_seal_record; the key BK_SEAL_KEY)
PROC = read("commands/process.c", "commands/admit.c", "commands/main.c", "lib/trust.c",
            "core/bk_seal.h")
SEND = read("cli/cmd_send.c")
CODEC = read("core/bk_codec.c")
# the decider is core/bk_decide.c and its per-aggregate files core/bk_decide_*.c
DECIDE = read(*sorted(os.path.relpath(p, SRC) for p in glob.glob(os.path.join(SRC, "core/bk_decide*.c"))),
              "core/bk_evolve.c", "core/bk_rules.c")
AUTH = read("core/bk_auth.c")

# 2. headers: documented <-> written
doc_headers = set()
for cells in table_rows(HAND, "header"):
    for h in ticks(cells[0]):
        doc_headers.add(h)
ok(len(doc_headers) >= 12, "wire.md has header tables (%d names)" % len(doc_headers))
code_lits = literals(PROC) | literals(SEND)
missing = []
for h in sorted(doc_headers):
    if h.startswith("orig-"):
        if "orig-%s" not in code_lits:
            missing.append(h)
    elif h not in code_lits:
        missing.append(h)
ok(not missing, "every header wire.md names is in the code", "missing: %s" % missing)
written = set(re.findall(r'rd_kafka_header_add\(\s*h,\s*"([^"]+)"', PROC))
written |= set(re.findall(r'hdr_int\(\s*h,\s*"([^"]+)"', PROC))
ev_hdrs = set(re.findall(r'"([a-z]+(?:-[a-z]+)+)"', read("commands/process.c")))
undocumented = sorted(h for h in written if h not in doc_headers)
ok(len(written) >= 8 and not undocumented,
   "every header the processor writes is in wire.md (%d)" % len(written),
   "undocumented: %s" % undocumented)
# events and results headers are named in prose: each must be in some header table or
# the events record section
ev_sec = section(HAND, "Events record")
for h in ("event-types", "schema", "src-partition", "src-offset", "command-id"):
    ok("`%s`" % h in ev_sec, "events record header %s documented" % h)
del ev_hdrs

# 3. fields: envelope, payloads, result, events record, rules record
codec_lits = literals(CODEC)
decide_lits = literals(DECIDE)
# the command fields the decider copies by their schema rows (F_CMD, core/bk_schema.c)
decide_lits |= set(re.findall(r'F_CMD\("([^"]+)"', read("core/bk_schema.c")))
env = [ticks(c[0]) for c in table_rows(section(HAND, "The envelope"), "field")]
env = [f.split(".")[-1] for t in env for f in t]
bad = [f for f in env if f not in codec_lits]
ok(len(env) >= 9 and not bad, "envelope fields are the codec's (%d)" % len(env), bad)

payload_fields, types = [], []
for cells in table_rows(section(HAND, "Payloads"), "command"):
    types += [t for t in ticks(cells[0]) if "." in t and not t.startswith(".")]
    for f in ticks(cells[1]):
        payload_fields.append(f)
bad = sorted({f for f in payload_fields if f not in decide_lits})
ok(len(payload_fields) >= 60 and not bad,
   "payload fields are keys the decider reads (%d)" % len(payload_fields), bad)
gen = subprocess.run([BK, "wire", "--section", "commands"], capture_output=True, text=True).stdout
known_types = set(re.findall(r"^\| `([a-z_.]+)` \|", gen, flags=re.M))
bad = sorted({t for t in types if t not in known_types})
ok(len(types) >= 25 and not bad, "payload table command types exist (%d)" % len(types), bad)
public = {t for t in known_types if not re.search(r"^\| `%s` \|.*\| yes \|$" % re.escape(t),
                                                    gen, flags=re.M)}
# milestone.deliver, .approve ... are written as `.approve`: count the short forms too
short = set(ticks(section(HAND, "Payloads")))
covered = {t for t in public if t in types or "." + t.split(".", 1)[1] in short}
ok(covered == public, "every public command type has a payload row",
   "no row: %s" % sorted(public - covered))

for title, want in (("Result", 7), ("Events record", 12)):
    fields = [f for c in table_rows(section(HAND, title), "field") for f in ticks(c[0])]
    bad = [f for f in fields if f not in codec_lits]
    ok(len(fields) == want and not bad, "%s fields are the codec's (%d)" % (title, len(fields)),
       bad)
rules = re.findall(r"\b([a-z_]+)\??\b", section(HAND, "Rules record").split("Value:")[1]
                   .split("(optional")[0])
rules = [w for w in rules if "_" in w or w in ("rules", "recent")]
bad = [w for w in rules if w not in codec_lits]
ok(len(rules) >= 8 and not bad, "rules record fields are the codec's (%d)" % len(rules), bad)

# 4. DLQ reasons
dlq_sec = section(HAND, "DLQ record")
prefixes = [p.split(" ...")[0].split(":")[0] for p in ticks(re.split(r"\(the\s+processor\s+failed", dlq_sec.split("prefixes:")[1])[0])
            if not p.startswith("orig") and "/" not in p]
reason_text = PROC + AUTH
bad = [p for p in prefixes if p not in reason_text]
ok(len(prefixes) >= 12 and not bad, "DLQ reason prefixes are the processor's (%d)"
   % len(prefixes), bad)

# 5. error codes named in backticks anywhere in the hand-written text exist
errs = subprocess.run([BK, "wire", "--section", "errors"], capture_output=True,
                      text=True).stdout
codes = set(re.findall(r"^\| `([a-z_]+)` \|", errs, flags=re.M))
ok(len(codes) >= 15, "bookingctl wire lists the error codes (%d)" % len(codes))
named = {w for w in ticks(HAND) if w.endswith(("_failed", "_conflict", "_mismatch", "_order",
                                                "_transition", "_exists", "_allowed"))}
bad = sorted(named - codes)
ok(named and not bad, "error codes named in the prose exist (%s)" % ", ".join(sorted(named)),
   bad)

# 6. the Seals section is there for the lead
ok(re.search(r"^## Seals\n", DOC, flags=re.M) is not None, "wire.md has a Seals section")

print("1..%d" % n)
sys.exit(1 if failed else 0)
