#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Build echosrv's OCI image with buildah, offline: no base image is pulled.
# The root file system is made here by mmdebstrap from Debian packages (the
# extract variant: the run-time libraries echosrv and echosrvctl link
# against, with their dependencies, and nothing else: no shell, no package
# manager), the hardened binaries from $O/ are copied in, and buildah
# commits it as one layer on `scratch`.
#
#   scripts/image.sh O VERSION OUTDIR     (make image: O=build, OUTDIR=build/image)
#
# Results in OUTDIR: echosrv-VERSION.oci.tar (an OCI archive: `podman load -i`,
# `skopeo copy oci-archive:... docker-daemon:...`), and the image also stays
# in OUTDIR/storage, buildah's store for this tree (vfs driver, so it needs
# neither overlayfs nor a daemon), as localhost/echosrv:VERSION.
# IMAGE_SOURCE names the source in the image's labels (default: the git
# remote's URL, or "echosrv source tree").
set -eu

O=$1 VERSION=$2 OUT=${3:?usage: image.sh O VERSION OUTDIR}
# An image tag allows letters, digits, "_", "." and "-" only: the version's
# "+" (0.1.0+g1234abc, from git describe) becomes "-"; the label keeps it.
TAG=$(echo "$VERSION" | tr -c 'A-Za-z0-9_.\n-' '-')
# A user and group of their own, not root: numeric, so that a Kubernetes
# runAsNonRoot check can see it is not 0 without reading /etc/passwd.
UID_=65532
SUITE=bookworm
LIBS=libc6,liburing2,libbpf1,libmicrohttpd12,libsystemd0

for b in "$O/echosrv" "$O/echosrvctl"; do
	[ -x "$b" ] || { echo "image: $b is missing (make O=$O first)" >&2; exit 1; }
done
# Every library the binaries need must come from the packages above.
missing=$(ldd "$O/echosrv" "$O/echosrvctl" | awk '/not found/ { print $1 }')
[ -z "$missing" ] || { echo "image: unresolved libraries: $missing" >&2; exit 1; }

ST="--root $OUT/storage --runroot $OUT/run --storage-driver vfs"
ROOTFS=$OUT/rootfs
rm -rf "$ROOTFS" "$OUT/run"
mkdir -p "$ROOTFS"

# The libraries, without what a server never reads (documentation but the
# copyright files, man pages, translations, character-set converters).
# Three tries: the packages come from the network, and one mirror hiccup
# should not fail a build (each failure is printed).
libs() {
	mmdebstrap --quiet --variant=extract --include=$LIBS \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-exclude=/usr/share/lintian/*' \
		--dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*' \
		$SUITE "$ROOTFS"
}
try=1
until libs; do
	[ $try -lt 3 ] || { echo "image: mmdebstrap failed $try times" >&2; exit 1; }
	echo "image: mmdebstrap failed (try $try of 3); again in 10 s" >&2
	try=$((try + 1))
	sleep 10
	rm -rf "$ROOTFS" && mkdir -p "$ROOTFS"
done
# mmdebstrap's own apt and dpkg scaffolding: nothing in the image runs them.
rm -rf "${ROOTFS:?}"/etc/apt "${ROOTFS:?}"/etc/dpkg "${ROOTFS:?}"/var/cache/apt \
	"${ROOTFS:?}"/var/lib/apt "${ROOTFS:?}"/var/log/apt "${ROOTFS:?}"/dev/*
install -d -m 0755 "$ROOTFS/usr/bin"
install -m 0755 "$O/echosrv" "$O/echosrvctl" "$ROOTFS/usr/bin/"
install -d -m 0755 "$ROOTFS/usr/share/doc/echosrv"
install -m 0644 LICENSE "$ROOTFS/usr/share/doc/echosrv/copyright"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\necho:x:%d:%d:echosrv:/nonexistent:/usr/sbin/nologin\n' \
	$UID_ $UID_ > "$ROOTFS/etc/passwd"
printf 'root:x:0:\necho:x:%d:\n' $UID_ > "$ROOTFS/etc/group"
# The control socket's directory, writable by the server's user (a
# read-only root file system mounts an emptyDir or tmpfs over it).
install -d -m 0755 -o $UID_ -g $UID_ "$ROOTFS/run/echosrv"
install -d -m 1777 "$ROOTFS/tmp"

source=${IMAGE_SOURCE:-$(git config --get remote.origin.url 2>/dev/null || echo "echosrv source tree")}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)

# shellcheck disable=SC2086
# One image in this store at a time: the one just built.
# shellcheck disable=SC2086
buildah $ST rmi --all >/dev/null 2>&1 || true
# shellcheck disable=SC2086
ctr=$(buildah $ST from scratch)
trap 'buildah $ST rm "$ctr" >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC2086
# As a tarball, which buildah add unpacks with the owners it records
# (buildah copy would make everything root's, the control socket's
# directory included).
tar -C "$ROOTFS" --numeric-owner -cf "$OUT/rootfs.tar" .
# shellcheck disable=SC2086
buildah $ST add --quiet "$ctr" "$OUT/rootfs.tar" / >/dev/null
rm -f "$OUT/rootfs.tar"
# Foreground (echosrv never daemonizes), every worker, metrics and the
# health endpoints on 9407 for Prometheus and the kubelet's probes; the
# drain on SIGTERM is the container's stop (podman/docker stop, a pod's
# termination), so the stop signal says so rather than leaving it implied.
# shellcheck disable=SC2086
buildah $ST config \
	--user $UID_:$UID_ \
	--workingdir / \
	--port 40007/tcp --port 9407/tcp \
	--entrypoint '["/usr/bin/echosrv"]' \
	--cmd '["--listen", "[::]:40007", "--workers", "auto", "--metrics", "[::]:9407", "--ctl", "/run/echosrv/ctl"]' \
	--stop-signal SIGTERM \
	--env PATH=/usr/bin \
	--env ECHOSRV_CTL=/run/echosrv/ctl \
	--label org.opencontainers.image.title=echosrv \
	--label org.opencontainers.image.description="TCP echo server (epoll, io_uring, eBPF sockmap)" \
	--label org.opencontainers.image.version="$VERSION" \
	--label org.opencontainers.image.revision="$revision" \
	--label org.opencontainers.image.source="$source" \
	--label org.opencontainers.image.licenses=GPL-2.0-only \
	--label org.opencontainers.image.created="$created" \
	"$ctr"
# shellcheck disable=SC2086
buildah $ST commit --quiet --format oci --rm "$ctr" "localhost/echosrv:$TAG" >/dev/null
trap - EXIT
rm -f "$OUT"/echosrv-*.oci.tar
# shellcheck disable=SC2086
buildah $ST push --quiet "localhost/echosrv:$TAG" \
	"oci-archive:$OUT/echosrv-$TAG.oci.tar:localhost/echosrv:$TAG"
rm -rf "$ROOTFS"
echo "image: localhost/echosrv:$TAG in $OUT/storage;" \
	"$OUT/echosrv-$TAG.oci.tar ($(du -k "$OUT/echosrv-$TAG.oci.tar" | cut -f1) KiB)"
