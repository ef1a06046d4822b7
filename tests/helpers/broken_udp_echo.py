#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""A UDP echo server that breaks the echo on purpose, to prove that
echosrv-bench --udp notices (the UDP sibling of broken_echo.py).

Every --every'th datagram it receives (counted over all sources) meets the
chosen fault; all the others are echoed at once, unchanged:

  ok         no fault (a correct server, to check the test harness itself)
  drop       not sent back
  duplicate  sent back twice
  reorder    held, and sent back just after the next datagram's echo (or
             after 50 ms when no next one comes)
  corrupt    sent back with one bit of its last byte flipped

--peers FILE: also writes each source address (IP PORT) the first time it
is seen, one a line, so a test can see where datagrams came from.

--gro FILE: receives with UDP_GRO, so that datagrams sent together with
UDP_SEGMENT arrive as one buffer; it splits them by the segment size the
kernel reports and echoes each, and writes the most datagrams one receive
held to FILE (at exit, and whenever it grows).

Binds 127.0.0.1 (or --host), port 0; writes HOST:PORT to --port-file.
"""
import argparse
import os
import socket

MODES = ("ok", "drop", "duplicate", "reorder", "corrupt")


UDP_GRO = 104              # linux/udp.h: a socket option and its cmsg type
SOL_UDP = 17


def receive(sock, gro_file, most):
    """[(datagram, peer)]: one, or with --gro those one receive coalesced."""
    if not gro_file:
        return [sock.recvfrom(65536)]
    data, anc, _, peer = sock.recvmsg(65536, socket.CMSG_SPACE(4))
    seg = len(data)
    for level, kind, val in anc:
        if level == SOL_UDP and kind == UDP_GRO:
            seg = int.from_bytes(val[:2], "little") or len(data)
    parts = [data[i:i + seg] for i in range(0, len(data), seg)] or [data]
    if len(parts) > most[0]:
        most[0] = len(parts)
        with open(gro_file, "w") as f:
            f.write("%d\n" % most[0])
    return [(p, peer) for p in parts]


def serve(sock, mode, every, peers_file, gro_file=None):
    seen, held, n, most = set(), None, 0, [0]
    while True:
        try:
            got = receive(sock, gro_file, most)
        except socket.timeout:
            if held:        # nothing came after it to overtake: send it now
                sock.sendto(*held)
                held = None
            continue
        for data, peer in got:
            held, n = echo(sock, mode, every, peers_file, seen, held, n, data, peer)


def echo(sock, mode, every, peers_file, seen, held, n, data, peer):
    """One datagram's echo, faults applied; the new (held, n)."""
    if peers_file and peer not in seen:
        seen.add(peer)
        peers_file.write("%s %d\n" % peer[:2])
        peers_file.flush()
    n += 1
    fault = mode != "ok" and n % every == 0
    if fault and mode == "drop":
        return held, n
    if fault and mode == "reorder":
        if held:
            sock.sendto(*held)
        held = (data, peer)
        return held, n
    if fault and mode == "corrupt" and data:
        data = data[:-1] + bytes([data[-1] ^ 1])
    sock.sendto(data, peer)
    if fault and mode == "duplicate":
        sock.sendto(data, peer)
    if held:
        sock.sendto(*held)
        held = None
    return held, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=MODES, required=True)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--peers")
    ap.add_argument("--gro")
    a = ap.parse_args()
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if a.gro:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    sock.bind((a.host, 0))
    sock.settimeout(0.05)
    port = sock.getsockname()[1]
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(("[%s]:%d\n" if fam == socket.AF_INET6 else "%s:%d\n") % (a.host, port))
    os.rename(tmp, a.port_file)
    peers = open(a.peers, "w") if a.peers else None
    serve(sock, a.mode, a.every, peers, a.gro)


if __name__ == "__main__":
    main()
