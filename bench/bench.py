#!/usr/bin/env python3
"""Workloads, measurements and reports of bench/run (which installs, sets up and starts both systems
and then calls this with the environment below). Not meant to be run alone.

Environment (set by bench/run):
  BENCH_TMP        temporary folder of this run (mailstack in $BENCH_TMP/ms, Postern in $BENCH_TMP/postern)
  BENCH_USERS      "NAME PASSWORD" per line; u* users send and receive, pop* users hold the POP3 mailboxes
  BENCH_DOMAIN     mail domain of both systems
  PF_SMTP_PORT DV_POP_PORT PN_SMTP_PORT PN_POP_PORT SINK_SMTP_PORT SINK_POP_PORT
  PF_MASTER_PID DV_MASTER_PID POSTERN_PID POSTERN_DATA POSTERN_CONFIG POSTERN_BIN
  BENCH_RESULTS    output folder (latest.json, latest.md, throughput.png)
  BENCH_SECONDS    seconds per SMTP workload and system (default 20); POP3 phases take 0.6 of it
  BENCH_POP_MESSAGES messages per POP3 mailbox (default 1000)
  BENCH_IDLE_COUNTS  idle connection counts (default "1000,10000")
"""
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
ENV = os.environ
TMP = ENV["BENCH_TMP"]
USERS = ENV["BENCH_USERS"]
DOMAIN = ENV.get("BENCH_DOMAIN", "example.test")
MS = os.path.join(TMP, "ms")
MAILROOT = os.path.join(MS, "mail", DOMAIN)
PN_DATA = ENV["POSTERN_DATA"]
PN_MESSAGES = os.path.join(PN_DATA, "messages")
RESULTS = ENV["BENCH_RESULTS"]
SECONDS = float(ENV.get("BENCH_SECONDS", "20"))
POP_SECONDS = max(4.0, round(SECONDS * 0.6))
SINK_SECONDS = max(4.0, round(SECONDS * 0.4))
POP_MESSAGES = int(ENV.get("BENCH_POP_MESSAGES", "1000"))
IDLE_COUNTS = [int(x) for x in ENV.get("BENCH_IDLE_COUNTS", "1000,10000").split(",") if x]
DRAIN_TIMEOUT = float(ENV.get("BENCH_DRAIN_TIMEOUT", "90"))
CLK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
PORT = {k: int(ENV[k]) for k in ("PF_SMTP_PORT", "DV_POP_PORT", "PN_SMTP_PORT", "PN_POP_PORT", "SINK_SMTP_PORT", "SINK_POP_PORT")}
PF = "Postfix+Dovecot"
PN = "Postern"
POP_BOXES = [l.split()[0] for l in open(USERS) if l.startswith("pop")]
started = []  # helper processes (sinks, idle holders) to stop on exit


def log(msg=""):
    print(msg, flush=True)


def stop_helpers():
    for p in started:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def on_term(signum, frame):
    raise SystemExit(128 + signum)


# ------------------------------------------------------------------ /proc sampling

def proc_stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s.rsplit(")", 1)[1].split()
    return {"state": rest[0], "ppid": int(rest[1]), "sid": int(rest[3]),
            "cpu": (int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])) / CLK}


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def system_pids(system):
    """Every live process of a system: Postern's one process; all processes of the Postfix and
    Dovecot master sessions (both masters are session leaders)."""
    if system == PN:
        return [int(ENV["POSTERN_PID"])]
    sids = {int(ENV["PF_MASTER_PID"]), int(ENV["DV_MASTER_PID"])}
    out = []
    for p in all_pids():
        st = proc_stat(p)
        if st and st["sid"] in sids and st["state"] not in "ZX":
            out.append(p)
    return out


def system_cpu(system):
    """CPU seconds so far of a system's processes, including their reaped children."""
    return sum((proc_stat(p) or {"cpu": 0})["cpu"] for p in system_pids(system))


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def system_memory(system):
    pids = system_pids(system)
    return {"pss_mib": round(sum(pss_kib(p) for p in pids) / 1024, 1), "processes": len(pids)}


def machine_times():
    """CPU seconds of the whole machine so far: processes (user+nice+system), interrupts
    (irq+softirq: loopback TCP is processed there too), steal (taken by the hypervisor), total."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return {"proc": (v[0] + v[1] + v[2]) / CLK, "irq": (v[5] + v[6]) / CLK, "steal": v[7] / CLK, "total": sum(v[:8]) / CLK}


def machine_busy():
    t = machine_times()
    return t["proc"] + t["irq"] + t["steal"], t["total"]


class CPUWindow:
    """CPU seconds used by the system under test, the generator, everything else, over a window."""

    def __init__(self, system):
        self.system = system
        self.sys0 = system_cpu(system)
        self.m0 = machine_times()
        self.t0 = time.time()

    def close(self, generator_cpu):
        m1 = machine_times()
        d = {k: m1[k] - self.m0[k] for k in m1}
        wall = time.time() - self.t0
        server = system_cpu(self.system) - self.sys0
        busy = d["proc"] + d["irq"] + d["steal"]
        other = max(0.0, d["proc"] - server - generator_cpu)
        pct = lambda x: round(100 * x / (wall * NCPU), 1)
        return {"wall_s": round(wall, 2), "server_cpu_s": round(server, 2), "generator_cpu_s": round(generator_cpu, 2),
                "other_processes_cpu_s": round(other, 2), "irq_cpu_s": round(d["irq"], 2), "steal_cpu_s": round(d["steal"], 2),
                "machine_busy_cpu_s": round(busy, 2),
                "server_pct": pct(server), "generator_pct": pct(generator_cpu), "other_processes_pct": pct(other),
                "irq_pct": pct(d["irq"]), "steal_pct": pct(d["steal"]), "machine_busy_pct": pct(busy)}


# ------------------------------------------------------------------ counting delivered mail

def count_maildir():
    n = 0
    try:
        users = os.listdir(MAILROOT)
    except FileNotFoundError:
        return 0
    for u in users:
        if u.startswith("pop"):
            continue
        for sub in ("new", "cur"):
            try:
                n += sum(1 for _ in os.scandir(os.path.join(MAILROOT, u, "Maildir", sub)))
            except FileNotFoundError:
                pass
    return n


def count_postern():
    try:
        return sum(1 for e in os.scandir(PN_MESSAGES) if len(e.name) == 32)
    except FileNotFoundError:
        return 0


def postfix_queue():
    q = os.path.join(MS, "postfix", "spool")
    n = 0
    for d in ("incoming", "active", "deferred", "maildrop", "hold"):
        for _, _, files in os.walk(os.path.join(q, d)):
            n += len(files)
    return n


COUNT = {PF: count_maildir, PN: count_postern}
SMTP_PORT = {PF: PORT["PF_SMTP_PORT"], PN: PORT["PN_SMTP_PORT"]}
POP_PORT = {PF: PORT["DV_POP_PORT"], PN: PORT["PN_POP_PORT"]}


# ------------------------------------------------------------------ running the generator

def loadgen(*args, timeout=None):
    cmd = [PY, os.path.join(HERE, "loadgen.py"), *map(str, args), "--users", USERS, "--domain", DOMAIN]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen {' '.join(map(str, args))} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class PerfProbe:
    """Around one Postern run: `perf stat` (task-clock, context switches: cheap software counters)
    always when perf exists; with BENCH_PERF=1 also `perf record -g` into bench/results/."""

    def __init__(self, system, tag):
        self.procs = []
        self.tag = tag
        perf = shutil.which("perf")
        if system != PN or not perf:
            return
        pid = ENV["POSTERN_PID"]
        self.stat_out = os.path.join(TMP, f"perf-stat-{tag}.txt")
        self.procs.append(subprocess.Popen([perf, "stat", "-x", ",", "-e", "task-clock,context-switches", "-p", pid,
                                            "-o", self.stat_out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if ENV.get("BENCH_PERF"):
            self.data = os.path.join(TMP, f"perf-{tag}.data")
            self.procs.append(subprocess.Popen([perf, "record", "-F", "999", "-g", "-p", pid, "-o", self.data],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.3)

    def close(self):
        if not self.procs:
            return {}
        for p in self.procs:
            p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        out = {}
        try:
            for line in open(self.stat_out):
                f = line.strip().split(",")
                if len(f) > 2 and f[2] in ("task-clock", "context-switches") and f[0].replace(".", "").isdigit():
                    out[f[2]] = float(f[0])
        except OSError:
            pass
        if ENV.get("BENCH_PERF") and os.path.exists(getattr(self, "data", "")):
            report = os.path.join(RESULTS, f"perf-postern-{self.tag}.txt")
            with open(report, "w") as fh:
                fh.write("# by shared object\n")
                fh.flush()
                subprocess.run(["perf", "report", "-i", self.data, "--no-children", "--sort", "dso", "-g", "none",
                                "--percent-limit", "0.5"], stdout=fh, stderr=subprocess.DEVNULL, timeout=300)
                fh.write("\n\n# by symbol (self)\n")
                fh.flush()
                subprocess.run(["perf", "report", "-i", self.data, "--no-children", "--sort", "dso,symbol", "-g", "none",
                                "--percent-limit", "0.3"], stdout=fh, stderr=subprocess.DEVNULL, timeout=300)
                fh.write("\n\n# inclusive (children)\n")
                fh.flush()
                subprocess.run(["perf", "report", "-i", self.data, "--children", "--sort", "symbol", "-g", "none",
                                "--percent-limit", "1"], stdout=fh, stderr=subprocess.DEVNULL, timeout=300)
            with open(report) as fh:
                text = "\n".join(line.rstrip() for line in fh)
            with open(report, "w") as fh:
                fh.write(text + "\n")
            out["perf_report"] = report
        return out


def smtp_run(system, port, seconds, per_conn, size, count_delivered=True, tag=None):
    before = COUNT[system]() if count_delivered else 0
    win = CPUWindow(system) if system in COUNT else None
    probe = PerfProbe(system, tag) if tag else None
    r = loadgen("smtp", "--port", port, "--sessions", 20, "--procs", min(2, NCPU), "--duration", seconds,
                "--per-conn", per_conn, "--size", size, timeout=seconds + 60)
    perf = probe.close() if probe else {}
    res = {"accepted": r["accepted"], "accepted_per_s": round(r["accepted_per_s"], 1), "connections": r["connections"],
           "errors": r["errors"], "generator_cpu_s": round(r["cpu_s"], 2), "elapsed_s": round(r["elapsed"], 2)}
    if count_delivered:
        # delivered = counted in the mailboxes; the clock runs from the generator's start until the
        # last accepted message is there (Postfix delivers after its 250; Postern before it)
        deadline = time.time() + DRAIN_TIMEOUT
        while True:
            delivered = COUNT[system]() - before
            if delivered >= r["accepted"] or time.time() > deadline:
                break
            time.sleep(0.05)
        t_done = time.time()
        took = max(r["elapsed"], t_done - r["t_start"])
        res.update(delivered=delivered, delivered_seconds=round(took, 2),
                   delivered_per_s=round(delivered / took, 1), drained=delivered >= r["accepted"])
        if system == PF:
            # wait until the queue is empty so that nothing runs in the background of the next run
            while postfix_queue() and time.time() < deadline + 60:
                time.sleep(0.1)
        res["cpu"] = server_cpu(win, r, perf, ops=r["accepted"])
    else:
        res["cpu"] = generator_cpu(r)
    return res


def server_cpu(win, r, perf, ops):
    """The CPU window of a run against a real server, per op, with perf's figures if any."""
    cpu = win.close(r["cpu_s"])
    cpu["ops"] = ops
    cpu["server_ms_per_op"] = round(1000 * cpu["server_cpu_s"] / max(1, ops), 3)
    if "context-switches" in perf:
        cpu["context_switches_per_op"] = round(perf["context-switches"] / max(1, ops), 1)
    if "perf_report" in perf:
        cpu["perf_report"] = os.path.relpath(perf["perf_report"], os.path.dirname(HERE))
    return cpu


def generator_cpu(r):
    """Against an in-memory sink only the generator's own CPU is measured."""
    return {"generator_cpu_s": round(r["cpu_s"], 2), "generator_pct": round(100 * r["cpu_s"] / (r["elapsed"] * NCPU), 1)}


def start_sinks():
    ss = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    p1 = subprocess.Popen([ss, "-u", "postfix", f"127.0.0.1:{PORT['SINK_SMTP_PORT']}", "1024"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p2 = subprocess.Popen([PY, os.path.join(HERE, "sink.py"), "pop3", "--port", PORT["SINK_POP_PORT"].__str__(),
                           "--messages", str(POP_MESSAGES)], stdout=subprocess.DEVNULL)
    started.extend([p1, p2])
    for port in (PORT["SINK_SMTP_PORT"], PORT["SINK_POP_PORT"]):
        wait_port(port)
    return p1, p2


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening")


def proc_cpu(pid):
    st = proc_stat(pid)
    return st["cpu"] if st else 0.0


# ------------------------------------------------------------------ the sync probe

def who(pid):
    """'postfix cleanup', 'dovecot lmtp', 'postern' … from /proc/PID/exe (threads too)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return f"pid {pid}"
    if "/postfix/" in exe:
        return "postfix " + os.path.basename(exe)
    if "/dovecot" in exe:
        return "dovecot " + os.path.basename(exe)
    return os.path.basename(exe)


def sync_probe():
    """One authenticated message through each system under strace (every process and thread):
    which files each one syncs. Postern's SQLite WAL writes are counted too, to tell whether its
    index commit was synced."""
    strace = shutil.which("strace")
    if not strace:
        return {"note": "strace not installed: probe skipped"}
    out = {}
    for system in (PF, PN):
        pids = system_pids(system)
        logf = os.path.join(TMP, f"strace-{'pf' if system == PF else 'pn'}.log")
        args = [strace, "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync,sync_file_range,syncfs,sync,msync,pwrite64",
                "-o", logf]
        for p in pids:
            args += ["-p", str(p)]
        tr = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)  # attach
        before = COUNT[system]()
        loadgen("latency", "--port", SMTP_PORT[system], "--samples", 1, "--max-seconds", 10, timeout=30)
        end = time.time() + 15
        while COUNT[system]() <= before and time.time() < end:
            time.sleep(0.05)
        time.sleep(0.5)
        tr.send_signal(signal.SIGINT)
        try:
            tr.wait(10)
        except subprocess.TimeoutExpired:
            tr.kill()
        calls, wal_writes, wal_syncs = [], 0, 0
        try:
            for line in open(logf):
                m = re.match(r"(?:\[pid\s+)?(\d+)\]?\s+(\w+)\((\d+)<([^>]*)>", line)
                if not m:
                    continue
                pid, call, _, path = m.groups()
                if call == "pwrite64":
                    wal_writes += path.endswith("-wal")
                    continue
                wal_syncs += path.endswith("-wal")
                path = path.replace(TMP, "$TMP")
                path = re.sub(r"/[0-9a-f]{32}$", "/<uid>", path)
                path = re.sub(r"(incoming|active|deferred)/[0-9A-Za-z]+$", r"\1/<queue-id>", path)
                path = re.sub(r"/(tmp|new|cur)/[^/]+$", r"/\1/<file>", path)
                path = re.sub(r"/mail/([^/]+)/[^/]+/Maildir", r"/mail/\1/<user>/Maildir", path)
                calls.append(f"{who(pid)}: {call}({path})")
        except FileNotFoundError:
            pass
        counts = {}
        for c in calls:
            counts[c] = counts.get(c, 0) + 1
        out[system] = {"calls": len(calls), "distinct": [f"{c} ×{n}" if n > 1 else c for c, n in counts.items()],
                       "wal_writes": wal_writes, "wal_syncs": wal_syncs}
    pn = out[PN]
    if pn["wal_writes"] and not pn["wal_syncs"]:
        pn["warning"] = (f"Postern wrote its SQLite WAL ({pn['wal_writes']} pwrite64 calls) but never synced it: its index "
                         "commit is not durable at the 250. (GRDB's DatabasePool sets PRAGMA synchronous = NORMAL when it "
                         "enables WAL, after Configuration.prepareDatabase has set FULL.)")
    return out


# ------------------------------------------------------------------ POP3 mailboxes

def fill_dovecot(n):
    """Writes n Maildir files into each POP3 mailbox, as LMTP would have stored them (LF line ends)."""
    uid = gid = int(ENV.get("VMAIL_UID", "5000"))
    body_line = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=+\n"
    host = "bench"
    for box in POP_BOXES:
        home = os.path.join(MAILROOT, box)
        md = os.path.join(home, "Maildir")
        for d in (os.path.join(MS, "mail"), MAILROOT, home, md, md + "/new", md + "/cur", md + "/tmp"):
            os.makedirs(d, exist_ok=True)
            os.chown(d, uid, gid)
        for d in (home, md, md + "/new", md + "/cur", md + "/tmp"):
            os.chmod(d, 0o700)
        now = int(time.time())
        for i in range(n):
            msg = (f"Return-Path: <u1@{DOMAIN}>\nDelivered-To: {box}@{DOMAIN}\nFrom: u1@{DOMAIN}\nTo: {box}@{DOMAIN}\n"
                   f"Subject: bench {i}\nMessage-ID: <fill.{box}.{i}@bench.example.test>\nMIME-Version: 1.0\n"
                   f"Content-Type: text/plain; charset=us-ascii\n\n" + body_line * 50).encode()
            name = f"{now}.M{i}P{os.getpid()}.{host},S={len(msg)}"
            p = os.path.join(md, "new", name)
            with open(p, "wb") as f:
                f.write(msg)
            os.chown(p, uid, gid)
            os.chmod(p, 0o600)


def pop_stat(system, box, password):
    import poplib
    p = poplib.POP3("127.0.0.1", POP_PORT[system], timeout=60)
    p.user(f"{box}@{DOMAIN}")
    p.pass_(password)
    n, size = p.stat()
    p.quit()
    return n, size


def pop_run(system, port, mode, seconds, retr=20, tag=None):
    win = CPUWindow(system) if system in COUNT else None
    probe = PerfProbe(system, tag) if tag else None
    r = loadgen("pop", "--port", port, "--mailboxes", ",".join(POP_BOXES), "--mode", mode, "--retr", retr,
                "--duration", seconds, "--procs", min(2, NCPU), timeout=seconds + 60)
    perf = probe.close() if probe else {}
    res = {"logins": r["logins"], "logins_per_s": round(r["logins_per_s"], 1), "retr": r["retr"],
           "retr_per_s": round(r["retr_per_s"], 1), "mb_per_s": round(r["mb_per_s"], 2), "errors": r["errors"],
           "elapsed_s": round(r["elapsed"], 2)}
    if win:
        res["cpu"] = server_cpu(win, r, perf, ops=r["retr"] if mode == "retr" else r["logins"])
    else:
        res["cpu"] = generator_cpu(r)
    return res


# ------------------------------------------------------------------ idle connections

def idle_run(system, count):
    p = subprocess.Popen([PY, os.path.join(HERE, "loadgen.py"), "idle", "--port", str(SMTP_PORT[system]), "--count", str(count),
                          "--parallel", "1000", "--connect-timeout", "3", "--greeting-timeout", "10"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    started.append(p)
    line = p.stdout.readline()
    stats = json.loads(line) if line.strip() else {"error": "idle holder died"}
    time.sleep(1.0)
    stats.update(system_memory(system))
    try:
        p.stdin.write("close\n")
        p.stdin.flush()
        p.stdin.close()
    except OSError:
        pass
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
    return stats


# ------------------------------------------------------------------ environment facts

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        return ""


def facts():
    cpu_model = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    df = sh(f"df -hT {TMP} | tail -1")
    src = sh(f"df --output=source {TMP} | tail -1")
    lsblk = sh("lsblk -d -n -o NAME,SIZE,ROTA,TYPE,MODEL 2>/dev/null | awk '$4==\"disk\"' | tr -s ' ' | "
               "while read -r n rest; do echo \"$n $rest write_cache=$(cat /sys/block/$n/queue/write_cache 2>/dev/null)\"; done")
    git = sh(f"cd {HERE}/.. && git rev-parse --short HEAD") + (" (with uncommitted changes)" if sh(f"cd {HERE}/.. && git status --porcelain -- Sources Package.swift Package.resolved") else "")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cores": NCPU, "cpu": cpu_model, "memory": mem, "kernel": sh("uname -r"),
                    "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
                    "filesystem": df, "block_devices": lsblk, "device": src},
        "versions": {"postfix": sh("postconf -d -h mail_version"), "dovecot": sh("dovecot --version"),
                     "postern": f"git {git}, release build of {sh('date -u -r ' + ENV['POSTERN_BIN'] + ' +%Y-%m-%dT%H:%MZ')}, " + sh("swift --version 2>&1 | head -1"),
                     "python": sys.version.split()[0],
                     "generator_loop": sh(f"{sys.executable} -c 'import uvloop; print(\"uvloop \" + uvloop.__version__)' 2>/dev/null || echo asyncio")},
        "durability": {
            "postfix": {k: sh(f"postconf -c {MS}/postfix/etc -xh {k}") for k in ("default_process_limit", "smtpd_client_connection_count_limit", "virtual_transport")},
            "dovecot": {k: sh(f"doveconf -c {MS}/dovecot/dovecot.conf -h {k}") for k in ("mail_fsync", "mail_location", "mail_save_crlf")},
            "postern": {"config": open(ENV["POSTERN_CONFIG"]).read()},
        },
    }


SYNC_TEXT = {
    PF: ("Postfix+Dovecot: before smtpd answers 250, Postfix's cleanup writes the queue file under "
         "spool/incoming and fsync()s it (always; Postfix has no switch for it; the queue directory is not synced). "
         "The message reaches the mailbox later: qmgr hands it to Postfix's lmtp client, and Dovecot's LMTP "
         "(mail_fsync = {mail_fsync}) writes it into Maildir/tmp/, fsync()s it, renames it into new/, fdatasync()s "
         "the new/ directory and its dovecot-uidlist, then answers 250 to Postfix, which removes the queue file."),
    PN: ("Postern: as designed (docs/flow.md), the messages/<uid> files are written (by the worker thread that "
         "prepared the message, or for a small one by the committer), then one committer thread takes every "
         "waiting message, fsync()s each file and the messages/ directory (in parallel), then commits the index "
         "rows in one SQLite transaction meant to be synced (WAL, synchronous=FULL) — all before the 250, so the "
         "message is in the mailbox at the 250. The strace probe below shows what actually happens."),
}


# ------------------------------------------------------------------ report

def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return round(a / b, 2)


def fmt(v, nd=0):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def build_rows(R):
    rows = []  # (workload, metric, pf, pn, ratio_str, target, verdict)

    def add(wl, metric, pf, pn, nd=0, target=None, better="higher", ceiling=None):
        r = ratio(pn, pf)
        verdict = ""
        if target is not None and r is not None:
            verdict = "met" if (r >= target if better == "higher" else r <= target) else "not met"
        rows.append({"workload": wl, "metric": metric, "pf": pf, "pn": pn, "nd": nd, "ratio": r,
                     "target": (f"≥ {target}×" if target and better == "higher" else (f"≤ {target}×" if target else "")),
                     "verdict": verdict, "better": better, "ceiling": ceiling})

    for key, label, tgt in (("a", "(a) submission 4 KB, 20 sessions, 1 msg/conn", 5),
                            ("b", "(b) submission 4 KB, 20 sessions, 10 msg/conn", 5),
                            ("c", "(c) submission 100 KB, 20 sessions, 1 msg/conn", 5)):
        if key not in R["workloads"]:
            continue
        w = R["workloads"][key]
        add(label, "delivered msg/s", w[PF]["delivered_per_s"], w[PN]["delivered_per_s"], target=tgt,
            ceiling=w.get("sink", {}).get("accepted_per_s"))
        add(label, "accepted msg/s (250 received)", w[PF]["accepted_per_s"], w[PN]["accepted_per_s"])
    if "d" in R["workloads"]:
        d = R["workloads"]["d"]
        add("(d) POP3, 4 clients, 1,000-msg mailboxes", "logins/s (USER+PASS+STAT+QUIT)",
            d["login"][PF]["logins_per_s"], d["login"][PN]["logins_per_s"], ceiling=d["login"].get("sink", {}).get("logins_per_s"))
        add("(d) POP3, 4 clients, 1,000-msg mailboxes", "RETR/s (20 RETR per login)",
            d["retr"][PF]["retr_per_s"], d["retr"][PN]["retr_per_s"], target=2, ceiling=d["retr"].get("sink", {}).get("retr_per_s"))
    if "e" in R["workloads"]:
        e = R["workloads"]["e"]
        add("(e) latency, 1 client, AUTH+1 msg+QUIT per conn", "p50 ms (connect to 221)", e[PF]["p50_ms"], e[PN]["p50_ms"], 2, better="lower")
        add("(e) latency, 1 client, AUTH+1 msg+QUIT per conn", "p99 ms (connect to 221)", e[PF]["p99_ms"], e[PN]["p99_ms"], 2, better="lower")
        add("(e) latency, 1 client, AUTH+1 msg+QUIT per conn", "p50 ms end-of-data → 250", e[PF]["eom_p50_ms"], e[PN]["eom_p50_ms"], 2, better="lower")
    if "f" in R["workloads"]:
        f = R["workloads"]["f"]
        add("(f) memory", "idle PSS MiB", f["idle"][PF]["pss_mib"], f["idle"][PN]["pss_mib"], 1, better="lower")
        for n in IDLE_COUNTS:
            k = str(n)
            if k in f:
                pf, pn = f[k][PF], f[k][PN]
                add("(f) memory", f"PSS MiB with {n:,} idle SMTP connections", pf["pss_mib"], pn["pss_mib"], 1, better="lower")
                add("(f) memory", f"  of {n:,}: greeted (220 received)", pf["greeted"], pn["greeted"])
    return rows


def markdown(R):
    F = R["facts"]
    m = F["machine"]
    L = []
    L.append(f"Run of `bench/run` on {F['date']}: {m['cores']} cores ({m['cpu']}), {m['memory']} RAM, {m['os']}, kernel {m['kernel']}.")
    L.append(f"Disk: `{m['filesystem']}`; block devices: `{m['block_devices'].replace(chr(10), '; ')}` (ROTA=1 means the kernel reports it as rotational).")
    L.append(f"Versions: Postfix {F['versions']['postfix']}, Dovecot {F['versions']['dovecot']}, Postern {F['versions']['postern']}; "
             f"load generator bench/loadgen.py on Python {F['versions']['python']} with {F['versions'].get('generator_loop', 'asyncio')}.")
    L.append(f"Each SMTP workload ran {SECONDS:g} s per system, each POP3 phase {POP_SECONDS:g} s; Postfix+Dovecot first, then Postern.")
    L.append("")
    L.append("| workload | metric | Postfix+Dovecot | Postern | Postern / Postfix+Dovecot | target | generator ceiling (in-memory sink) |")
    L.append("|---|---|---:|---:|---:|---|---:|")
    for r in R["rows"]:
        rt = "—" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        if r["better"] == "lower" and r["ratio"] is not None:
            rt += " (lower is better)"
        tgt = f"{r['target']} {r['verdict']}".strip()
        L.append(f"| {r['workload']} | {r['metric']} | {fmt(r['pf'], r['nd'])} | {fmt(r['pn'], r['nd'])} | {rt} | {tgt} | {fmt(r['ceiling'])} |")
    f = R["workloads"].get("f", {})
    if f:
        pn_max = max((f[str(n)][PN]["pss_mib"] for n in IDLE_COUNTS if str(n) in f), default=None)
        n_max = max((n for n in IDLE_COUNTS if str(n) in f), default=None)
        if pn_max is not None:
            ok = f[str(n_max)][PN]["greeted"] >= n_max and pn_max < 200
            L.append("")
            L.append(f"Target: {n_max:,} idle connections in under 200 MiB — Postern held {f[str(n_max)][PN]['greeted']:,} greeted connections "
                     f"in {pn_max:.1f} MiB PSS: **{'met' if ok else 'not met'}**.")
    L.append("")
    L.append(f"CPU during each run, in % of the whole machine ({NCPU} cores = 100 %). 'server' is every process of the system "
             "under test (Postfix+Dovecot: both masters' sessions, reaped children included); 'other processes' is everything "
             "else on the machine; irq+softirq includes loopback TCP; steal is time the hypervisor gave elsewhere:")
    L.append("")
    L.append("| run | system | wall s | server % | generator % | other processes % | irq+softirq % | steal % | machine busy % | server CPU ms per op | context switches per op |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, sysmap in R["cpu_rows"]:
        for system, c in sysmap.items():
            L.append(f"| {name} | {system} | {c['wall_s']} | {c['server_pct']} | {c['generator_pct']} | {c['other_processes_pct']} | "
                     f"{c['irq_pct']} | {c['steal_pct']} | {c['machine_busy_pct']} | {c.get('server_ms_per_op', '—')} | {c.get('context_switches_per_op', '—')} |")
    L.append("")
    L.append("An op is an accepted message for (a)–(c), a login for (d) login, a RETR for (d) retr. Context switches are "
             "counted for Postern only (`perf stat -e context-switches -p PID`, all threads).")
    L.append("")
    L.append("What each system syncs before it acknowledges a message:")
    L.append("")
    for system in (PF, PN):
        L.append(f"- {R['sync_text'][system]}")
    probe = R.get("sync_probe", {})
    if probe and PF in probe:
        L.append("")
        L.append("Observed with `strace -f -e trace=fsync,fdatasync,sync_file_range,syncfs,sync,msync` on every process of each system while one message went through:")
        L.append("")
        for system in (PF, PN):
            L.append(f"- {system}: {probe[system]['calls']} sync calls — " + "; ".join(f"`{c}`" for c in probe[system]["distinct"]))
            if probe[system].get("warning"):
                L.append(f"  **{probe[system]['warning']}**")
    notes = R.get("notes", [])
    if notes:
        L.append("")
        L.append("Notes:")
        L.append("")
        for n in notes:
            L.append(f"- {n}")
    return "\n".join(L) + "\n"


def chart(R, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not available: no chart")
        return False
    W = R["workloads"]
    groups = []
    for key, label in (("a", "(a) 4 KB\n1 msg/conn"), ("b", "(b) 4 KB\n10 msg/conn"), ("c", "(c) 100 KB\n1 msg/conn")):
        if key in W:
            groups.append((label, W[key][PF]["delivered_per_s"], W[key][PN]["delivered_per_s"], W[key].get("sink", {}).get("accepted_per_s")))
    if "d" in W:
        d = W["d"]
        groups.append(("(d) POP3\nlogins/s", d["login"][PF]["logins_per_s"], d["login"][PN]["logins_per_s"], d["login"].get("sink", {}).get("logins_per_s")))
        groups.append(("(d) POP3\nRETR/s", d["retr"][PF]["retr_per_s"], d["retr"][PN]["retr_per_s"], d["retr"].get("sink", {}).get("retr_per_s")))
    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=110)
    x = range(len(groups))
    w = 0.27
    series = [(PF, 1, "#8c8c8c"), (PN, 2, "#2b6cb0"), ("generator ceiling (in-memory sink)", 3, "#e0e0e0")]
    for name, idx, color in series:
        vals = [g[idx] or 0 for g in groups]
        xs = [i + (idx - 2) * w for i in x]
        bars = ax.bar(xs, vals, w, label=name, color=color, edgecolor="#444444", linewidth=0.5)
        for b, v in zip(bars, vals):
            if v:
                ax.annotate(f"{v:,.0f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=7,
                            xytext=(0, 2), textcoords="offset points")
    ax.set_yscale("log")
    top = max((g[i] or 0) for g in groups for i in (1, 2, 3))
    ax.set_ylim(bottom=max(1, min((g[i] or top) for g in groups for i in (1, 2)) / 3), top=top * 4)
    ax.set_xticks(list(x))
    ax.set_xticklabels([g[0] for g in groups], fontsize=9)
    ax.set_ylabel("per second (log scale); SMTP: delivered msg/s")
    ax.set_title(f"Postern vs Postfix+Dovecot — {R['facts']['date']}, {NCPU} cores", fontsize=11)
    ax.legend(fontsize=8, loc="upper left", ncol=3)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


# ------------------------------------------------------------------ main

def main():
    signal.signal(signal.SIGTERM, on_term)
    t_begin = time.time()
    os.makedirs(RESULTS, exist_ok=True)
    R = {"facts": facts(), "workloads": {}, "cpu_rows": [], "notes": [],
         "settings": {"seconds": SECONDS, "pop_seconds": POP_SECONDS, "sink_seconds": SINK_SECONDS,
                      "pop_messages": POP_MESSAGES, "idle_counts": IDLE_COUNTS, "generator_procs": min(2, NCPU)}}
    F = R["facts"]
    R["sync_text"] = {PF: SYNC_TEXT[PF].format(mail_fsync=F["durability"]["dovecot"]["mail_fsync"]), PN: SYNC_TEXT[PN]}
    log(f"== {F['date']} · {NCPU} cores · {F['machine']['cpu']} · {F['machine']['memory']}")
    log(f"   disk: {F['machine']['filesystem']}")
    log(f"   block devices: {F['machine']['block_devices'].replace(chr(10), '; ')}")
    log(f"   Postfix {F['versions']['postfix']} · Dovecot {F['versions']['dovecot']} · Postern {F['versions']['postern']}")
    log(f"   Dovecot: mail_fsync = {F['durability']['dovecot']['mail_fsync']}, mail_location = {F['durability']['dovecot']['mail_location']}")
    log(f"   Postfix: default_process_limit = {F['durability']['postfix']['default_process_limit']}, smtpd_client_connection_count_limit = {F['durability']['postfix']['smtpd_client_connection_count_limit']}, virtual_transport = {F['durability']['postfix']['virtual_transport']}")
    b0, t0_ = machine_busy()
    time.sleep(3)
    b1, t1_ = machine_busy()
    idle_busy = round(100 * (b1 - b0) / (3 * NCPU), 1)
    R["machine_busy_before_pct"] = idle_busy
    log(f"   machine busy before the workloads (3 s, both systems idle): {idle_busy} % of {NCPU} cores")
    if idle_busy > 15:
        msg = (f"Other processes used {idle_busy} % of the machine before the workloads began (see the 'other CPU' column): "
               "the figures are noisier than on a quiet machine.")
        log("   WARNING: " + msg)
        R["notes"].append(msg)
    log("== what each system syncs before acknowledging")
    for s in (PF, PN):
        log("   " + R["sync_text"][s])
    log("== sync probe: one message through each system under strace")
    R["sync_probe"] = sync_probe()
    for s in (PF, PN):
        p = R["sync_probe"].get(s)
        if p:
            log(f"   {s}: {p['calls']} sync calls")
            for c in p["distinct"]:
                log(f"      {c}")
            if p.get("warning"):
                log(f"   WARNING: {p['warning']}")
                R["notes"].insert(0, "**Durability:** " + p["warning"])
        else:
            log("   " + R["sync_probe"].get("note", ""))

    log("== (f) idle memory (PSS from /proc/PID/smaps_rollup, summed over each system's processes)")
    f = {"idle": {s: system_memory(s) for s in (PF, PN)}}
    for s in (PF, PN):
        log(f"   {s}: {f['idle'][s]['pss_mib']} MiB PSS in {f['idle'][s]['processes']} processes")

    log("== warm-up (not counted): every user logs in once by SMTP AUTH (Postern verifies scrypt on a user's first")
    log("   login and then caches it in memory; Dovecot here compares plaintext passwords), then 3 s of load")
    for s in (PF, PN):
        t = time.time()
        lg = loadgen("logins", "--port", SMTP_PORT[s], "--procs", NCPU, timeout=300)
        w = smtp_run(s, SMTP_PORT[s], 3, 1, 4096)
        log(f"   {s}: {lg['logins']} first logins in {time.time() - t - 3:.1f} s (errors {lg['errors']}); then {w['accepted']} messages accepted, errors {w['errors']}")
        if w["accepted"] == 0 or lg["errors"]:
            raise RuntimeError(f"{s} failed the warm-up: {lg['errors']} {w['errors']}")

    log("== generator ceiling: the same generator against in-memory sinks (Postfix's smtp-sink with AUTH; sink.py for POP3)")
    start_sinks()
    sinks = {}
    for key, per_conn, size in (("a", 1, 4096), ("b", 10, 4096), ("c", 1, 102400)):
        r = smtp_run("sink", PORT["SINK_SMTP_PORT"], SINK_SECONDS, per_conn, size, count_delivered=False)
        sinks[key] = r
        log(f"   ({key}) sink accepted {r['accepted_per_s']:,.0f} msg/s; generator CPU {r['cpu']['generator_pct']} % of the machine; errors {r['errors']}")
    for mode in ("login", "retr"):
        r = pop_run("sink", PORT["SINK_POP_PORT"], mode, SINK_SECONDS)
        sinks["pop-" + mode] = r
        log(f"   (d) POP3 sink {mode}: {r['logins_per_s']:,.0f} logins/s, {r['retr_per_s']:,.0f} RETR/s; generator CPU {r['cpu']['generator_pct']} % of the machine")
    stop_helpers()
    started.clear()

    for key, per_conn, size, label in (("a", 1, 4096, "4 KB, 20 sessions, 1 message per connection"),
                                       ("b", 10, 4096, "4 KB, 20 sessions, 10 messages per connection"),
                                       ("c", 1, 102400, "100 KB, 20 sessions, 1 message per connection")):
        log(f"== ({key}) authenticated submission, {label}, {SECONDS:g} s each")
        W = {"sink": sinks[key]}
        for s in (PF, PN):
            r = smtp_run(s, SMTP_PORT[s], SECONDS, per_conn, size, tag=key)
            W[s] = r
            c = r["cpu"]
            log(f"   {s:16s} accepted {r['accepted']:6d} ({r['accepted_per_s']:8.1f}/s)  delivered {r['delivered']:6d} in {r['delivered_seconds']:6.1f} s "
                f"=> {r['delivered_per_s']:8.1f} msg/s{'' if r['drained'] else ' (NOT all delivered)'}  errors {r['errors']}")
            log(f"   {'':16s} CPU % of the machine: server {c['server_pct']}, generator {c['generator_pct']}, other processes {c['other_processes_pct']}, "
                f"irq+softirq {c['irq_pct']}, steal {c['steal_pct']}; busy {c['machine_busy_pct']}")
        log(f"   ratio Postern / Postfix+Dovecot: {ratio(W[PN]['delivered_per_s'], W[PF]['delivered_per_s'])}× delivered msg/s (target ≥ 5×); "
            f"generator ceiling {sinks[key]['accepted_per_s']:,.0f} msg/s")
        R["workloads"][key] = W
        R["cpu_rows"].append((f"({key})", {s: W[s]["cpu"] for s in (PF, PN)}))

    log(f"== (d) POP3: fill {len(POP_BOXES)} mailboxes with {POP_MESSAGES} messages each")
    t = time.time()
    fill_dovecot(POP_MESSAGES)
    log(f"   Dovecot: {len(POP_BOXES) * POP_MESSAGES} Maildir files written directly in {time.time() - t:.1f} s")
    t = time.time()
    users = dict(l.split()[:2] for l in open(USERS) if l.strip())
    r = loadgen("fill", "--port", PORT["PN_SMTP_PORT"], "--sender", "u1", "--rcpts", ",".join(POP_BOXES), "--count", POP_MESSAGES,
                "--sessions", 20, "--procs", min(2, NCPU), timeout=600)
    log(f"   Postern: {r['accepted']} messages submitted through SMTP in {time.time() - t:.1f} s, errors {r['errors']}")
    for s in (PF, PN):
        sizes = [pop_stat(s, b, users[b]) for b in POP_BOXES]  # also the first login (Dovecot builds its index)
        log(f"   {s}: mailboxes hold {[n for n, _ in sizes]} messages, {sum(b for _, b in sizes) / sum(max(1, n) for n, _ in sizes):,.0f} octets each on average")
    D = {"login": {"sink": sinks["pop-login"]}, "retr": {"sink": sinks["pop-retr"]}}
    for mode, what in (("login", "USER+PASS+STAT+QUIT"), ("retr", "USER+PASS+STAT, 20 RETR, QUIT")):
        log(f"== (d) POP3 {mode}: 4 clients, each on its own mailbox, {what}, {POP_SECONDS:g} s each")
        for s in (PF, PN):
            r = pop_run(s, POP_PORT[s], mode, POP_SECONDS, tag="d-" + mode)
            D[mode][s] = r
            c = r["cpu"]
            log(f"   {s:16s} {r['logins_per_s']:8.1f} logins/s  {r['retr_per_s']:8.1f} RETR/s  {r['mb_per_s']:6.2f} MB/s  errors {r['errors']}  "
                f"CPU %: server {c['server_pct']}, generator {c['generator_pct']}, other {c['other_processes_pct']}, irq {c['irq_pct']}, steal {c['steal_pct']}")
        k = "logins_per_s" if mode == "login" else "retr_per_s"
        log(f"   ratio Postern / Dovecot: {ratio(D[mode][PN][k], D[mode][PF][k])}× {k.replace('_per_s', '/s')}; generator ceiling {D[mode]['sink'][k]:,.0f}/s")
        R["cpu_rows"].append((f"(d) {mode}", {s: D[mode][s]["cpu"] for s in (PF, PN)}))
    R["workloads"]["d"] = D

    log("== (e) latency: one client, AUTH + one 4 KB message + QUIT per connection, 500 samples (25 s cap)")
    E = {}
    for s in (PF, PN):
        r = loadgen("latency", "--port", SMTP_PORT[s], "--samples", 500, "--max-seconds", 25, timeout=90)
        E[s] = r
        log(f"   {s:16s} {r['samples']} samples: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms (end-of-data → 250: p50 {r['eom_p50_ms']} ms, p99 {r['eom_p99_ms']} ms), errors {r['errors']}")
    R["workloads"]["e"] = E
    R["notes"].append("(e) measures until the 250 and QUIT: for Postern the message is in the mailbox then; for Postfix it is in the queue and LMTP delivers it afterwards.")

    log("== (f) idle SMTP connections (one Python process opens them and waits for the 220 greeting on each)")
    for n in IDLE_COUNTS:
        f[str(n)] = {}
        for s in (PF, PN):
            st = idle_run(s, n)
            f[str(n)][s] = st
            log(f"   {n:6d} → {s:16s} connected {st.get('connected')}, greeted {st.get('greeted')}, other reply {st.get('other_reply')} "
                f"{st.get('other_replies') or ''}, no reply {st.get('no_reply')}, connect failed {st.get('refused_or_failed')} "
                f"(in {st.get('open_seconds')} s): {st['pss_mib']} MiB PSS in {st['processes']} processes")
            time.sleep(2)
    pf_limit = F["durability"]["postfix"]["default_process_limit"]
    pf_per_client = F["durability"]["postfix"]["smtpd_client_connection_count_limit"]
    pf_other = {}
    for n in IDLE_COUNTS:
        for text, c in f[str(n)][PF].get("other_replies", {}).items():
            pf_other[text] = pf_other.get(text, 0) + c
    R["notes"].append(f"(f) Postfix runs one smtpd process per SMTP session, at most default_process_limit = {pf_limit}, and anvil allows "
                      f"one client address at most smtpd_client_connection_count_limit = {pf_per_client} concurrent sessions (Postfix's "
                      "defaults; every connection here comes from 127.0.0.1, as through an I2P tunnel). Over that limit smtpd answers "
                      + (", ".join(f"`{t}` ({c}×)" for t, c in pf_other.items()) or "nothing")
                      + "; connections beyond the process limit wait in the listen queue without a greeting. 'greeted' counts 220 replies. "
                      "Postern's bench configuration sets [smtp] max_sessions = 12000.")
    R["workloads"]["f"] = f

    R["rows"] = build_rows(R)
    R["elapsed_s"] = round(time.time() - t_begin, 1)
    md = markdown(R)
    with open(os.path.join(RESULTS, "latest.md"), "w") as fh:
        fh.write(md)
    with open(os.path.join(RESULTS, "latest.json"), "w") as fh:
        json.dump(R, fh, indent=1, default=str)
    png = os.path.join(RESULTS, "throughput.png")
    chart(R, png)
    log("")
    log("== results")
    log(md)
    log(f"written: {RESULTS}/latest.md, latest.json, throughput.png (workloads took {R['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_helpers()
