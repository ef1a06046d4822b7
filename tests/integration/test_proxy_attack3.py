# SPDX-License-Identifier: GPL-2.0-only
"""PROXY protocol under attack, third round: the bytes held with a header
and after it, against what changes around them (a reload of conn-buffer).
As in test_proxy.py the tests play the balancer from 127.0.0.1."""
import json
import signal
import socket
import struct
import threading
import time

from conftest import read_to_eof, wait_for
from ops_common import ctl, stats
from test_proxy import HEADERS, config_server, proxy_server, v2_local
from test_proxy_attack2 import stopped


def send_until_blocked(s, data, quiet_rounds=20):
    """Send data on the non-blocking s, without reading, until the kernel
    takes no more for quiet_rounds rounds; how many bytes it took."""
    sent = quiet = 0
    for _ in range(500):
        try:
            sent += s.send(data[sent:sent + (1 << 20)])
            quiet = 0
        except BlockingIOError:
            quiet += 1
            if quiet >= quiet_rounds:
                break
            time.sleep(0.05)
    return sent


def test_reload_lowering_conn_buffer_then_a_peer_not_reading(start_server, tmp_path, engine):
    """A reload lowers conn-buffer from 256k to 1k; then a client on the
    plain and on the proxy listener sends megabytes and reads nothing until
    the server stops taking them.  Every byte comes back once it reads.
    (epoll and sockmap's user-space echo received a whole scratch buffer,
    still sized for 256k, and what send() left of it did not fit the
    connection's 1k: an assertion stopped the whole server.)"""
    base = ["listen 127.0.0.1:0", "proxy-listen 127.0.0.1:0", "proxy-from 127.0.0.0/8",
            "trace error,conn"]
    srv, write = config_server(start_server, tmp_path, engine, *base, "conn-buffer 256k")
    write(*base, "conn-buffer 1k")
    assert ctl(srv.ctl, "reload").stdout == "reloaded\n"
    payload = bytes((i * 7) & 0xff for i in range(4 << 20))
    for addr, header in ((srv.addrs[0], b""), (srv.addrs[1], HEADERS["v1-ipv4"][0])):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.connect(addr)
        s.setblocking(False)
        sent = send_until_blocked(s, header + payload)
        assert sent > len(header) + (256 << 10), sent
        s.setblocking(True)
        s.settimeout(30)
        s.shutdown(socket.SHUT_WR)
        got = read_to_eof(s)
        assert got == payload[:sent - len(header)], (addr, len(got), sent - len(header))
        s.close()
    # A close is counted after the client sees it.
    st = wait_for(lambda: (lambda st: st["connections_active"] == 0 and st)(stats(srv.ctl)),
                  what="both connections closed")
    assert st["errors_total"] == 0 and st["resets_total"] == 0, st
    assert st["connections_active"] == 0 and st["proxy_headers_waiting"] == 0, st


def test_bytes_with_the_header_within_the_smallest_conn_buffer(start_server, tmp_path, engine):
    """--conn-buffer 1024 (the least allowed), header and then up to 60 KiB
    in one send, read only once all is sent: every byte comes back, and no
    connection ever held more than 1024 bytes (io_uring held what one 2 KiB
    read took with the header, up to 2009 bytes, whatever --conn-buffer)."""
    srv = proxy_server(start_server, tmp_path, engine, "--conn-buffer", "1024")
    header = HEADERS["v1-ipv4"][0]
    held = []
    for n in (1, 1023, 1024 - len(header), 1025, 2048 - len(header), 2048, 5000, 60000):
        payload = bytes((j * 13 + n) & 0xff for j in range(n))
        s = srv.connect(srv.proxy_addr)
        t = threading.Thread(target=s.sendall, args=(header + payload,), daemon=True)
        t.start()
        time.sleep(0.2)
        got = bytearray()
        s.settimeout(10)
        while len(got) < n:
            part = s.recv(1 << 16)
            assert part, (n, len(got))
            got += part
        assert bytes(got) == payload, n
        held += [c["held_max_bytes"] for c in
                 json.loads(ctl(srv.ctl, "conns", "--json").stdout)["connections"]]
        t.join(10)
        s.close()
    assert held and max(held) <= 1024, held


def test_header_then_reset_before_the_accept(start_server, tmp_path, engine):
    """A balancer's health check that sends its header and resets at once
    (haproxy's check-send-proxy does), with every accept after the reset
    (the server is stopped meanwhile): each is still counted, as a health
    check or, from an untrusted address, as refused.  (io_uring's accept
    gave no address and getpeername() fails on a reset socket: such
    connections went uncounted, and haproxy's checks were never seen.)"""
    srv = proxy_server(start_server, tmp_path, engine, proxy_from="127.0.0.1/32")
    srv.signal(signal.SIGSTOP)
    try:
        wait_for(lambda: stopped(srv.proc.pid), what="the server stopped")
        for source, header in [("127.0.0.1", v2_local())] * 4 + [
                ("127.0.0.1", b"PROXY UNKNOWN\r\n"), ("127.0.0.2", v2_local())]:
            s = socket.socket()
            s.bind((source, 0))
            s.connect(srv.proxy_addr)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(header)
            s.close()
    finally:
        srv.signal(signal.SIGCONT)
    st = wait_for(lambda: (lambda st: st["proxy_health_checks_total"] == 5
                           and st["rejected"]["proxy_untrusted"] == 1 and st)(stats(srv.ctl)),
                  what="five health checks and one untrusted counted")
    assert st["rejected"]["proxy_bad"] == 0 and st["proxy_connections_total"] == 0, st
