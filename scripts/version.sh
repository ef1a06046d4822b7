#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Print echosrv's version.  In a git tree of its own: from `git describe`,
# so a build says which commit it is:
#   v0.1.0 tagged here         0.1.0
#   5 commits after the tag    0.1.0-5-g1a2b3c4 (and -dirty with local edits)
#   no v* tag yet              0.1.0+g1a2b3c4, the VERSION file and the commit
# Anywhere else (a release tarball, or a tree unpacked inside some other git
# repository): the VERSION file alone.
# --commit prints the commit instead (12 hex digits; "unknown" outside a
# git tree of its own): echosrv_build_info's commit label.
set -eu
cd "$(dirname "$0")/.."
base=$(cat VERSION)
top=$(git rev-parse --show-toplevel 2>/dev/null || true)
if [ "${1:-}" = --commit ]; then
	if [ -n "$top" ] && [ "$(cd "$top" && pwd -P)" = "$(pwd -P)" ] &&
	   c=$(git rev-parse --short=12 HEAD 2>/dev/null); then
		echo "$c"
	else
		echo unknown
	fi
	exit 0
fi
if [ -n "$top" ] && [ "$(cd "$top" && pwd -P)" = "$(pwd -P)" ] &&
   d=$(git describe --tags --always --dirty --match 'v[0-9]*' 2>/dev/null); then
	case "$d" in
	v[0-9]*) echo "${d#v}" ;;
	*)       echo "$base+g$d" ;;
	esac
else
	echo "$base"
fi
