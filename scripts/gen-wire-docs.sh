#!/usr/bin/env bash
# scripts/gen-wire-docs.sh - regenerate the parts of docs/wire.md the code holds as data
# (command types and roles, error codes, partition vectors: `bookingctl wire`), between
# its GENERATED markers; the hand-written text around them is left as it is and checked
# against the code by tests/test_wire_doc.sh.
#
# Usage: scripts/gen-wire-docs.sh [--check] [BOOKINGCTL]   (default: build/cli/bookingctl)
#   --check  change nothing; exit 1 when docs/wire.md is out of date
set -euo pipefail
# shellcheck source=scripts/gen-doc-lib.sh
. "$(dirname "$0")/gen-doc-lib.sh"

gd_start gen-wire-docs docs/wire.md "$@"
"$BK" wire >"$T/generated.md"
gd_splice "$T/generated.md" "$T/wire.md"
gd_finish "$T/wire.md"
