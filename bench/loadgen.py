#!/usr/bin/env python3
"""Load generator for bench/run: SMTP submission with AUTH, POP3, single-client latency, idle connections.

Multi-process (at most one process per core, --procs), asyncio inside each process, standard
library only. Every mode prints one JSON object on stdout; the generator's own CPU time (user+sys
of its worker processes) is part of it, so the caller can show that the generator is not the
bottleneck.

  loadgen.py smtp    --port P --users F --sessions 20 --procs 2 --duration 20 --per-conn 1 --size 4096
  loadgen.py fill    --port P --users F --sender u1 --rcpts pop1,pop2 --count 1000 --sessions 8
  loadgen.py pop     --port P --users F --mailboxes pop1,...,pop4 --mode login|retr --retr 20 --duration 10
  loadgen.py latency --port P --users F --samples 500 --max-seconds 25 --size 4096
  loadgen.py idle    --port P --count 10000 [--greeting-timeout 20]   (holds until stdin closes)
  loadgen.py logins  --port P --users F     (AUTH once as every user: warm-up)

USERS file: one "NAME PASSWORD" per line; addresses are NAME@--domain.
A 2xx reply to AUTH counts as success (235 from real servers, 250 from Postfix's smtp-sink).
"""
import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import random
import resource
import socket
import sys
import time

try:
    # libuv's event loop (Debian: python3-uvloop) halves the generator's CPU per message, which
    # leaves more of the two cores to the server under test; plain asyncio works the same, slower.
    import uvloop
    run = uvloop.run if hasattr(uvloop, "run") else (lambda main: (uvloop.install(), asyncio.run(main))[1])
    EVENT_LOOP = "uvloop " + uvloop.__version__
except ImportError:
    run = asyncio.run
    EVENT_LOOP = "asyncio"


def load_users(path):
    users = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                users.append((parts[0], parts[1]))
    return users


def make_body(size, sender, rcpt, seq):
    """An RFC 5322 message of about `size` octets, CRLF line ends, never a line starting with '.'."""
    head = (f"From: {sender}\r\nTo: {rcpt}\r\nSubject: bench {seq}\r\n"
            f"Message-ID: <{seq}.{os.getpid()}.{time.time_ns()}@bench.example.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
    line = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=+\r\n"  # 78 octets
    n = max(1, (size - len(head)) // len(line))
    return head + line * n


class Reply(Exception):
    def __init__(self, stage, code, text=b""):
        super().__init__(f"{stage}: {code} {text[:80]!r}")
        self.stage, self.code = stage, code


async def read_reply(reader):
    """One (possibly multi-line) SMTP reply -> (code, last line)."""
    while True:
        line = await reader.readuntil(b"\n")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), line


async def expect(reader, stage, ok):
    code, line = await read_reply(reader)
    if code // 100 != ok:
        raise Reply(stage, code, line)
    return code


class SMTPClient:
    """A minimal SMTP submission client: EHLO, AUTH PLAIN (initial response), MAIL/RCPT/DATA, QUIT."""

    def __init__(self, host, port, domain):
        self.host, self.port, self.domain = host, port, domain

    async def open(self, user, password):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        r, w = self.reader, self.writer
        await expect(r, "greeting", 2)
        w.write(b"EHLO bench.example.test\r\n")
        await expect(r, "ehlo", 2)
        token = base64.b64encode(f"\0{user}@{self.domain}\0{password}".encode())
        w.write(b"AUTH PLAIN " + token + b"\r\n")
        await expect(r, "auth", 2)

    async def send(self, sender, rcpt, body):
        r, w = self.reader, self.writer
        w.write(f"MAIL FROM:<{sender}>\r\n".encode())
        await expect(r, "mail", 2)
        w.write(f"RCPT TO:<{rcpt}>\r\n".encode())
        await expect(r, "rcpt", 2)
        w.write(b"DATA\r\n")
        await expect(r, "data", 3)
        w.write(body)
        w.write(b".\r\n")
        t = time.perf_counter()
        await expect(r, "eom", 2)
        return time.perf_counter() - t

    async def close(self, quit=True):
        try:
            if quit:
                self.writer.write(b"QUIT\r\n")
                await read_reply(self.reader)
        except Exception:
            pass
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except Exception:
            pass


def cpu_now():
    t = os.times()
    return t.user + t.system


def run_worker(main, stats, cpu0, result_q):
    """Runs a worker process's event loop, then hands its stats (with its CPU time) to the parent."""
    run(main())
    stats["cpu_s"] = cpu_now() - cpu0
    stats["t_end"] = time.time()
    result_q.put(stats)


# ------------------------------------------------------------------ smtp: timed submission load

def smtp_worker(args, index, sessions, t_start, result_q):
    random.seed(index * 7919 + os.getpid())
    users = load_users(args.users)
    senders = [u for u in users if u[0].startswith(args.sender_prefix)] or users
    rcpts = [f"{u[0]}@{args.domain}" for u in senders]
    body_cache = {}
    stats = {"accepted": 0, "connections": 0, "errors": {}, "bytes": 0}
    cpu0 = cpu_now()

    async def session(k):
        seq = 0
        deadline = t_start + args.duration
        while time.time() < deadline:
            user, password = senders[(index * 1000 + k + seq) % len(senders)]
            sender = f"{user}@{args.domain}"
            client = SMTPClient(args.host, args.port, args.domain)
            try:
                await client.open(user, password)
                stats["connections"] += 1
                for _ in range(args.per_conn):
                    rcpt = rcpts[random.randrange(len(rcpts))]
                    key = (sender, rcpt)
                    body = body_cache.get(key)
                    if body is None:
                        body = body_cache[key] = make_body(args.size, sender, rcpt, index)
                    await client.send(sender, rcpt, body)
                    stats["accepted"] += 1
                    stats["bytes"] += len(body)
                    seq += 1
                    if time.time() >= deadline:
                        break
                await client.close()
            except (Reply, OSError, asyncio.IncompleteReadError, ValueError) as e:
                key = f"{e.stage}:{e.code}" if isinstance(e, Reply) else type(e).__name__
                stats["errors"][key] = stats["errors"].get(key, 0) + 1
                if hasattr(client, "writer"):
                    await client.close(quit=False)
                await asyncio.sleep(0.05)
            seq += 1

    async def main():
        delay = t_start - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks = [asyncio.create_task(session(k)) for k in range(sessions)]
        # sessions finish the message in flight at the deadline; give up 15 s later
        done, pending = await asyncio.wait(tasks, timeout=args.duration + 15 + max(0, delay))
        for t in pending:
            t.cancel()
        stats["stuck_sessions"] = len(pending)

    run_worker(main, stats, cpu0, result_q)


def split(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_workers(target, args, per_proc_counts, t_start):
    q = mp.Queue()
    procs = [mp.Process(target=target, args=(args, i, n, t_start, q)) for i, n in enumerate(per_proc_counts) if n > 0]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    return results


def merge(results):
    out = {}
    for r in results:
        for k, v in r.items():
            if isinstance(v, dict):
                d = out.setdefault(k, {})
                for kk, vv in v.items():
                    d[kk] = d.get(kk, 0) + vv
            elif k == "t_end":
                out[k] = max(out.get(k, 0), v)
            elif isinstance(v, (int, float)):
                out[k] = out.get(k, 0) + v
            elif isinstance(v, list):
                out.setdefault(k, []).extend(v)
    return out


def cmd_smtp(args):
    procs = max(1, min(args.procs, args.sessions, os.cpu_count() or 1))
    t_start = time.time() + 0.3  # every worker starts its sessions at the same instant
    res = merge(run_workers(smtp_worker, args, split(args.sessions, procs), t_start))
    elapsed = res["t_end"] - t_start
    res.update(t_start=t_start, elapsed=elapsed, procs=procs, sessions=args.sessions,
               per_conn=args.per_conn, size=args.size,
               accepted_per_s=res["accepted"] / elapsed if elapsed > 0 else 0)
    return res


# ------------------------------------------------------------------ fill: exact counts per mailbox

def fill_worker(args, index, jobs, t_start, result_q):
    users = dict(load_users(args.users))
    sender = f"{args.sender}@{args.domain}"
    stats = {"accepted": 0, "errors": {}}
    cpu0 = cpu_now()

    async def session(rcpt, count):
        sent = 0
        body = make_body(args.size, sender, f"{rcpt}@{args.domain}", index)
        failures = 0
        while sent < count and failures < 20:
            client = SMTPClient(args.host, args.port, args.domain)
            try:
                await client.open(args.sender, users[args.sender])
                for _ in range(min(10, count - sent)):
                    await client.send(sender, f"{rcpt}@{args.domain}", body)
                    sent += 1
                    stats["accepted"] += 1
                await client.close()
            except (Reply, OSError, asyncio.IncompleteReadError) as e:
                failures += 1
                key = f"{e.stage}:{e.code}" if isinstance(e, Reply) else type(e).__name__
                stats["errors"][key] = stats["errors"].get(key, 0) + 1
                await asyncio.sleep(0.1)

    async def main():
        await asyncio.gather(*(session(r, c) for r, c in jobs))

    run_worker(main, stats, cpu0, result_q)


def cmd_fill(args):
    rcpts = args.rcpts.split(",")
    per_rcpt = max(1, args.sessions // len(rcpts))
    jobs = []
    for r in rcpts:
        for n in split(args.count, per_rcpt):
            jobs.append((r, n))
    procs = max(1, min(args.procs, os.cpu_count() or 1))
    t_start = time.time()
    q = mp.Queue()
    ps = [mp.Process(target=fill_worker, args=(args, i, jobs[i::procs], t_start, q)) for i in range(procs)]
    for p in ps:
        p.start()
    res = merge([q.get() for _ in ps])
    for p in ps:
        p.join()
    res["elapsed"] = res["t_end"] - t_start
    return res


# ------------------------------------------------------------------ pop: logins/s and RETR/s

async def pop_line(reader):
    line = await reader.readuntil(b"\n")
    if not line.startswith(b"+OK"):
        raise Reply("pop", 0, line)
    return line


async def pop_multiline(reader):
    """Reads a +OK multi-line answer up to CRLF.CRLF in large chunks; returns its octets."""
    buf = await reader.readuntil(b"\n")
    if not buf.startswith(b"+OK"):
        raise Reply("pop-multi", 0, buf)
    data = bytearray()
    while not (data.endswith(b"\r\n.\r\n") or data == b".\r\n"):
        chunk = await reader.read(262144)
        if not chunk:
            raise asyncio.IncompleteReadError(bytes(data), None)
        data += chunk
    return len(data)


def pop_worker(args, index, mailboxes, t_start, result_q):
    users = dict(load_users(args.users))
    stats = {"logins": 0, "retr": 0, "bytes": 0, "errors": {}, "messages_seen": 0}
    cpu0 = cpu_now()

    async def client(box, k):
        deadline = t_start + args.duration
        offset = k * 97
        while time.time() < deadline:
            try:
                reader, writer = await asyncio.open_connection(args.host, args.port)
                await pop_line(reader)
                writer.write(f"USER {box}@{args.domain}\r\n".encode())
                await pop_line(reader)
                writer.write(f"PASS {users[box]}\r\n".encode())
                await pop_line(reader)
                writer.write(b"STAT\r\n")
                n = int((await pop_line(reader)).split()[1])
                stats["logins"] += 1
                stats["messages_seen"] = max(stats["messages_seen"], n)
                if args.mode == "retr" and n > 0:
                    for _ in range(args.retr):
                        offset = offset % n + 1
                        writer.write(f"RETR {offset}\r\n".encode())
                        n_octets = await pop_multiline(reader)  # (not "+= await": coroutines would lose updates)
                        stats["bytes"] += n_octets
                        stats["retr"] += 1
                        if time.time() >= deadline:
                            break
                writer.write(b"QUIT\r\n")
                await reader.readuntil(b"\n")
                writer.close()
            except (Reply, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                key = f"{e.stage}" if isinstance(e, Reply) else type(e).__name__
                stats["errors"][key] = stats["errors"].get(key, 0) + 1
                await asyncio.sleep(0.05)

    async def main():
        delay = t_start - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks = [asyncio.create_task(client(b, k)) for k, b in enumerate(mailboxes)]
        done, pending = await asyncio.wait(tasks, timeout=args.duration + 15)
        for t in pending:
            t.cancel()

    run_worker(main, stats, cpu0, result_q)


def cmd_pop(args):
    boxes = args.mailboxes.split(",")
    procs = max(1, min(args.procs, len(boxes), os.cpu_count() or 1))
    t_start = time.time() + 0.3
    q = mp.Queue()
    ps = [mp.Process(target=pop_worker, args=(args, i, boxes[i::procs], t_start, q)) for i in range(procs)]
    for p in ps:
        p.start()
    res = merge([q.get() for _ in ps])
    for p in ps:
        p.join()
    # messages_seen was summed by merge; report the per-mailbox size instead
    elapsed = res["t_end"] - t_start
    res.update(t_start=t_start, elapsed=elapsed, procs=procs, clients=len(boxes),
               logins_per_s=res["logins"] / elapsed, retr_per_s=res["retr"] / elapsed,
               mb_per_s=res["bytes"] / elapsed / 1e6)
    return res


# ------------------------------------------------------------------ latency: one client

def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def cmd_latency(args):
    users = load_users(args.users)
    senders = [u for u in users if u[0].startswith(args.sender_prefix)] or users
    total, commit = [], []
    errors = {}
    cpu0 = cpu_now()

    async def main():
        t_end = time.time() + args.max_seconds
        i = 0
        while len(total) < args.samples and time.time() < t_end:
            user, password = senders[i % len(senders)]
            rcpt = f"{senders[(i * 7 + 3) % len(senders)][0]}@{args.domain}"
            sender = f"{user}@{args.domain}"
            body = make_body(args.size, sender, rcpt, i)
            i += 1
            t0 = time.perf_counter()
            client = SMTPClient(args.host, args.port, args.domain)
            try:
                await client.open(user, password)
                c = await client.send(sender, rcpt, body)
                await client.close()
                total.append(time.perf_counter() - t0)
                commit.append(c)
            except (Reply, OSError, asyncio.IncompleteReadError) as e:
                key = f"{e.stage}:{e.code}" if isinstance(e, Reply) else type(e).__name__
                errors[key] = errors.get(key, 0) + 1
                await asyncio.sleep(0.05)

    t0 = time.time()
    run(main())
    ms = lambda x: None if x is None else round(x * 1000, 3)
    return {"samples": len(total), "errors": errors, "elapsed": time.time() - t0, "cpu_s": cpu_now() - cpu0,
            "p50_ms": ms(percentile(total, 50)), "p99_ms": ms(percentile(total, 99)),
            "mean_ms": ms(sum(total) / len(total)) if total else None,
            "eom_p50_ms": ms(percentile(commit, 50)), "eom_p99_ms": ms(percentile(commit, 99))}


# ------------------------------------------------------------------ logins: every user once (warm-up)

def cmd_logins(args):
    users = load_users(args.users)
    stats = {"logins": 0, "errors": {}}
    t0 = time.time()

    async def main():
        queue = list(users)

        async def one_by_one():
            while queue:
                user, password = queue.pop()
                client = SMTPClient(args.host, args.port, args.domain)
                try:
                    await client.open(user, password)
                    stats["logins"] += 1
                    await client.close()
                except (Reply, OSError, asyncio.IncompleteReadError) as e:
                    key = f"{e.stage}:{e.code}" if isinstance(e, Reply) else type(e).__name__
                    stats["errors"][key] = stats["errors"].get(key, 0) + 1

        await asyncio.gather(*(one_by_one() for _ in range(max(1, args.procs))))

    run(main())
    stats["elapsed"] = time.time() - t0
    return stats


# ------------------------------------------------------------------ idle: many open connections

def cmd_idle(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, args.count + 256)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    stats = {"requested": args.count, "connected": 0, "greeted": 0, "refused_or_failed": 0, "other_reply": 0,
             "no_reply": 0, "other_replies": {}}
    writers = []

    async def one(sem):
        async with sem:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(args.host, args.port), args.connect_timeout)
            except (OSError, asyncio.TimeoutError):
                stats["refused_or_failed"] += 1
                return
        stats["connected"] += 1
        writers.append(writer)
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), args.greeting_timeout)
            if line.startswith(b"220"):
                stats["greeted"] += 1
            else:
                stats["other_reply"] += 1
                text = line.decode("ascii", "replace").strip()[:80]
                stats["other_replies"][text] = stats["other_replies"].get(text, 0) + 1
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            stats["no_reply"] += 1

    async def main():
        sem = asyncio.Semaphore(args.parallel)
        t0 = time.time()
        await asyncio.gather(*(one(sem) for _ in range(args.count)))
        stats["open_seconds"] = round(time.time() - t0, 2)
        print(json.dumps(stats), flush=True)
        # hold every connection until stdin closes (or a line arrives), then close them all
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)
        for w in writers:
            w.close()

    run(main())
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["smtp", "fill", "pop", "latency", "idle", "logins"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--users")
    ap.add_argument("--domain", default="example.test")
    ap.add_argument("--sender-prefix", default="u", help="users whose name starts so log in and receive")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--per-conn", type=int, default=1)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--sender")
    ap.add_argument("--rcpts")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--mailboxes")
    ap.add_argument("--mode", default="retr", choices=["login", "retr"], help="pop: login+STAT+QUIT, or login+RETR×--retr")
    ap.add_argument("--retr", type=int, default=20)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--max-seconds", type=float, default=25)
    ap.add_argument("--parallel", type=int, default=200, help="idle: connects in flight at once")
    ap.add_argument("--connect-timeout", type=float, default=5)
    ap.add_argument("--greeting-timeout", type=float, default=15)
    args = ap.parse_args()
    res = {"smtp": cmd_smtp, "fill": cmd_fill, "pop": cmd_pop, "latency": cmd_latency, "idle": cmd_idle,
           "logins": cmd_logins}[args.command](args)
    if res is not None:
        res["generator_pid_cpu_cores"] = os.cpu_count()
        res["event_loop"] = EVENT_LOOP
        print(json.dumps(res))


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
