# SPDX-License-Identifier: GPL-2.0-only
"""bench/peers.py - the servers bench/run.py measures side by side.

echosrv once per engine; the baseline (bench/baseline_epoll.c); and what a
user would otherwise run: socat's TCP echo (a PIPE per connection, a
process per connection), xinetd's built-in echo service (with its own
config, on a test port, with its rate and instance limits lifted) and ncat
(`--exec /bin/cat`: two processes per connection, so only in cells of up to
NCAT_MAX_CONNS connections).  All are Debian packages (scripts/deps.sh
bench); a peer whose program is missing is left out with a line saying so.

Every server runs in its own session (process group), pinned to the
server CPU, inside the placement's server namespace; pausing and stopping
signal the whole group, so a forking server's children stop too.
"""
import os
import shutil
import signal
import socket
import sys
import subprocess
import time

NCAT_MAX_CONNS = 500
PEER_PORTS = {"socat": 7101, "xinetd": 7102, "ncat": 7103}   # netns: a fresh namespace
PEERS = ["socat", "xinetd", "ncat"]

XINETD_CONF = """# written by bench/run.py for one run
defaults
{
	instances  = UNLIMITED
	per_source = UNLIMITED
	cps        = 1000000 1
	log_type   = FILE %(log)s
}
service echo
{
	type        = INTERNAL UNLISTED
	id          = echo-stream
	socket_type = stream
	protocol    = tcp
	wait        = no
	user        = root
	port        = %(port)d
	bind        = %(ip)s
}
"""


def pin(cpu):
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def free_port(ip):
    """A port free on ip now (loopback: shared with the rest of the machine)."""
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


class Server:
    """One running server: name, addr ("IP:PORT"), pid, and its group."""

    def __init__(self, name, kind, cmd, place, cpu, log, port_file=None, port=None,
                 max_conns=None, udp=False):
        # udp: serves UDP (bench/udp.py): its address is the port file's
        # (or log's) "udp:" line, and a fixed port is looked for among UDP sockets.
        self.name, self.kind, self.place, self.udp = name, kind, place, udp
        self.max_conns = max_conns
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(place.server_prefix() + cmd, stdout=self.log,
                                     stderr=self.log, preexec_fn=pin(cpu),
                                     start_new_session=True)
        self.pid = self.proc.pid
        try:
            if port_file:
                self.addr = self._wait(lambda: self._read(port_file), "write its port file")
            else:
                self.addr = "%s:%d" % (place.server_ip, port)
                self._wait(lambda: self._listening(port), "listen on port %d" % port)
        except BaseException:
            # Its own session, so no Ctrl-C reaches it: stop it here, or
            # it outlives the bench in the namespace it keeps alive.
            self.stop()
            raise

    def _wait(self, probe, what):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %d" % (self.name, self.proc.returncode))
            v = probe()
            if v:
                return v
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("%s did not %s" % (self.name, what))

    def _read(self, path):
        try:
            with open(path) as f:
                words = f.read().split()
        except FileNotFoundError:
            return None
        if self.udp:
            words = [w[len("udp:"):] for w in words if w.startswith("udp:")]
        return words[0] if words else None

    def _listening(self, port):
        r = subprocess.run(self.place.server_prefix() + ["ss", "-Hlun" if self.udp else "-Hltn",
                                                        "sport = :%d" % port],
                           capture_output=True, text=True, timeout=10)
        return r.returncode == 0 and r.stdout.strip() != ""

    def fits(self, conns):
        """Why this server sits the cell out, or None."""
        if self.max_conns and conns > self.max_conns:
            return "not run above %d connections (two processes each)" % self.max_conns
        return None

    def children(self):
        """How many processes this server has forked that are still there."""
        n = 0
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            n += ppid == self.pid
        return n

    def settle(self, timeout=5):
        """After a run: wait (bounded) until a forking server's children for
        the run's connections have gone, so that hundreds of them exiting
        do not take the next server's CPU."""
        if self.kind != "peer":
            return
        deadline = time.monotonic() + timeout
        while self.children() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _group(self, sig):
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def pause(self, paused):
        """Servers not under load are stopped (SIGSTOP, the whole group), so
        that one that polls (--busy-poll) cannot steal the measured one's CPU."""
        if self.proc.poll() is None:
            self._group(signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self):
        if self.log.closed:
            return
        if self.proc.poll() is None:
            self._group(signal.SIGTERM)
            self._group(signal.SIGCONT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._group(signal.SIGKILL)
                self.proc.wait()
        self._group(signal.SIGKILL)     # children a forking server left behind
        self.log.close()


def start_all(build, engines, server_args, place, outdir, cpu, peers=PEERS, out=None,
              left=None):
    """Starts the baseline, echosrv per engine and the peers into out (the
    caller's list, so that what started before an interrupt is stopped); a
    server that cannot start is left out with a line on stderr, never
    silently: the line also goes into left, for the report."""
    out = [] if out is None else out
    left = [] if left is None else left
    ip = place.server_ip

    def leave_out(name, why):
        left.append("%s (%s): %s" % (name, place.name, why))
        print("bench: %s left out: %s" % (name, why), file=sys.stderr)

    def add(name, kind, cmd, **kw):
        try:
            out.append(Server(name, kind, cmd, place, cpu,
                              os.path.join(outdir, name + ".log"), **kw))
        except (RuntimeError, OSError) as e:
            leave_out(name, "%s (see %s.log)" % (e, name))

    pf = os.path.join(outdir, "baseline.port")
    add("baseline", "baseline", [os.path.join(build, "bench-baseline"), ip + ":0", pf],
        port_file=pf)
    for e in engines:
        pf = os.path.join(outdir, e + ".port")
        add(e, "echosrv", [os.path.join(build, "echosrv"), "--engine", e, "--listen",
                           ip + ":0", "--port-file", pf] + server_args, port_file=pf)
    for p in peers:
        prog = {"socat": "socat", "xinetd": "xinetd", "ncat": "ncat"}[p]
        if not shutil.which(prog):
            leave_out(p, "%s is not installed (scripts/deps.sh bench)" % prog)
            continue
        port = PEER_PORTS[p] if place.name == "netns" else free_port(ip)
        if p == "socat":
            cmd = ["socat", "-b", "65536", "TCP-LISTEN:%d,bind=%s,reuseaddr,fork,backlog=4096"
                   % (port, ip), "PIPE"]
            add(p, "peer", cmd, port=port)
        elif p == "xinetd":
            conf = os.path.join(outdir, "xinetd.conf")
            with open(conf, "w") as f:
                f.write(XINETD_CONF % {"port": port, "ip": ip,
                                       "log": os.path.join(outdir, "xinetd-service.log")})
            add(p, "peer", ["xinetd", "-dontfork", "-filelog",
                            os.path.join(outdir, "xinetd-own.log"), "-f", conf,
                            "-pidfile", os.path.join(outdir, "xinetd.pid")], port=port)
        else:
            add(p, "peer", ["ncat", "-l", ip, str(port), "--keep-open", "--max-conns",
                            "100000", "--exec", "/bin/cat"], port=port,
                max_conns=NCAT_MAX_CONNS)
    return out
