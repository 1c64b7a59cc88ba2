#!/usr/bin/env python3
"""build_index.py -- write messages/index.json for the corpus (run by generate.sh).

  build_index.py STAGING_DIR OUT_INDEX_JSON

STAGING_DIR holds, for each message NAME: NAME.eml (bytes as captured), NAME.json (the capture
server's envelope record: mail_from, rcpt_to, helo, ...) and NAME.meta.json (what generate.sh
knows: client, versions, what the message covers, the host name and time zone the client ran
with, and strings that name the client). Each .eml is parsed with Python's email package to find
the leak markers the sanitiser must remove: Message-ID, Date and its zone, every MIME boundary
(split into those outside and those inside a multipart/signed's signed part, which must stay
byte-identical), Content-Disposition date parameters, User-Agent / X-Mailer values, IP
addresses in the header, and the header fields outside the PRIV-1 allow-list.
"""
import email
import email.policy
import ipaddress
import json
import os
import re
import sys
from email.header import decode_header, make_header
from email.utils import getaddresses, parseaddr

ALLOWED = {"return-path", "from", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references",
           "reply-to", "mime-version", "content-type", "content-transfer-encoding", "content-disposition",
           "autocrypt", "openpgp"}
DATE_PARAMS = ("creation-date", "modification-date", "read-date")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6_CAND = re.compile(r"(?<![A-Za-z0-9])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")


def ip_addresses(text: str) -> list:
    found = []
    for m in IPV4.findall(text):
        try:
            ipaddress.IPv4Address(m)
            found.append(m)
        except ValueError:
            pass
    for m in IPV6_CAND.findall(text):
        m = m.strip(":.") if not m.startswith("::") else m.rstrip(".")
        try:
            ipaddress.IPv6Address(m)
            found.append(m)
        except ValueError:
            pass
    return sorted(set(found))


def header_bytes(raw: bytes) -> bytes:
    i = raw.find(b"\r\n\r\n")
    return raw if i < 0 else raw[:i + 2]


def fix8(s: str) -> str:
    """Raw UTF-8 header bytes (RFC 6532) come back surrogate-escaped from the email package."""
    if any("\udc80" <= ch <= "\udcff" for ch in s):
        s = s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return s


def decoded(value) -> str:
    """Header text with RFC 2047 words decoded and raw UTF-8 restored."""
    if value is None:
        return None
    s = fix8(str(value))
    try:
        return str(make_header(decode_header(s)))
    except Exception:
        return s


def walk(part, inside_signed, out):
    """Collect boundaries, part header fields and date parameters, marking what the signature covers."""
    if part.is_multipart():
        b = part.get_boundary()
        if b is not None:
            out["signed_boundaries" if inside_signed else "boundaries"].append(b)
        subs = part.get_payload()
        is_signed = part.get_content_type() == "multipart/signed"
        for i, sub in enumerate(subs):
            walk(sub, inside_signed or (is_signed and i == 0), out)
    if part is not out["root"]:
        names = [k for k in part.keys()]
        (out["signed_part_fields"] if inside_signed else out["part_fields"]).extend(names)
    for hdr in ("Content-Disposition", "Content-Type"):
        params = part.get_params(header=hdr) or []
        for k, v in params:
            if k.lower() in DATE_PARAMS:
                (out["signed_mime_date_params"] if inside_signed else out["mime_date_params"]).append(
                    f"{k}={v}")
    cid = part.get("Content-ID")
    if cid:
        out["content_ids"].append(str(cid).strip())
    fn = part.get_filename()
    if fn is not None:
        out["filenames"].append(decoded(fn))


def entry(staging: str, name: str) -> dict:
    raw = open(os.path.join(staging, name + ".eml"), "rb").read()
    cap = json.load(open(os.path.join(staging, name + ".json")))
    meta = json.load(open(os.path.join(staging, name + ".meta.json")))
    # policy.default: it restores raw UTF-8 (RFC 6532) header text, which compat32 does not
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    head = header_bytes(raw)
    head_text = head.decode("utf-8", "replace")
    out = {"root": msg, "boundaries": [], "signed_boundaries": [], "part_fields": [], "signed_part_fields": [],
           "mime_date_params": [], "signed_mime_date_params": [], "content_ids": [], "filenames": []}
    walk(msg, False, out)
    fields = [k for k in msg.keys()]
    agents = [str(msg[k]) for k in msg.keys() if k.lower() in ("user-agent", "x-mailer")]
    date = msg.get("Date")
    zone = None
    if date:
        m = re.search(r"([+-]\d{4}|GMT|UT|[A-Z]{1,3})\s*(\(.*\))?\s*$", str(date).strip())
        zone = m.group(1) if m else None
    frm = msg.get("From")
    display = None
    if frm is not None:
        try:
            display = fix8(frm.addresses[0].display_name) or None
        except (AttributeError, IndexError):
            display = decoded(parseaddr(str(frm))[0]) or None
    helo = cap.get("helo")
    hostnames = []
    for h in [meta.get("hostname"), helo]:
        if h and h not in hostnames:
            hostnames.append(h)
    short = (meta.get("hostname") or "").split(".")[0]
    if len(short) >= 6 and short not in hostnames:
        hostnames.append(short)
    client_strings = list(dict.fromkeys(meta.get("client_strings", []) + agents))
    eight_bit_head = any(b > 127 for b in head)
    eight_bit = any(b > 127 for b in raw)
    # 8-bit bytes in any MIME part header (not only the top one) also need SMTPUTF8 (RFC 6532)
    part_head_8bit = False
    for m in re.finditer(rb"\r\n--[^\r\n]*\r\n((?:[^\r\n]+\r\n)+)\r\n", raw):
        if any(b > 127 for b in m.group(1)) and b":" in m.group(1).split(b"\r\n")[0]:
            part_head_8bit = True
    return {
        "file": name + ".eml",
        "client": meta["client"],
        "client_version": meta["version"],
        "debian_packages": meta.get("debian_packages", {}),
        "covers": meta["covers"],
        "generated_with": meta.get("how", ""),
        "size": len(raw),
        "envelope": {"mail_from": cap["mail_from"], "rcpt_to": cap["rcpt_to"]},
        "needs_smtputf8": bool(eight_bit_head or part_head_8bit),
        "has_8bit": eight_bit,
        "time_zone": meta.get("tz"),
        "signed": any(p.get_content_type() == "multipart/signed" for p in msg.walk()),
        "encrypted": any(p.get_content_type() == "multipart/encrypted" for p in msg.walk()),
        "from_display_name": display,
        "subject": decoded(msg.get("Subject")),
        "in_reply_to": str(msg.get("In-Reply-To")) if msg.get("In-Reply-To") else None,
        "references": " ".join(str(msg.get("References")).split()) if msg.get("References") else None,
        "filenames": out["filenames"],
        "leak_markers": {
            "helo": helo,
            "hostnames": hostnames,
            "client_strings": client_strings,
            "user_agent": agents,
            "message_id": str(msg.get("Message-ID")).strip() if msg.get("Message-ID") else None,
            "date": str(date) if date else None,
            "date_zone": zone,
            "boundaries": out["boundaries"],
            "signed_boundaries": out["signed_boundaries"],
            "mime_date_params": out["mime_date_params"],
            "signed_mime_date_params": out["signed_mime_date_params"],
            "content_ids": out["content_ids"],
            "ip_addresses": ip_addresses(head_text),
            "header_fields": fields,
            "dropped_fields": sorted({f for f in fields if f.lower() not in ALLOWED}, key=str.lower),
            "part_fields_outside_signed": sorted(set(out["part_fields"]), key=str.lower),
            "bcc": [a for _, a in getaddresses(msg.get_all("Bcc", []))],
        },
    }


def main():
    staging, out_path = sys.argv[1], sys.argv[2]
    names = sorted(f[:-4] for f in os.listdir(staging) if f.endswith(".eml"))
    entries = [entry(staging, n) for n in names]
    clients = {}
    for e in entries:
        clients.setdefault(e["client"], e["client_version"])
    doc = {
        "about": "Corpus for Postern's privacy sanitiser (issue 3, SPEC PRIV-1..3). Each .eml is the "
                 "exact bytes (CRLF) a real client submitted to tests/corpus/smtp-capture.py; "
                 "regenerate with tests/corpus/generate.sh. leak_markers are what the sanitised "
                 "copy must not contain (signed_* entries are inside a multipart/signed's signed "
                 "part and must stay byte-identical instead).",
        "clients": clients,
        "count": len(entries),
        "messages": entries,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
