# SPDX-License-Identifier: GPL-2.0-only
# Operations: the control client, the libraries behind the control socket,
# metrics and systemd notification, and `make install`.
LDLIBS += -lsystemd -lmicrohttpd

all: $(O)/echosrvctl
integration: $(O)/echosrvctl

$(O)/echosrvctl: $(O)/tools/echosrvctl.o
	$(CC) $(LDFLAGS) -o $@ $^

# Everything lands under $(DESTDIR)$(PREFIX).  The units name the binary
# by its installed path, so /usr/local/ in them is rewritten to $(PREFIX)/.
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
UNITDIR  ?= $(PREFIX)/lib/systemd/system
DOCDIR   ?= $(PREFIX)/share/doc/echosrv

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(O)/echosrv $(O)/echosrvctl $(DESTDIR)$(BINDIR)/
	if [ -x $(O)/echosrv-bench ]; then install -m 0755 $(O)/echosrv-bench $(DESTDIR)$(BINDIR)/; fi
	install -m 0644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	set -e; for p in $(wildcard man/*.1); do \
		install -d $(DESTDIR)$(MANDIR)/man1; install -m 0644 $$p $(DESTDIR)$(MANDIR)/man1/; done
	set -e; for u in dist/systemd/echosrv.service dist/systemd/echosrv.socket; do \
		sed 's|/usr/local/bin/|$(BINDIR)/|g' $$u > $(DESTDIR)$(UNITDIR)/$${u##*/}; \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/}; done
	install -m 0644 docs/operations.md $(DESTDIR)$(DOCDIR)/
