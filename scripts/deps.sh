#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Install the Debian packages echosrv needs, and only the ones that are
# missing, so that `make run` / `make check` on a fresh Debian 12 machine
# work without a manual step and a machine that has them all is not touched.
#
#   scripts/deps.sh [SET...]   SET: build (the default), test, fuzz, bench,
#                              valgrind, deb, deploy, all
#   scripts/deps.sh --list SET...   print the packages of the sets, one a line
#
# build: what building and running echosrv needs (`make run`).  test: build
# plus the test tools (`make check`).  fuzz, bench, valgrind: build (valgrind:
# test) plus what `make fuzz`, `make bench`, `make valgrind-check` need;
# deb: build plus the Debian packaging tools (`make deb`); deploy: deb and
# test plus what the image, the systemd test and the Kubernetes check need
# (`make image`, `make check-systemd`, `make check-kube`).
# NO_DEPS=1: do nothing (you installed the packages yourself).
# DEPS_DRY_RUN=1: say what would be installed, install nothing.
# Without dpkg or apt-get the script names the packages to install (Debian
# names, with what each is for) and fails; install them, then use NO_DEPS=1.
# README.md ("Dependencies") says why each package is there.
set -eu

[ "${NO_DEPS:-}" = 1 ] && exit 0

# set  package  what it is for (for someone finding the equivalent elsewhere)
TABLE='
build build-essential        C compiler (gcc), make, binutils (readelf)
build pkg-config             pkg-config
build liburing-dev           liburing headers and library (io_uring engine)
build libsystemd-dev         libsystemd headers and library (sd_notify, socket activation)
build systemtap-sdt-dev      <sys/sdt.h> for USDT probes
build libmicrohttpd-dev      libmicrohttpd headers and library (metrics endpoint)
build clang                  clang with the BPF target (the sockmap BPF program)
build libbpf-dev             libbpf headers and library (BPF loader)
test  libcmocka-dev          cmocka (unit tests)
test  python3                Python 3 (integration tests)
test  python3-pytest         pytest
test  python3-pytest-timeout pytest-timeout plugin
test  iproute2               ip, ss, tc (network-namespace tests)
test  nftables               nft (packet loss and blackholes in the netns tests)
test  mandoc                 mandoc -T lint (man page test)
test  bpftrace               bpftrace (USDT probe test)
test  prometheus             promtool: check metrics (metrics tests), check and test rules (make rules-check)
test  systemd                systemd-socket-activate (socket activation tests)
test  haproxy                haproxy in front of echosrv (PROXY protocol tests)
fuzz  libclang-rt-14-dev     libFuzzer and sanitizer runtimes for clang 14
bench python3                Python 3 (bench/run.py)
bench python3-matplotlib     matplotlib (the benchmark plots, bench/plot.py)
bench iproute2               ip netns, ss (the benchmark network namespaces)
bench socat                  socat, a peer: its TCP echo (PIPE)
bench xinetd                 xinetd, a peer: its built-in echo service
bench ncat                   ncat, a peer: --exec /bin/cat
valgrind valgrind            valgrind memcheck (make valgrind-check)
deb   dpkg-dev               dpkg-buildpackage (make deb)
deb   debhelper              dh and the dh_* helpers debian/rules uses (make deb)
deb   lintian                the Debian package checker (make deb runs it on the .deb)
deploy mmdebstrap            Debian roots (the systemd test, the image)
deploy buildah               builds the OCI image without a daemon (make image)
deploy kubernetes-client     kubectl kustomize (make check-kube); any kubectl will do
deploy python3-kubernetes    the Kubernetes API object models (checks the manifests fields)
deploy python3-yaml          reads the rendered manifests
'

# Packages whose command, from whichever package, is all that is needed:
# a machine with another kubectl (a cloud SDK's, say) must not have Debian's
# forced next to it, which would conflict with it.
command_for() {
	case "$1" in
	kubernetes-client) echo kubectl ;;
	esac
}

# The sets each set takes in.
expand() {
	case "$1" in
	build)    echo build ;;
	test)     echo build test ;;
	fuzz)     echo build fuzz ;;
	bench)    echo build bench ;;
	valgrind) echo build test valgrind ;;
	deb)      echo build deb ;;
	deploy)   echo build test deb deploy ;;
	all)      echo build test fuzz bench valgrind deb deploy ;;
	*)        echo "deps: unknown set '$1' (build, test, fuzz, bench, valgrind, deb, deploy, all)" >&2
	          exit 2 ;;
	esac
}

list=0
if [ "${1:-}" = "--list" ]; then
	list=1
	shift
fi
[ $# -gt 0 ] || set -- build
sets=""
for a in "$@"; do
	sets="$sets $(expand "${a#--}")"     # --fuzz, --bench: older spelling
done

# Packages of the chosen sets, each once, in the table's order.
PKGS=$(echo "$TABLE" | awk -v sets="$sets" '
	BEGIN { n = split(sets, s, " "); for (i = 1; i <= n; i++) want[s[i]] = 1 }
	NF && ($1 in want) && !seen[$2]++ { print $2 }')

if [ "$list" = 1 ]; then
	echo "$PKGS"
	exit 0
fi

describe() {
	for p in "$@"; do
		echo "$TABLE" | awk -v p="$p" '$2 == p {
			d = $0; sub(/^[^ ]+ +[^ ]+ +/, "", d); printf "  %-24s %s\n", p, d; exit }'
	done >&2
}

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps: no dpkg here, so nothing was checked or installed.  echosrv needs" \
	     "these, by their Debian 12 package names:" >&2
	# shellcheck disable=SC2086
	describe $PKGS
	echo "deps: install the equivalents with your system's package manager," \
	     "then run make with NO_DEPS=1." >&2
	exit 1
fi

missing=""
for p in $PKGS; do
	c=$(command_for "$p")
	[ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && continue
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "${DEPS_DRY_RUN:-}" = 1 ]; then
	echo "deps: would install:$missing" >&2
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: these Debian packages are missing and there is no apt-get to" \
	     "install them:" >&2
	# shellcheck disable=SC2086
	describe $missing
	echo "deps: install them (or their equivalents), then run make with NO_DEPS=1." >&2
	exit 1
fi

echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
