"""Echo semantics (SPEC 1) and listening (SPEC 2)."""
import os
import socket

from conftest import echo_roundtrip, read_to_eof


def test_echo_ipv4_and_ipv6_on_one_dual_stack_listener(start_server, engine):
    srv = start_server("--listen", "[::]:0", engine=engine)
    for host in ("127.0.0.1", "::1"):
        s = srv.connect((host, srv.port))
        data = os.urandom(10000)
        assert echo_roundtrip(s, data) == data
        s.close()
    assert "IPv4 and IPv6" in srv.stderr()


def test_half_close_sizes(start_server, engine):
    srv = start_server(engine=engine)
    for size in (0, 1, 2048, 5 << 20):
        s = srv.connect()
        data = os.urandom(size)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert read_to_eof(s) == data, "size %d" % size
        s.close()
