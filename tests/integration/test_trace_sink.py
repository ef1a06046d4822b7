# SPDX-License-Identifier: GPL-2.0-only
"""A log sink that stops reading never stalls the server.

The sink is a FIFO whose reader the test holds open but does not read: as
stderr (a paused `| less`, a stuck log shipper) or as --trace-file.  The pipe
is shrunk to one page so it fills after a few lines.  With CONN tracing on,
thousands of connections must all be echoed while the sink is blocked, the
dropped lines must be counted in `echosrvctl stats` and the metrics, one line
must report them once the sink is read again, and a drain and stop must
finish while the sink is blocked again."""
import fcntl
import os
import re
import signal
import socket

import pytest

from conftest import echo_roundtrip, wait_for
from ops_common import metric, scrape, stats

F_SETPIPE_SZ = 1031
CONNS = 3000
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z [A-Z]+ ")
DROPPED = re.compile(r" WARNING dropped (\d+) log lines?: the log output did not keep up$",
                     re.M)
SCALE = float(os.environ.get("ECHOSRV_TIMEOUT_SCALE", "1"))


class Sink:
    """The read end of a FIFO, read only when the test says so."""

    def __init__(self, path):
        self.path = str(path)
        os.mkfifo(self.path)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        fcntl.fcntl(self.fd, F_SETPIPE_SZ, 4096)
        self.data = bytearray()
        self.eof = False

    def read(self):
        """Take what the pipe holds now; the text read so far."""
        while not self.eof:
            try:
                part = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not part:
                self.eof = True
            self.data += part
        return self.data.decode(errors="replace")

    def close(self):
        os.close(self.fd)


def _echo_one(srv, i):
    """One connection, echoed byte-exact; a stalled server fails it in
    10 s (scaled) rather than hanging the test."""
    payload = b"conn %d " % i * 3
    with socket.create_connection((srv.host, srv.port), timeout=10 * SCALE) as s:
        s.sendall(payload)
        got = b""
        try:
            while len(got) < len(payload):
                part = s.recv(len(payload) - len(got))
                if not part:
                    break
                got += part
        except socket.timeout:
            pytest.fail("connection %d: no echo in %.0f s (a worker stalled on the log?)"
                        % (i, 10 * SCALE))
        assert got == payload, "connection %d" % i


def _dropped_now(ctl_path):
    return stats(ctl_path)["trace_lines_dropped"]


@pytest.mark.parametrize("sink_kind", ["stderr", "trace-file"])
def test_blocked_log_sink_never_stalls_echo_or_stop(start_server, engine, tmp_path, sink_kind):
    _blocked_sink(start_server, engine, tmp_path, sink_kind, workers=1)


@pytest.mark.workers
def test_blocked_log_sink_with_two_workers(start_server, engine, tmp_path):
    """Several threads log into the queue at once (also run under TSan)."""
    _blocked_sink(start_server, engine, tmp_path, "stderr", workers=2)


def _blocked_sink(start_server, engine, tmp_path, sink_kind, workers):
    sink = Sink(tmp_path / "sink")
    ctl_path = str(tmp_path / "ctl")
    args = ["--trace", "error,conn", "--ctl", ctl_path, "--metrics", "127.0.0.1:0",
            "--drain-timeout", "5", "--workers", str(workers)]
    wrapper = None
    if sink_kind == "stderr":
        wrapper = ["sh", "-c", 'exec "$@" 2>"%s"' % sink.path, "sh"]
    else:
        args += ["--trace-file", sink.path]
    try:
        srv = start_server(*args, engine=engine, wrapper=wrapper)
        url = wait_for(lambda: re.search(r"metrics at (http://\S+)", sink.read()),
                       what="the metrics line in the sink").group(1)

        # The sink now stays blocked: every connection must still echo.
        for i in range(CONNS):
            _echo_one(srv, i)
        blocked_drops = _dropped_now(ctl_path)
        assert blocked_drops > 0
        text = scrape(url)[2]
        assert metric(text, "echosrv_trace_lines_dropped_total") >= blocked_drops
        assert metric(text, "echosrv_log_queue_capacity_bytes") > 0
        assert metric(text, "echosrv_log_queue_lines") > 0
        assert "# TYPE echosrv_trace_lines_dropped_total counter\n" in text
        assert "# TYPE echosrv_log_queue_lines gauge\n" in text
        log_queue = stats(ctl_path)["log_queue"]
        assert 0 < log_queue["bytes"] <= log_queue["capacity_bytes"]

        # Read again: the queued lines come out, then one line with the count.
        m = wait_for(lambda: DROPPED.search(sink.read()), timeout=30,
                     what="the dropped-lines report")
        assert int(m.group(1)) >= blocked_drops
        assert len(DROPPED.findall(sink.read())) == 1
        for line in sink.read().splitlines():    # whole lines, also across the ring's end
            assert LINE.match(line), line
        assert _dropped_now(ctl_path) == int(m.group(1))

        # Block it again, then drain and stop while it stays blocked.
        for i in range(CONNS):
            _echo_one(srv, CONNS + i)
            if i % 100 == 99 and _dropped_now(ctl_path) > int(m.group(1)):
                break
        assert _dropped_now(ctl_path) > int(m.group(1)), "the sink never filled again"
        held = srv.connect()
        assert echo_roundtrip(held, b"before the stop") == b"before the stop"
        srv.signal(signal.SIGTERM)
        # Draining: the open connection is still served.
        assert echo_roundtrip(held, b"while draining") == b"while draining"
        held.close()
        assert srv.wait(timeout=15 * SCALE) == 0

        rest = sink.read()
        assert sink.eof
        for line in rest.splitlines():
            assert LINE.match(line), line
    finally:
        sink.close()
