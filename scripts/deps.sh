#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Install the Debian packages echosrv needs to build and test, and only the
# ones that are missing, so that `make` on a fresh Debian 12 machine works
# without a manual step and a machine that has them all is not touched.
# Why each package is there is written in README.md ("Dependencies").
set -eu

PKGS="build-essential pkg-config liburing-dev libsystemd-dev systemtap-sdt-dev
libcmocka-dev python3 python3-pytest python3-pytest-timeout iproute2"
# Operations: metrics endpoint, man page lint, USDT and metrics tests.
PKGS="$PKGS libmicrohttpd-dev mandoc bpftrace prometheus"
# The sockmap engine: its BPF program (clang -target bpf) and loader.
PKGS="$PKGS clang libbpf-dev"
# Scale and reliability: nftables for the network-namespace fault tests,
# valgrind for make valgrind-check.
PKGS="$PKGS nftables valgrind"
[ "${1:-}" = "--bench" ] && PKGS="$PKGS gnuplot-nox"
# make fuzz: clang with libFuzzer and its sanitizer runtimes.
[ "${1:-}" = "--fuzz" ] && PKGS="$PKGS libclang-rt-14-dev"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
