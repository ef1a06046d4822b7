# The io_uring engine (src/engine_uring.c, uring_*.c) links liburing
# (Debian liburing-dev, in scripts/deps.sh).  tests/helpers/no_uring runs a
# command under a seccomp filter that refuses io_uring_setup, so the tests
# can check the fallback to epoll for real.
LDLIBS += -luring

$(O)/no_uring: tests/helpers/no_uring.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $<

integration: $(O)/no_uring
