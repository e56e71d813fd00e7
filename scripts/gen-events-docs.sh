#!/usr/bin/env bash
# scripts/gen-events-docs.sh - regenerate the event reference of docs/events.md from the
# schema table of core/bk_schema.c (versions and payload fields: `bookingctl events`), between
# its GENERATED markers; the hand-written text around them is left as it is. The test
# events_doc (tests/meson.build) runs --check.
#
# Usage: scripts/gen-events-docs.sh [--check] [BOOKINGCTL]   (default: build/cli/bookingctl)
#   --check  change nothing; exit 1 when docs/events.md is out of date
set -euo pipefail
# shellcheck source=scripts/gen-doc-lib.sh
. "$(dirname "$0")/gen-doc-lib.sh"

gd_start gen-events-docs docs/events.md "$@"
"$BK" events >"$T/generated.md"
gd_splice "$T/generated.md" "$T/events.md"
gd_finish "$T/events.md"
