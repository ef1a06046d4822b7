# SPDX-License-Identifier: GPL-2.0-only
# The Debian package (debian/, debhelper compat 13).
#
#   make check-deb  builds the package and checks it (tests/integration/test_deb.py:
#               contents, maintainer scripts, lintian); CI runs it
#   make deb    dpkg-buildpackage -us -uc -b, then lintian on the result;
#               the .deb (echosrv_VERSION_ARCH.deb, with echosrv-dbgsym_VERSION_ARCH.deb
#               beside it), .buildinfo and .changes land in build/deb/
#
# dpkg-buildpackage writes its results to the parent directory of the tree;
# the .changes file names each of them, and this moves exactly those (and the
# .changes) into build/deb/, so nothing is left outside the tree.  The
# package builds in build/debian/ (debian/rules), apart from build/.
DEB_OUT  := build/deb

.PHONY: deb check-deb
deb:
	@sh scripts/deps.sh deb
	@up=$$(cat VERSION); ch=$$(dpkg-parsechangelog -S Version); \
	case "$$ch" in "$$up"-*) ;; *) echo "deb: debian/changelog is at $$ch but VERSION says $$up;" \
		"add a changelog entry (dch -v $$up-1)" >&2; exit 1 ;; esac
	dpkg-buildpackage -us -uc -b
	@set -e; changes=../$$(dpkg-parsechangelog -S Source)_$$(dpkg-parsechangelog -S Version | sed 's/^[0-9]*://')_$$(dpkg-architecture -qDEB_HOST_ARCH).changes; \
	rm -rf $(DEB_OUT); mkdir -p $(DEB_OUT); \
	for f in $$(sed -n '/^Files:/,/^[^ ]/s/^ [0-9a-f]* [0-9]* [^ ]* [^ ]* //p' $$changes); do \
		mv ../$$f $(DEB_OUT)/; done; \
	mv $$changes $(DEB_OUT)/; \
	echo "deb: in $(DEB_OUT)/:"; ls $(DEB_OUT)
	lintian --fail-on error,warning $(DEB_OUT)/*.deb

check-deb:
	ECHOSRV_TEST_DEB=1 ECHOSRV_BUILD=$(O) $(PYTEST) tests/integration/test_deb.py
