# SPDX-License-Identifier: GPL-2.0-only
# Deployment beyond the .deb (issue 16; docs/deploy.md):
#
#   make image        the OCI image, offline, with buildah from an mmdebstrap
#                     root (scripts/image.sh): build/image/echosrv-VERSION.oci.tar
#                     and localhost/echosrv:VERSION in build/image/storage
#   make check-image  builds it and checks it (tests/integration/test_image.py:
#                     its configuration, and its root file system run as the
#                     image's user under unshare + chroot: it starts and echoes)
#   make check-systemd  the .deb under systemd as PID 1 in a fresh Debian root
#                     (tests/integration/test_systemd.py; the root is cached
#                     in build/roots/, the .deb is build/deb/'s or `make deb`'s)
#   make check-kube   renders deploy/kubernetes/ with kubectl kustomize and
#                     checks every object (tests/integration/test_kube.py)
#
# All need root and the deploy set of scripts/deps.sh; CI runs the checks.
IMAGE_OUT := build/image

.PHONY: image check-image check-systemd check-kube deps-deploy
deps-deploy:
	@sh scripts/deps.sh deploy

image: deps-deploy all
	sh scripts/image.sh $(O) $(VERSION) $(IMAGE_OUT)

check-image: image
	ECHOSRV_TEST_IMAGE=1 ECHOSRV_BUILD=$(O) $(PYTEST) tests/integration/test_image.py

check-systemd: deps-deploy
	ECHOSRV_TEST_SYSTEMD=1 ECHOSRV_BUILD=$(O) $(PYTEST) -rsx tests/integration/test_systemd.py

check-kube: deps-deploy all
	ECHOSRV_TEST_KUBE=1 ECHOSRV_BUILD=$(O) $(PYTEST) tests/integration/test_kube.py
