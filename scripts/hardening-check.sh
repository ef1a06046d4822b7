#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Check that each ELF binary named carries the hardening the Makefile asks
# for, by reading it with readelf (binutils), and fail naming what is
# missing:
#   PIE        ELF type DYN and DT_FLAGS_1 with PIE
#   RELRO      a GNU_RELRO program header
#   BIND_NOW   DT_FLAGS with BIND_NOW or DT_FLAGS_1 with NOW
#   stack protector  __stack_chk_fail imported
#   fortify    some __*_chk function imported (--no-fortify: not checked,
#              for the sanitizer builds, which leave FORTIFY out)
set -eu
fortify=1
if [ "${1:-}" = "--no-fortify" ]; then
	fortify=0
	shift
fi
[ $# -gt 0 ] || { echo "usage: $0 [--no-fortify] BINARY..." >&2; exit 2; }
command -v readelf >/dev/null || { echo "hardening-check: needs readelf (Debian binutils)" >&2; exit 2; }

bad=0
for b in "$@"; do
	[ -f "$b" ] || { echo "hardening-check: $b: no such file" >&2; bad=1; continue; }
	missing=""
	hdr=$(readelf -hW "$b")
	dyn=$(readelf -dW "$b")
	phdr=$(readelf -lW "$b")
	syms=$(readelf --dyn-syms -W "$b" | awk '$7 == "UND" { print $8 }')
	echo "$hdr" | grep -Eq 'Type:[[:space:]]+DYN' &&
		echo "$dyn" | grep -Eq '\(FLAGS_1\).*PIE' || missing="$missing PIE"
	echo "$phdr" | grep -q 'GNU_RELRO' || missing="$missing RELRO"
	echo "$dyn" | grep -Eq '\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW' ||
		missing="$missing BIND_NOW"
	echo "$syms" | grep -q '^__stack_chk_fail' || missing="$missing stack-protector"
	if [ "$fortify" = 1 ]; then
		echo "$syms" | grep -v '^__stack_chk_fail' | grep -Eq '^__[a-z_0-9]+_chk(@|$)' ||
			missing="$missing fortify"
	fi
	if [ -n "$missing" ]; then
		echo "hardening-check: $b: missing:$missing" >&2
		bad=1
	else
		echo "hardening-check: $b: PIE RELRO BIND_NOW stack-protector$([ "$fortify" = 1 ] && echo " fortify")"
	fi
done
exit $bad
