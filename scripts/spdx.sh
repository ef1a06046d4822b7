#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Give every source file its SPDX-License-Identifier line (see LICENSE and
# README "License"), or with --check only name the files that lack one and
# fail.  The line goes first, or right after a #! line, so that each file's
# own header comment (and a Python module's docstring) follows unchanged.
set -eu
cd "$(dirname "$0")/.."
ID="SPDX-License-Identifier: GPL-2.0-only"

files() {
	git ls-files -- 'src/*.[ch]' 'tools/*.[ch]' 'bench/*.[ch]' 'bench/*.py' \
		'bpf/*.c' 'fuzz/*.[ch]' 'tests/*.c' 'tests/*.py' 'scripts/*' \
		'.ci/run' Makefile 'mk/*.mk'
}

missing=""
for f in $(files); do
	head -3 "$f" | grep -q "SPDX-License-Identifier:" && continue
	missing="$missing $f"
done
if [ "${1:-}" = "--check" ]; then
	[ -z "$missing" ] && exit 0
	echo "spdx: no SPDX-License-Identifier line in:$missing" >&2
	exit 1
fi

for f in $missing; do
	case "$f" in
	*.c|*.h) line="/* $ID */" ;;
	*)       line="# $ID" ;;
	esac
	tmp="$f.spdx.$$"
	if head -1 "$f" | grep -q '^#!'; then
		{ head -1 "$f"; echo "$line"; tail -n +2 "$f"; } > "$tmp"
	else
		{ echo "$line"; cat "$f"; } > "$tmp"
	fi
	chmod --reference="$f" "$tmp"
	mv "$tmp" "$f"
	echo "spdx: $f"
done
