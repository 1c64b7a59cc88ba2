"""Byte-level MIME walking and the checks the privacy tests share.

Python's email package is used to decode (payloads, RFC 2047 words, RFC 2231 parameters), but
where bytes matter -- which header bytes a part has, the exact bytes a multipart/signed's
signature covers -- the message is split here, by RFC 2046 delimiters, without re-serialising.
"""
from __future__ import annotations

import email
import email.policy
import ipaddress
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header

CRLF = b"\r\n"

ALLOWED_FIELDS = {"return-path", "from", "to", "cc", "subject", "date", "message-id", "in-reply-to",
                  "references", "reply-to", "mime-version", "content-type", "content-transfer-encoding",
                  "content-disposition", "autocrypt", "openpgp"}
DATE_PARAMS = ("creation-date", "modification-date", "read-date")


# -- splitting ------------------------------------------------------------------------------------

def split_entity(raw: bytes) -> tuple[bytes, bytes]:
    """(header incl. its last CRLF, body) of a MIME entity; an entity may have an empty header."""
    if raw.startswith(CRLF):
        return b"", raw[2:]
    i = raw.find(b"\r\n\r\n")
    if i < 0:
        return raw, b""
    return raw[:i + 2], raw[i + 4:]


def header_fields(head: bytes) -> list[tuple[str, str]]:
    """Unfolded (name, value) pairs; values decoded as UTF-8 (RFC 6532), encoded words kept."""
    fields: list[tuple[str, str]] = []
    for line in head.split(CRLF):
        if not line:
            continue
        text = line.decode("utf-8", "replace")
        if text[:1] in (" ", "\t") and fields:
            n, v = fields[-1]
            fields[-1] = (n, v + text)
        elif ":" in text:
            n, v = text.split(":", 1)
            fields.append((n.strip(), v.strip()))
    return fields


def get_field(head: bytes, name: str) -> str | None:
    for n, v in header_fields(head):
        if n.lower() == name.lower():
            return v
    return None


def parse_head(head: bytes) -> email.message.Message:
    return email.message_from_bytes(head + CRLF, policy=email.policy.compat32)


def raw_parts(body: bytes, boundary: str) -> list[bytes]:
    """The body parts of a multipart body, each exactly as on the wire (RFC 2046 5.1.1: the CRLF
    before a delimiter belongs to the delimiter; preamble and epilogue are not parts)."""
    data = CRLF + body
    delim = CRLF + b"--" + boundary.encode("utf-8", "surrogateescape")
    marks = []  # (start of delimiter, start of the line after it, is close delimiter)
    i = data.find(delim)
    while i >= 0:
        j = i + len(delim)
        close = data[j:j + 2] == b"--"
        k = j + 2 if close else j
        eol = data.find(CRLF, k)
        rest = data[k:eol if eol >= 0 else len(data)]
        if not rest.strip(b" \t"):  # a delimiter line: only transport padding may follow
            marks.append((i, eol + 2 if eol >= 0 else len(data), close))
            if close:
                break
        i = data.find(delim, j)
    parts = []
    for n, (_, line_end, close) in enumerate(marks):
        if close:
            break
        end = marks[n + 1][0] if n + 1 < len(marks) else len(data)
        parts.append(data[line_end:end])
    return parts


@dataclass
class Entity:
    raw: bytes
    head: bytes
    body: bytes
    ctype: str
    boundary: str | None
    in_signed: bool          # inside the signed part of a multipart/signed (bytes must not change)
    depth: int
    children: list["Entity"] = field(default_factory=list)


def walk_raw(raw: bytes, in_signed: bool = False, depth: int = 0) -> Entity:
    head, body = split_entity(raw)
    msg = parse_head(head)
    ctype = msg.get_content_type()
    boundary = msg.get_boundary() if msg.get_content_maintype() == "multipart" else None
    ent = Entity(raw, head, body, ctype, boundary, in_signed, depth)
    if boundary and depth < 50:
        for i, p in enumerate(raw_parts(body, boundary)):
            signed = in_signed or (ctype == "multipart/signed" and i == 0)
            ent.children.append(walk_raw(p, signed, depth + 1))
    return ent


def entities(root: Entity):
    yield root
    for c in root.children:
        yield from entities(c)


def outside_signed_text(raw: bytes) -> bytes:
    """The message with the signed parts of multipart/signed cut out (they must stay as sent)."""
    out = raw
    for e in entities(walk_raw(raw)):
        if e.ctype == "multipart/signed" and not e.in_signed and e.children:
            out = out.replace(e.children[0].raw, b"")
    return out


def header_text(raw: bytes) -> str:
    """The top header and every MIME part header outside signed parts, as one text."""
    chunks = [e.head for e in entities(walk_raw(raw)) if not e.in_signed]
    return b"".join(chunks).decode("utf-8", "replace")


def signed_entities(raw: bytes) -> list[tuple[bytes, bytes]]:
    """(signed part bytes, signature part bytes) for every multipart/signed in the message."""
    out = []
    for e in entities(walk_raw(raw)):
        if e.ctype == "multipart/signed" and not e.in_signed and len(e.children) >= 2:
            out.append((e.children[0].raw, e.children[1].raw))
    return out


def encrypted_payloads(raw: bytes) -> list[bytes]:
    """The decoded second part (application/octet-stream) of every multipart/encrypted."""
    out = []
    for e in entities(walk_raw(raw)):
        if e.ctype == "multipart/encrypted" and len(e.children) >= 2:
            part = email.message_from_bytes(e.children[1].raw, policy=email.policy.compat32)
            out.append(part.get_payload(decode=True))
    return out


# -- decoding -------------------------------------------------------------------------------------

def fix8(s: str | None) -> str | None:
    """Undo the email package's surrogateescape of raw UTF-8 header bytes."""
    if s is None:
        return None
    if any("\udc80" <= ch <= "\udcff" for ch in s):
        s = s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return s


def decode_words(s: str | None) -> str | None:
    """Header text with RFC 2047 encoded words decoded; whitespace collapsed."""
    if s is None:
        return None
    s = fix8(s)
    try:
        s = str(make_header(decode_header(s)))
    except Exception:
        pass
    return " ".join(s.split())


def filename(part: email.message.Message) -> str | None:
    fn = part.get_filename()
    if fn is None:
        return None
    return decode_words(fn)


def leaves(raw: bytes) -> list[email.message.Message]:
    # policy.default restores raw UTF-8 header text (file names) where compat32 gives U+FFFD
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return [p for p in msg.walk() if not p.is_multipart()]


# -- leak detectors -------------------------------------------------------------------------------

IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6_CAND = re.compile(r"(?<![A-Za-z0-9])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
ZONE_AFTER_TIME = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?\s+([+-]\d{4}|[A-Z]{2,5})\b")


def ip_addresses(text: str) -> list[str]:
    found = []
    for m in IPV4.findall(text):
        try:
            ipaddress.IPv4Address(m)
            found.append(m)
        except ValueError:
            pass
    for m in IPV6_CAND.findall(text):
        cand = m.rstrip(".")
        if not cand.startswith("::"):
            cand = cand.strip(":")
        try:
            ipaddress.IPv6Address(cand)
            found.append(cand)
        except ValueError:
            pass
    return sorted(set(found))


def token_re(tok: str, word_chars: str = "A-Za-z0-9") -> re.Pattern:
    """tok as a whole token (not part of a longer word), case-insensitive."""
    return re.compile(rf"(?<![{word_chars}]){re.escape(tok)}(?![{word_chars}])", re.IGNORECASE)


def foreign_zones(text: str) -> list[str]:
    """Time-zone designators after a time of day that are not +0000."""
    return [z for z in ZONE_AFTER_TIME.findall(text) if z not in ("+0000",)]
