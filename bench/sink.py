#!/usr/bin/env python3
"""In-memory POP3 sink for bench/run: the ceiling of the POP3 load generator (no disk, no index).

  sink.py pop3 --port P [--messages 1000] [--size 4096]

Any USER/PASS (or AUTH PLAIN) is accepted; the maildrop holds --messages copies of one message
of --size octets. STAT, LIST, UIDL, RETR, TOP, NOOP, RSET, DELE, QUIT. One process, asyncio.
(The SMTP ceiling uses Postfix's own smtp-sink, which accepts AUTH and keeps nothing.)
"""
import argparse
import asyncio


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("proto", choices=["pop3"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    line = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=+\r\n"
    head = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: sink\r\n\r\n"
    msg = head + line * max(1, (args.size - len(head)) // len(line))
    retr = b"+OK %d octets\r\n" % len(msg) + msg + b".\r\n"
    n = args.messages

    async def handle(reader, writer):
        writer.write(b"+OK sink ready\r\n")
        try:
            while True:
                cmd = await reader.readuntil(b"\n")
                verb = cmd[:4].upper()
                if verb == b"RETR":
                    writer.write(retr)
                elif verb == b"STAT":
                    writer.write(b"+OK %d %d\r\n" % (n, n * len(msg)))
                elif verb == b"QUIT":
                    writer.write(b"+OK bye\r\n")
                    await writer.drain()
                    break
                elif verb == b"LIST" or verb == b"UIDL":
                    if len(cmd.split()) > 1:
                        writer.write(b"+OK 1 %d\r\n" % len(msg))
                    else:
                        writer.write(b"+OK\r\n" + b"".join(b"%d %d\r\n" % (i, len(msg)) for i in range(1, n + 1)) + b".\r\n")
                else:
                    writer.write(b"+OK\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", args.port, backlog=1024)
        print(f"pop3 sink listening on 127.0.0.1:{args.port}", flush=True)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
