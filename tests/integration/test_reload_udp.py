# SPDX-License-Identifier: GPL-2.0-only
"""A reload changes the UDP sockets in place (docs/udp.md, docs/configuration.md):
`udp-listen` lines added are bound for every worker before the reload is
done, removed ones stop answering, a bind failure refuses the whole reload
with nothing changed, the port file follows, a worker that served no UDP
at start gains it, and `udp-df` is set and cleared on the sockets serving.
Every case runs under each engine."""
import socket

import pytest

from conftest import wait_for
from netns import SERVER_IP, CLIENT_IP, netns  # noqa: F401 (fixture)
from ops_common import ctl, stats

WORKERS = [1, pytest.param(2, marks=pytest.mark.workers)]


def start(start_server, tmp_path, engine, *lines, workers=1, wrapper=None):
    conf, sock = tmp_path / "e.conf", tmp_path / "ctl"
    conf.write_text("\n".join(lines) + "\n")
    srv = start_server("--config", str(conf), "--ctl", str(sock), "--workers", str(workers),
                       engine=engine, cli_defaults=False, wrapper=wrapper)
    srv.conf, srv.ctl = conf, str(sock)
    return srv


def reload(srv, *lines):
    srv.conf.write_text("\n".join(lines) + "\n")
    return ctl(srv.ctl, "reload", check=False)


def port_file(srv):
    """(tcp, udp): the addresses of the port file, each (host, port)."""
    tcp, udp = [], []
    for line in open(srv.port_file).read().split():
        kind = udp if line.startswith("udp:") else tcp
        host, port = line[4 if kind is udp else 0:].rsplit(":", 1)
        kind.append((host.strip("[]"), int(port)))
    return tcp, udp


def client(host="127.0.0.1", timeout=5):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(timeout)
    return s


def echoes(addr, payload=b"ping", source="127.0.0.1"):
    """True when a datagram to addr comes back unchanged; False when nothing
    does (a connected socket learns of ICMP port unreachable as
    ConnectionRefusedError)."""
    s = client(source, timeout=5)
    try:
        s.connect(addr)
        s.send(payload)
        return s.recv(70000) == payload
    except (socket.timeout, ConnectionRefusedError):
        return False
    finally:
        s.close()


def refused(addr):
    """Nothing serves addr on UDP: the kernel answers port unreachable."""
    s = client(timeout=5)
    try:
        s.connect(addr)
        s.send(b"anyone?")
        s.recv(100)
        return False
    except ConnectionRefusedError:
        return True
    except socket.timeout:
        return False
    finally:
        s.close()


@pytest.mark.parametrize("workers", WORKERS)
def test_udp_listen_added_by_reload(start_server, tmp_path, engine, workers):
    """An added line is bound, logged, written to the port file and echoes;
    the line already serving (port 0 as written) keeps its port."""
    srv = start(start_server, tmp_path, engine, "listen 127.0.0.1:0", "udp-listen 127.0.0.1:0",
                "udp-rate 0", workers=workers)
    (_, [old]) = port_file(srv)
    assert echoes(old)
    r = reload(srv, "listen 127.0.0.1:0", "udp-listen 127.0.0.1:0", "udp-listen 127.0.0.2:0",
               "udp-rate 0")
    assert r.returncode == 0 and r.stdout == "reloaded\n", r
    tcp, udp = wait_for(lambda: len(port_file(srv)[1]) == 2 and port_file(srv),
                        what="two UDP addresses in the port file")
    assert tcp == srv.addrs and old in udp
    new = [a for a in udp if a != old][0]
    assert new[0] == "127.0.0.2" and new[1] != 0
    srv.wait_log("reload: listening on udp:127.0.0.2:%d" % new[1])
    # Many sources, so that with two workers each one's socket is hit.
    for i in range(16):
        assert echoes(new, b"new %d" % i), i
        assert echoes(old, b"old %d" % i), i
    assert "no longer listening" not in srv.stderr()
    shown = ctl(srv.ctl, "show", "config").stdout.splitlines()
    assert "udp-listen 127.0.0.2:0" in shown and "udp-listen 127.0.0.1:0" in shown


@pytest.mark.parametrize("workers", WORKERS)
def test_udp_listen_removed_by_reload(start_server, tmp_path, engine, workers):
    """A removed line stops answering (port unreachable) while the other
    still echoes; named by the port it was given, a line is kept."""
    srv = start(start_server, tmp_path, engine, "listen 127.0.0.1:0", "udp-listen 127.0.0.1:0",
                "udp-listen 127.0.0.2:0", "udp-rate 0", workers=workers)
    (_, udp) = port_file(srv)
    gone = [a for a in udp if a[0] == "127.0.0.1"][0]
    kept = [a for a in udp if a[0] == "127.0.0.2"][0]
    assert echoes(gone) and echoes(kept)
    r = reload(srv, "listen 127.0.0.1:0", "udp-listen 127.0.0.2:%d" % kept[1], "udp-rate 0")
    assert r.returncode == 0 and r.stdout == "reloaded\n", r
    srv.wait_log("reload: no longer listening on udp:127.0.0.1:%d" % gone[1])
    wait_for(lambda: port_file(srv)[1] == [kept], what="only the kept address in the port file")
    for i in range(8):
        assert refused(gone), i
        assert echoes(kept, b"kept %d" % i), i
    assert "reload: listening on udp" not in srv.stderr()


def test_loop_check_follows_the_reload(start_server, tmp_path, engine):
    """The ports echosrv serves on UDP are never answered as source ports:
    one added by a reload is dropped as `loop` from then on, and one
    removed is answered again."""
    srv = start(start_server, tmp_path, engine, "listen 127.0.0.1:0", "udp-listen 127.0.0.1:0",
                "udp-rate 0")
    [(_, p1)] = port_file(srv)[1]
    r = reload(srv, "listen 127.0.0.1:0", "udp-listen 127.0.0.1:0", "udp-listen 127.0.0.2:0",
               "udp-rate 0")
    assert r.returncode == 0, r
    [p2] = wait_for(lambda: [p for h, p in port_file(srv)[1] if h == "127.0.0.2"],
                    what="the added address")
    looped = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    looped.bind(("127.0.0.3", p2))      # the added port, on another address
    looped.settimeout(1)
    try:
        looped.sendto(b"loop?", ("127.0.0.1", p1))
        with pytest.raises(socket.timeout):
            looped.recvfrom(100)
        wait_for(lambda: stats(srv.ctl)["udp_dropped"]["loop"] == 1, what="a loop drop")
        r = reload(srv, "listen 127.0.0.1:0", "udp-listen 127.0.0.1:0", "udp-rate 0")
        assert r.returncode == 0, r
        wait_for(lambda: len(port_file(srv)[1]) == 1, what="the address removed")
        looped.sendto(b"no loop", ("127.0.0.1", p1))
        assert looped.recvfrom(100)[0] == b"no loop"
    finally:
        looped.close()


def test_added_dual_stack_falls_back_to_ipv4(start_server, tmp_path, engine):
    """Where IPv6 is missing (tests/helpers/no_ipv6) an added [::]:0 is
    bound on 0.0.0.0, as at start, and the same line in the next reload
    is that socket still (matched as written)."""
    import os
    from conftest import BUILD
    conf, sock = tmp_path / "e.conf", tmp_path / "ctl"
    conf.write_text("listen 127.0.0.1:0\nudp-listen 127.0.0.1:0\nudp-rate 0\n")
    srv = start_server("--config", str(conf), "--ctl", str(sock), engine=engine,
                       cli_defaults=False, wrapper=[os.path.join(BUILD, "helpers", "no_ipv6")])
    srv.conf, srv.ctl = conf, str(sock)
    lines = ["listen 127.0.0.1:0", "udp-listen 127.0.0.1:0", "udp-listen [::]:0", "udp-rate 0"]
    assert reload(srv, *lines).returncode == 0
    [wild] = wait_for(lambda: [a for a in port_file(srv)[1] if a[0] == "0.0.0.0"],
                      what="0.0.0.0 in the port file")
    srv.wait_log("UDP on IPv4 0.0.0.0 only")
    assert echoes(("127.0.0.1", wild[1]))
    assert reload(srv, *(lines + ["max-conns 99"])).returncode == 0
    srv.wait_log("configuration 3 in force")
    assert [a for a in port_file(srv)[1] if a[0] == "0.0.0.0"] == [wild]
    assert echoes(("127.0.0.1", wild[1]))
    assert "no longer listening" not in srv.stderr()


def test_udp_bind_failure_refuses_the_reload(start_server, tmp_path, engine):
    """An address another socket holds fails the reload: the reply and the
    log say why, the address bound before it is closed again, and the old
    sockets, the port file and the configuration stay."""
    srv = start(start_server, tmp_path, engine, "listen 127.0.0.1:0", "udp-listen 127.0.0.1:0",
                "udp-rate 0", workers=2)
    before = port_file(srv)
    fds = srv.fd_count()
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.3", 0))
    port = taken.getsockname()[1]
    try:
        r = reload(srv, "listen 127.0.0.1:0", "udp-listen 127.0.0.1:0", "udp-listen 127.0.0.4:0",
                   "udp-listen 127.0.0.3:%d" % port, "udp-rate 0", "max-conns 77")
        assert r.returncode != 0, r
        assert "127.0.0.3:%d" % port in r.stderr, r
        srv.wait_log("reload refused, the configuration in force is kept")
        assert "listening on udp" not in srv.stderr()
        assert port_file(srv) == before
        # The control connection that carried the reply may close a
        # moment later (valgrind); a socket left bound for 127.0.0.4 stays.
        wait_for(lambda: srv.fd_count() == fds, what="the sockets bound for 127.0.0.4 to close")
        assert echoes(before[1][0])
        shown = ctl(srv.ctl, "show", "config").stdout
        assert "127.0.0.4" not in shown and "max-conns 77" not in shown
    finally:
        taken.close()
    # And once the address is free, the same file goes through.
    r = reload(srv, "listen 127.0.0.1:0", "udp-listen 127.0.0.1:0", "udp-listen 127.0.0.4:0",
               "udp-rate 0")
    assert r.returncode == 0, r
    udp = wait_for(lambda: len(port_file(srv)[1]) == 2 and port_file(srv)[1],
                   what="the added address in the port file")
    assert all(echoes(a) for a in udp)


@pytest.mark.parametrize("workers", WORKERS)
def test_worker_gains_udp_by_reload(start_server, tmp_path, engine, workers):
    """No UDP at start (no worker has a UDP set); a reload adds two
    addresses, each worker serves its sockets (sixteen sources spread over
    the workers by SO_REUSEPORT), and removing them all and adding one
    back works too."""
    srv = start(start_server, tmp_path, engine, "listen 127.0.0.1:0", "udp-rate 0",
                workers=workers)
    assert port_file(srv)[1] == []
    r = reload(srv, "listen 127.0.0.1:0", "udp-listen 127.0.0.1:0", "udp-listen 127.0.0.2:0",
               "udp-rate 0")
    assert r.returncode == 0, r
    udp = wait_for(lambda: len(port_file(srv)[1]) == 2 and port_file(srv)[1],
                   what="UDP addresses in the port file")
    for addr in udp:
        for i in range(16):
            assert echoes(addr, b"gained %d" % i), (addr, i)
    # Each worker served some (32 sources: all on one worker is 2 ** -31).
    per_worker = stats(srv.ctl)["per_worker"]
    assert len(per_worker) == workers
    assert all(w["udp_datagrams_received_total"] > 0 for w in per_worker), per_worker
    r = reload(srv, "listen 127.0.0.1:0", "udp-rate 0")
    assert r.returncode == 0, r
    wait_for(lambda: port_file(srv)[1] == [], what="no UDP address in the port file")
    assert all(refused(a) for a in udp)
    r = reload(srv, "listen 127.0.0.1:0", "udp-listen 127.0.0.5:0", "udp-rate 0")
    assert r.returncode == 0, r
    [again] = wait_for(lambda: port_file(srv)[1], what="a UDP address again")
    assert all(echoes(again, b"again %d" % i) for i in range(8))
    assert srv.connect().close() is None      # TCP carried on throughout


def test_udp_df_toggled_in_place(netns, start_server, tmp_path, engine):
    """The way back to the client has a locked 1,300-byte MTU: a 1,400-byte
    reply is fragmented without udp-df and refused (send-error, nothing
    back) with it.  Turned on, off and on again by reload, on the same
    socket (its port does not change)."""
    netns.ns(netns.srv_ns, "ip", "route", "add", CLIENT_IP + "/32", "dev", "vs", "mtu", "lock",
             "1300")
    srv = start(start_server, tmp_path, engine, "listen %s:0" % SERVER_IP,
                "udp-listen %s:0" % SERVER_IP, "udp-rate 0", wrapper=netns.wrapper())
    [addr] = port_file(srv)[1]
    big = bytes(range(256)) * 5 + bytes(120)

    def answered():
        return netns.in_client(lambda: echoes(addr, big, source=CLIENT_IP))

    def send_errors():
        return stats(srv.ctl)["udp_dropped"]["send-error"]

    assert answered()
    for n, on in enumerate([True, False, True], start=2):
        lines = ["listen %s:0" % SERVER_IP, "udp-listen %s:0" % SERVER_IP, "udp-rate 0"]
        r = reload(srv, *(lines + (["udp-df"] if on else [])))
        assert r.returncode == 0, r
        srv.wait_log("configuration %d in force" % n)
        errors = send_errors()
        assert answered() is not on, "udp-df %s" % on
        if on:
            wait_for(lambda: send_errors() > errors, what="a send-error counted")
        assert port_file(srv)[1] == [addr]
    assert "restart is needed" not in srv.stderr()


def test_udp_listen_under_socket_activation_needs_a_restart(engine, tmp_path):
    """The datagram socket is systemd's: an added udp-listen line is named as
    needing a restart and not shown as in force, the passed socket echoes
    on, and the rest of the file still applies."""
    import os
    import shutil
    import signal
    import subprocess
    from conftest import ECHOSRV, free_port
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        pytest.skip("systemd-socket-activate not installed (package systemd)")
    sock, conf = tmp_path / "ctl", tmp_path / "a.conf"
    conf.write_text("udp-rate 0\n")
    log = open(str(tmp_path / "log"), "w+")
    port = free_port()
    p = subprocess.Popen([activate, "--datagram", "-l", "127.0.0.1:%d" % port, ECHOSRV,
                          "--engine", engine, "--ctl", str(sock), "--config", str(conf)],
                         stdout=log, stderr=log)
    try:
        wait_for(lambda: echoes(("127.0.0.1", port), b"first"), what="the activated socket")
        wait_for(lambda: os.path.exists(str(sock)), what="the control socket")
        conf.write_text("udp-rate 0\nudp-listen 127.0.0.1:0\nmax-conns 77\n")
        assert ctl(str(sock), "reload").stdout == "reloaded\n"
        shown = ctl(str(sock), "show", "config").stdout.splitlines()
        assert "max-conns 77" in shown and "udp-listen 127.0.0.1:0" not in shown, shown
        assert echoes(("127.0.0.1", port), b"second")
        log.flush()
        text = open(str(tmp_path / "log")).read()
        assert "a restart is needed to change udp-listen (the sockets are systemd's)" in text, text
        assert "listening on udp" not in text
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
        log.close()
