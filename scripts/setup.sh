#!/usr/bin/env bash
# scripts/setup.sh - the set-up shared by scripts/test and scripts/demo: install the Debian
# packages that are missing (apt-get, only when something is missing) and build with meson.
# Source it for the functions (bk_install_deps, bk_build, bk_step), or run it to install and
# build ./build in one go.

BK_ROOT=${BK_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

# Debian packages the project needs; "a|b" accepts either (names differ across releases).
BK_PACKAGES=(meson ninja-build pkg-config gcc librdkafka-dev libpq-dev
	"libmsgpack-dev|libmsgpack-c-dev" libsodium-dev check libjansson-dev postgresql tzdata
	graphviz clang-format jq python3-confluent-kafka python3-nacl python3-msgpack
	curl libmicrohttpd-dev libsystemd-dev prometheus help2man systemd
	clang "libclang-rt-14-dev|libclang-rt-dev") # clang and libFuzzer: scripts/fuzz

bk_log() { printf '==> %s\n' "$*" >&2; }

# bk_step TITLE: a visible heading for a step of a script.
bk_step() { printf '\n=== %s ===\n' "$*" >&2; }

_bk_pkg_installed() {
	dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

_bk_pkg_available() {
	local cand
	cand=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
	[ -n "$cand" ] && [ "$cand" != "(none)" ]
}

# Print the missing packages (for alternatives, the first one the archive has).
bk_missing_packages() {
	local spec alt found
	local -a alts
	for spec in "${BK_PACKAGES[@]}"; do
		found=0
		IFS='|' read -r -a alts <<<"$spec"
		for alt in "${alts[@]}"; do
			if _bk_pkg_installed "$alt"; then
				found=1
				break
			fi
		done
		[ "$found" = 1 ] && continue
		if [ "${#alts[@]}" -gt 1 ]; then
			for alt in "${alts[@]}"; do
				if _bk_pkg_available "$alt"; then
					printf '%s\n' "$alt"
					found=1
					break
				fi
			done
			[ "$found" = 1 ] && continue
		fi
		printf '%s\n' "${alts[0]}"
	done
}

# Install what is missing. Root runs apt-get directly; others use sudo when available.
bk_install_deps() {
	local missing sudo=()
	if ! command -v dpkg-query >/dev/null 2>&1; then
		bk_log "not a Debian system: install by hand: ${BK_PACKAGES[*]}"
		return 0
	fi
	# apt-cache answers about alternatives only after an update; the first pass may
	# name a package of an alternative that the archive lacks: it is fixed below.
	mapfile -t missing < <(bk_missing_packages)
	if [ "${#missing[@]}" -eq 0 ]; then
		bk_log "all Debian packages present"
		return 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			sudo=(sudo)
		else
			bk_log "missing packages (${missing[*]}) and not root, no sudo: install them by hand"
			return 1
		fi
	fi
	bk_log "installing missing packages: ${missing[*]}"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
	mapfile -t missing < <(bk_missing_packages)
	[ "${#missing[@]}" -eq 0 ] && return 0
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}" || return 1
}

# bk_build DIR [MESON_OPTION...]: configure DIR when needed (reconfigure otherwise, so new
# source files are picked up) and build it.
bk_build() {
	local dir=${1:?usage: bk_build DIR [meson options]}
	shift
	(
		cd "$BK_ROOT" || exit 1
		log=$(mktemp)
		trap 'rm -f "$log"' EXIT
		if [ -f "$dir/build.ninja" ]; then
			meson setup --reconfigure "$dir" "$@" >"$log" 2>&1 ||
				meson setup --wipe "$dir" "$@" >"$log" 2>&1 || {
				cat "$log" >&2
				exit 1
			}
		else
			rm -rf "$dir"
			meson setup "$dir" "$@" >"$log" 2>&1 || {
				cat "$log" >&2
				exit 1
			}
		fi
		ninja -C "$dir"
	)
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	bk_step "packages"
	bk_install_deps
	bk_step "build (build/)"
	bk_build build
fi
