#!/usr/bin/env python3
"""smtp-capture.py -- a capture SMTP server: accepts every message and stores it.

  smtp-capture.py --listen 127.0.0.1:2600 --dir OUT [--tls-cert CERT --tls-key KEY] [--pidfile F]
      OUT/NNNNNN.eml  the message as received (dot-unstuffed, CRLF)
      OUT/NNNNNN.json {"mail_from","rcpt_to","helo","tls","peer","time","size"}
      OUT/index.jsonl one JSON line per message (the same fields + "file")
  With a certificate, STARTTLS is offered. "listening ..." on stdout once the port is open.
  --reply-rcpt CODE:TEXT / --reply-data CODE:TEXT make it refuse recipients / data (e.g. 450:busy).

Postern copy (tests/corpus): also offers AUTH PLAIN LOGIN and accepts any credentials, so mail
clients can be configured exactly as they would be for Postern's submission port; the login name
is recorded as "auth" in the .json.
"""
import argparse, asyncio, base64, json, os, ssl, sys, time


class Capture:
    def __init__(self, a):
        self.a, self.n = a, len([f for f in os.listdir(a.dir) if f.endswith(".eml")])
        self.tls = None
        if a.tls_cert:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(a.tls_cert, a.tls_key)

    async def session(self, r, w):
        st = {"helo": None, "tls": False, "auth": None, "peer": "%s:%s" % w.get_extra_info("peername")[:2]}
        send = lambda line: w.write(line.encode() + b"\r\n")
        send("220 capture.test ESMTP smtp-capture.py")
        mail_from, rcpts = None, []
        try:
            while True:
                line = await asyncio.wait_for(r.readline(), 300)
                if not line:
                    break
                cmd = line.decode("utf-8", "replace").rstrip("\r\n")
                verb = cmd[:4].upper()
                if verb in ("EHLO", "HELO"):
                    st["helo"] = cmd[5:].strip()
                    ext = ["SIZE 104857600", "8BITMIME", "SMTPUTF8", "PIPELINING", "AUTH PLAIN LOGIN"]
                    if self.tls and not st["tls"]:
                        ext.append("STARTTLS")
                    if verb == "HELO":
                        send("250 capture.test")
                    else:
                        for i, e in enumerate(["capture.test"] + ext):
                            send(("250 " if i == len(ext) else "250-") + e)
                elif verb == "STAR" and self.tls and not st["tls"]:
                    send("220 go ahead")
                    await w.drain()
                    await w.start_tls(self.tls)
                    st["tls"], st["helo"], mail_from, rcpts = True, None, None, []
                elif verb == "AUTH":
                    st["auth"] = await self.auth(cmd, r, w, send)
                    send("235 2.7.0 accepted (any credentials)")
                elif verb == "MAIL":
                    mail_from, rcpts = cmd[10:].split(" ")[0].strip("<>") if ":" in cmd else "", []
                    send("250 ok")
                elif verb == "RCPT":
                    if self.a.reply_rcpt:
                        send(self.a.reply_rcpt.replace(":", " ", 1))
                    else:
                        rcpts.append(cmd[8:].split(" ")[0].strip("<>"))
                        send("250 ok")
                elif verb == "DATA":
                    if mail_from is None or not rcpts:
                        send("503 need MAIL and RCPT"); continue
                    send("354 end with .")
                    await w.drain()
                    body = bytearray()
                    while True:
                        l = await asyncio.wait_for(r.readline(), 300)
                        if not l or l in (b".\r\n", b".\n"):
                            break
                        body += l[1:] if l.startswith(b".") else l
                    if self.a.reply_data:
                        send(self.a.reply_data.replace(":", " ", 1))
                    else:
                        self.store(st, mail_from, rcpts, bytes(body))
                        send(f"250 ok queued as {self.n:06d}")
                    mail_from, rcpts = None, []
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    send("250 ok")
                elif verb == "NOOP":
                    send("250 ok")
                elif verb == "QUIT":
                    send("221 bye")
                    break
                else:
                    send("502 not implemented")
                await w.drain()
        except (asyncio.TimeoutError, ConnectionError, ssl.SSLError):
            pass
        try:
            await w.drain()
            w.close()
        except Exception:
            pass

    async def auth(self, cmd, r, w, send):
        """AUTH PLAIN [ir] / AUTH LOGIN [ir]: read the credentials, accept whatever they are."""
        args = cmd.split()[1:]
        mech = args[0].upper() if args else ""

        async def ask(prompt):
            send("334 " + prompt)
            await w.drain()
            return (await asyncio.wait_for(r.readline(), 300)).decode("ascii", "replace").strip()

        def b64(s):
            try:
                return base64.b64decode(s + "=" * (-len(s) % 4)).decode("utf-8", "replace")
            except Exception:
                return ""
        if mech == "PLAIN":
            resp = args[1] if len(args) > 1 else await ask("")
            parts = b64(resp).split("\0")
            return parts[1] if len(parts) > 1 else parts[0]
        if mech == "LOGIN":
            user = b64(args[1]) if len(args) > 1 else b64(await ask("VXNlcm5hbWU6"))
            await ask("UGFzc3dvcmQ6")
            return user
        return None

    def store(self, st, mail_from, rcpts, body):
        self.n += 1
        base = os.path.join(self.a.dir, f"{self.n:06d}")
        meta = {"mail_from": mail_from, "rcpt_to": rcpts, "helo": st["helo"], "auth": st["auth"], "tls": st["tls"],
                "peer": st["peer"], "time": round(time.time(), 3), "size": len(body)}
        with open(base + ".eml", "wb") as f:
            f.write(body)
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        with open(os.path.join(self.a.dir, "index.jsonl"), "a") as f:
            f.write(json.dumps(dict(meta, file=base + ".eml")) + "\n")


async def main():
    ap = argparse.ArgumentParser(description="capture SMTP server")
    ap.add_argument("--listen", default="127.0.0.1:2600", help="HOST:PORT")
    ap.add_argument("--dir", required=True, help="where messages are stored")
    ap.add_argument("--tls-cert"); ap.add_argument("--tls-key")
    ap.add_argument("--reply-rcpt", help="CODE:TEXT answered to every RCPT (e.g. 550:no such user)")
    ap.add_argument("--reply-data", help="CODE:TEXT answered after DATA instead of storing")
    ap.add_argument("--pidfile")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    host, port = a.listen.rsplit(":", 1)
    srv = await asyncio.start_server(Capture(a).session, host, int(port))
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")
    print(f"listening {host}:{srv.sockets[0].getsockname()[1]} -> {a.dir}", flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
