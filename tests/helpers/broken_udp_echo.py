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

Binds 127.0.0.1 (or --host), port 0; writes HOST:PORT to --port-file.
"""
import argparse
import os
import socket

MODES = ("ok", "drop", "duplicate", "reorder", "corrupt")


def serve(sock, mode, every, peers_file):
    seen, held, n = set(), None, 0
    while True:
        try:
            data, peer = sock.recvfrom(65536)
        except socket.timeout:
            if held:        # nothing came after it to overtake: send it now
                sock.sendto(*held)
                held = None
            continue
        if peers_file and peer not in seen:
            seen.add(peer)
            peers_file.write("%s %d\n" % peer[:2])
            peers_file.flush()
        n += 1
        fault = mode != "ok" and n % every == 0
        if fault and mode == "drop":
            continue
        if fault and mode == "reorder":
            if held:
                sock.sendto(*held)
            held = (data, peer)
            continue
        if fault and mode == "corrupt" and data:
            data = data[:-1] + bytes([data[-1] ^ 1])
        sock.sendto(data, peer)
        if fault and mode == "duplicate":
            sock.sendto(data, peer)
        if held:
            sock.sendto(*held)
            held = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=MODES, required=True)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--peers")
    a = ap.parse_args()
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((a.host, 0))
    sock.settimeout(0.05)
    port = sock.getsockname()[1]
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(("[%s]:%d\n" if fam == socket.AF_INET6 else "%s:%d\n") % (a.host, port))
    os.rename(tmp, a.port_file)
    peers = open(a.peers, "w") if a.peers else None
    serve(sock, a.mode, a.every, peers)


if __name__ == "__main__":
    main()
