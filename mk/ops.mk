# SPDX-License-Identifier: GPL-2.0-only
# Operations: the control client, the libraries behind the control socket,
# metrics and systemd notification, and `make install`.
LDLIBS += -lsystemd -lmicrohttpd

all: $(O)/echosrvctl
integration: $(O)/echosrvctl

$(O)/echosrvctl: $(O)/tools/echosrvctl.o $(O)/tools/ctl_table.o
	$(CC) $(LDFLAGS) -o $@ $^

# Everything lands under $(DESTDIR)$(PREFIX), but the configuration file in
# $(DESTDIR)$(SYSCONFDIR) (/etc).  The units and the installed docs name the
# binary and the file by their installed paths: /usr/local/bin/ and
# /etc/echosrv/ in them are rewritten to $(BINDIR)/ and $(SYSCONFDIR)/echosrv/.
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
UNITDIR  ?= $(PREFIX)/lib/systemd/system
DOCDIR   ?= $(PREFIX)/share/doc/echosrv
SYSCONFDIR ?= /etc
INST_PATHS := sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/etc/echosrv/|$(SYSCONFDIR)/echosrv/|g'
CONF     := $(DESTDIR)$(SYSCONFDIR)/echosrv/echosrv.conf

# What install puts where, named once so that uninstall removes exactly it.
INST_MAN8  := $(notdir $(wildcard man/*.8))
INST_MAN1  := $(notdir $(wildcard man/*.1))
INST_UNITS := echosrv.service echosrv@.service echosrv.socket
INST_DOCS  := operations.md

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(O)/echosrv $(O)/echosrvctl $(DESTDIR)$(BINDIR)/
	if [ -x $(O)/echosrv-bench ]; then install -m 0755 $(O)/echosrv-bench $(DESTDIR)$(BINDIR)/; fi
	install -m 0644 $(INST_MAN8:%=man/%) $(DESTDIR)$(MANDIR)/man8/
	set -e; for p in $(INST_MAN1); do \
		install -d $(DESTDIR)$(MANDIR)/man1; install -m 0644 man/$$p $(DESTDIR)$(MANDIR)/man1/; done
	set -e; for u in $(INST_UNITS); do \
		$(INST_PATHS) dist/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u; \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; done
	set -e; for d in $(INST_DOCS); do \
		$(INST_PATHS) docs/$$d > $(DESTDIR)$(DOCDIR)/$$d; chmod 0644 $(DESTDIR)$(DOCDIR)/$$d; done
	@# The operator's file is theirs: an existing one is never replaced.
	install -d $(DESTDIR)$(SYSCONFDIR)/echosrv
	if [ -e $(CONF) ]; then echo "install: keeping $(CONF)"; \
	else install -m 0644 dist/echosrv.conf $(CONF); fi

# Removes the files install wrote (same PREFIX, DESTDIR and *DIR), and the
# one directory that is echosrv's alone (DOCDIR) once it is empty; shared
# directories such as bin/ and man8/ stay.  Needs no build.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,echosrv echosrvctl echosrv-bench) \
		$(INST_MAN8:%=$(DESTDIR)$(MANDIR)/man8/%) $(INST_MAN1:%=$(DESTDIR)$(MANDIR)/man1/%) \
		$(INST_UNITS:%=$(DESTDIR)$(UNITDIR)/%) $(INST_DOCS:%=$(DESTDIR)$(DOCDIR)/%)
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true
	@# The configuration only while it is the shipped example, unedited.
	if cmp -s dist/echosrv.conf $(CONF); then rm -f $(CONF); \
		rmdir $(DESTDIR)$(SYSCONFDIR)/echosrv 2>/dev/null || true; \
	elif [ -e $(CONF) ]; then echo "uninstall: keeping $(CONF) (edited)"; fi
.PHONY: uninstall

# docs/architecture.png and .svg from docs/architecture.dot (graphviz).
.PHONY: diagram
diagram:
	@command -v dot >/dev/null || { echo "make diagram needs graphviz (apt-get install graphviz)"; exit 1; }
	dot -Tsvg docs/architecture.dot -o docs/architecture.svg
	dot -Tpng -Gdpi=80 docs/architecture.dot -o docs/architecture.png
