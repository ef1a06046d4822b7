# SPDX-License-Identifier: GPL-2.0-only
# The io_uring engine (src/engine/uring/) links liburing
# (Debian liburing-dev, in scripts/deps.sh).  Its test helper
# tests/helpers/no_uring.c (io_uring refused by seccomp) is built by the
# generic helper rule in the Makefile.
LDLIBS += -luring
