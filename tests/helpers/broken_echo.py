#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""A TCP echo server that breaks the echo on purpose, to prove that
echosrv-bench notices.

Each connection is echoed faithfully up to stream offset --at; there the
chosen fault happens once (per connection), then the echo goes on:

  ok       no fault (a correct server, to check the test harness itself)
  flip     byte AT comes back with one bit flipped
  drop     byte AT is not sent back
  extra    byte AT is sent back twice
  reorder  the two 64-byte chunks starting at AT come back swapped
  close    the connection is closed (FIN) just before byte AT
  reset    the connection is reset (RST) just before byte AT
  stall    nothing from byte AT on is sent back; the connection stays open

Bytes before AT are sent as soon as they arrive and bytes from AT on are
held only until the fault can be applied, so a closed-loop client whose
messages cover AT (+128 for reorder) never deadlocks against it.

Listens on 127.0.0.1, port 0; writes HOST:PORT to --port-file.
"""
import argparse
import os
import socket
import socketserver
import struct

CHUNK = 64


def apply_fault(mode, buf, i, sock):
    """Returns the bytes to send, or None when the connection is over."""
    if mode == "flip":
        buf[i] ^= 0x01
    elif mode == "drop":
        del buf[i]
    elif mode == "extra":
        buf.insert(i, buf[i])
    elif mode == "reorder":
        buf[i:i + 2 * CHUNK] = buf[i + CHUNK:i + 2 * CHUNK] + buf[i:i + CHUNK]
    elif mode in ("close", "reset"):
        sock.sendall(buf[:i])
        if mode == "reset":     # close now with linger 0: RST, not FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
            sock.close()
        return None
    elif mode == "stall":
        return buf[:i]
    return buf


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        mode, at = self.server.mode, self.server.at
        need = at + (2 * CHUNK if mode == "reorder" else 1)
        sock = self.request
        sent = 0            # stream offset of buf[0]
        buf = bytearray()
        faulted = mode == "ok"
        stalled = False
        while True:
            data = sock.recv(65536)
            if not data:
                break
            if stalled:
                continue
            buf += data
            if not faulted and sent + len(buf) < need:
                n = max(0, at - sent)    # what may go before the fault
                sock.sendall(buf[:n])
                del buf[:n]
                sent += n
                continue
            if not faulted:
                faulted = True
                out = apply_fault(mode, buf, at - sent, sock)
                if out is None:
                    return
                stalled = mode == "stall"
                buf = out
            sock.sendall(buf)
            sent += len(buf)
            buf = bytearray()
        sock.shutdown(socket.SHUT_WR)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", required=True,
                    choices=["ok", "flip", "drop", "extra", "reorder", "close",
                             "reset", "stall"])
    ap.add_argument("--at", type=int, default=1000)
    ap.add_argument("--port-file", required=True)
    a = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    srv.mode, srv.at = a.mode, a.at
    with open(a.port_file + ".tmp", "w") as f:
        f.write("127.0.0.1:%d\n" % srv.server_address[1])
    os.rename(a.port_file + ".tmp", a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
