#!/usr/bin/env python3
"""python_client.py -- the "Python email package" client of the corpus (run by generate.sh).

  python_client.py --port PORT --kind KIND --files DIR [--gnupghome DIR]

Builds one message the way a Python script or a small mail tool built on the standard library
does (email.message.EmailMessage, email.utils.make_msgid/formatdate with the local time zone,
smtplib with the machine's FQDN as EHLO name) and submits it with AUTH PLAIN as alice to
127.0.0.1:PORT. Kinds:

  html-inline-image  multipart/mixed > alternative > related (HTML + inline PNG by cid), a PDF
                     with a non-ASCII file name (RFC 2231) and Content-Disposition
                     creation-date / modification-date / read-date parameters
  leaky-headers      what a LAN relay or a corporate client adds: Received with IPv4/IPv6
                     addresses, X-Originating-IP, Bcc, Organization, Disposition-Notification-To,
                     Thread-Index, Importance, Sender, Resent-*, ... (every field PRIV-1 drops)
  smtputf8           raw UTF-8 display name, subject and file name (RFC 6532), 8bit body;
                     submitted with SMTPUTF8 and BODY=8BITMIME
  long-headers       a long subject mixing ASCII and non-ASCII (several folded RFC 2047 words),
                     14 References, named recipients in To and Cc
  reply-autocrypt    a reply (In-Reply-To, References) with Reply-To, Autocrypt and OpenPGP
  signed             RFC 3156 multipart/signed over multipart/mixed built by hand around
                     `gpg --detach-sign --armor` (with a creation-date inside the signed part,
                     which must survive because the signature covers it)
  encrypted          RFC 3156 multipart/encrypted: `gpg --encrypt --sign --armor` to bob and alice
"""
import argparse
import base64
import email.policy
import os
import platform
import secrets
import smtplib
import socket
import subprocess
import sys
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

ALICE = Address("Alice Example", "alice", "mail.i2p")
BOB = "bob@mail.i2p"
CAROL = "carol@mail.i2p"
X_MAILER = f"alice-mailer/0.9 (Python {platform.python_version()}; email package)"
CRLF = b"\r\n"


def file_date(epoch: int) -> str:
    """RFC 2183 date parameter value (an RFC 822 date-time in the local zone)."""
    return formatdate(epoch, localtime=True)


def base_headers(msg: EmailMessage, subject: str, to=BOB, cc=None) -> None:
    msg["From"] = ALICE
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid()          # <time.pid.random@FQDN>: the host name leaks
    msg["X-Mailer"] = X_MAILER


def gpg(args, data: bytes, home: str) -> bytes:
    cp = subprocess.run(["gpg", "--homedir", home, "--batch", "--yes", "--pinentry-mode", "loopback",
                         "--passphrase", "", *args], input=data, capture_output=True, check=False)
    if cp.returncode != 0:
        sys.exit(f"gpg {' '.join(args)} failed: {cp.stderr.decode(errors='replace')}")
    return cp.stdout


def crlf(b: bytes) -> bytes:
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def header_block(fields) -> bytes:
    """Top-level header fields, folded by the email package (policy SMTP: CRLF, RFC 2047)."""
    m = EmailMessage(policy=email.policy.SMTP)
    for k, v in fields:
        m[k] = v
    return m.as_bytes().split(b"\r\n\r\n", 1)[0] + CRLF


def kind_html_inline_image(files, home):
    png = open(os.path.join(files, "photo.png"), "rb").read()
    pdf = open(os.path.join(files, "report.pdf"), "rb").read()
    msg = EmailMessage()
    base_headers(msg, "Photos from the trip \u2013 Gr\u00fc\u00dfe aus dem Harz")
    msg["User-Agent"] = X_MAILER
    msg.set_content("Hi Bob,\n\nthe photo is inline in the HTML version; the report is attached.\n\nAlice\n")
    # A real script would call make_msgid() here too, which puts the host name into the
    # Content-ID *and* into the HTML body's cid: reference. The body must not change, so the
    # sanitiser could not remove it; the corpus uses the mail domain for the cid instead.
    cid = make_msgid(idstring="photo", domain="mail.i2p")
    html = (f'<html><body><p>Hi Bob,</p><p>here is the view from the top:<br>'
            f'<img src="cid:{cid[1:-1]}" alt="view"></p><p>Gr\u00fc\u00dfe, Alice</p></body></html>\n')
    msg.add_alternative(html, subtype="html")
    html_part = msg.get_payload()[1]
    html_part.add_related(png, "image", "png", cid=cid, filename="view-from-the-top.png", disposition="inline")
    img = html_part.get_payload()[1]
    img.set_param("creation-date", file_date(1795000000), header="Content-Disposition")
    img.set_param("modification-date", file_date(1795003600), header="Content-Disposition")
    msg.add_attachment(pdf, "application", "pdf", filename="Reisebericht M\u00e4rz \u2013 \u00dcbersicht.pdf")
    att = msg.get_payload()[-1]
    att.set_param("creation-date", file_date(1794900000), header="Content-Disposition")
    att.set_param("modification-date", file_date(1794990000), header="Content-Disposition")
    att.set_param("read-date", file_date(1795010000), header="Content-Disposition")
    att.set_param("size", str(len(pdf)), header="Content-Disposition")
    return msg.as_bytes(policy=email.policy.SMTP), [BOB], []


def kind_leaky_headers(files, home):
    host = socket.getfqdn()
    date = formatdate(localtime=True)
    msg = EmailMessage()
    msg["Received"] = (f"from {host} (unknown [192.168.1.23]) by smtp.office.lan (Postfix) "
                       f"with ESMTPSA id 4F2A81C0123 for <bob@mail.i2p>; {date}")
    msg["Received"] = (f"from [IPv6:fe80::1c2b:3dff:fe4e:5f60] ([10.20.30.40]) by {host} "
                       f"with ESMTP id 9AB3; {date}")
    base_headers(msg, "Budget meeting notes")
    msg["Bcc"] = CAROL
    msg["X-Originating-IP"] = "[203.0.113.77]"
    msg["Organization"] = "Example Widgets GmbH, Office LAN 3rd floor"
    msg["Thread-Index"] = "AdnQ8mK2V1xYz0aBcDeFgHiJkLmNoP=="
    msg["Thread-Topic"] = "Budget meeting notes"
    msg["Importance"] = "high"
    msg["X-Priority"] = "1 (Highest)"
    msg["X-MS-Has-Attach"] = "yes"
    msg["X-Accept-Language"] = "en-GB, de-DE"
    msg["Disposition-Notification-To"] = str(ALICE)
    msg["Return-Receipt-To"] = "alice@mail.i2p"
    msg["Errors-To"] = "alice@mail.i2p"
    msg["Sender"] = "Alice at work <alice@mail.i2p>"
    msg["Resent-From"] = "alice@mail.i2p"
    msg["Resent-Date"] = date
    msg["Comments"] = f"sent from {host}"
    msg["Keywords"] = "budget, q4"
    msg["Face"] = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    msg.set_content("Bob,\n\nnotes from today's meeting are below. Carol is in Bcc.\n\n- item one\n- item two\n")
    msg["Content-Language"] = "en-GB"   # after set_content, which replaces every Content-* field
    return msg.as_bytes(policy=email.policy.SMTP), [BOB, CAROL], []


def kind_smtputf8(files, home):
    msg = EmailMessage(policy=email.policy.SMTPUTF8)
    msg["From"] = Address("\u0410\u043b\u0438\u0441\u0430 \u041f\u0440\u0438\u043c\u0435\u0440", "alice", "mail.i2p")
    msg["To"] = Address("\u0411\u043e\u0431", "bob", "mail.i2p")
    msg["Subject"] = "\u041e\u0442\u0447\u0451\u0442 \u0437\u0430 \u043d\u043e\u044f\u0431\u0440\u044c \u2014 \u65e5\u672c\u8a9e\u306e\u4ef6\u540d"
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid()
    msg["X-Mailer"] = X_MAILER
    msg.set_content("\u041f\u0440\u0438\u0432\u0435\u0442, \u0411\u043e\u0431!\n\n8bit UTF-8 body, "
                    "\u65e5\u672c\u8a9e\u306e\u672c\u6587\u3002\n", cte="8bit")
    msg.add_attachment("\u0441\u0442\u0440\u043e\u043a\u0430 1\n\u0441\u0442\u0440\u043e\u043a\u0430 2\n".encode(),
                       "text", "csv", filename="\u041e\u0442\u0447\u0451\u0442 \u2116 5.csv")
    return msg.as_bytes(), [BOB], ["SMTPUTF8", "BODY=8BITMIME"]


def kind_long_headers(files, home):
    refs = " ".join(f"<thread-{i:02d}.{secrets.token_hex(6)}@list.mail.i2p>" for i in range(14))
    msg = EmailMessage()
    base_headers(msg, "Re: [project-discuss] Very long discussion about the \u00fcbernext release "
                      "schedule, the \u201cfreeze\u201d dates, what goes into 2.0 and what waits for 2.1, "
                      "and who is on call during the holidays \u2014 please read to the end",
                 to=[Address("Bob Builder", "bob", "mail.i2p"), Address("Carol \u00c7a\u011flar", "carol", "mail.i2p")],
                 cc=Address("Alice Example", "alice", "mail.i2p"))
    msg["In-Reply-To"] = refs.split()[-1]
    msg["References"] = refs
    msg.set_content("A reply whose header fields are longer than one line.\n")
    return msg.as_bytes(policy=email.policy.SMTP), [BOB, CAROL], []


def kind_reply_autocrypt(files, home):
    keydata = base64.b64encode(gpg(["--export", "--export-options", "export-minimal", "alice@mail.i2p"], b"", home)).decode()
    fpr = next(l.split(":")[9] for l in gpg(["--with-colons", "--list-keys", "alice@mail.i2p"], b"", home).decode().splitlines()
               if l.startswith("fpr:"))
    msg = EmailMessage()
    base_headers(msg, "Re: Key exchange", cc=CAROL)
    msg["Reply-To"] = "Alice (home) <alice@mail.i2p>"
    msg["In-Reply-To"] = "<bob.20261120.1@mail.i2p>"
    msg["References"] = "<carol.20261119.7@mail.i2p> <bob.20261120.1@mail.i2p>"
    msg["OpenPGP"] = f"id={fpr}; preference=signencrypt"
    msg.set_content("> Can you send me your key?\n\nIt is in the Autocrypt header of this mail.\n")
    head, body = msg.as_bytes(policy=email.policy.SMTP).split(b"\r\n\r\n", 1)
    # Autocrypt (autocrypt.org level 1): keydata folded with CRLF SP, as Autocrypt clients write
    # it. Added by hand: the email package would turn the long unbroken value into RFC 2047 words.
    autocrypt = ("Autocrypt: addr=alice@mail.i2p; prefer-encrypt=mutual; keydata=\r\n "
                 + "\r\n ".join(keydata[i:i + 76] for i in range(0, len(keydata), 76))).encode()
    return head + CRLF + autocrypt + CRLF + CRLF + body, [BOB, CAROL], []


def signed_inner(files) -> bytes:
    """The entity that gets signed: multipart/mixed, 7bit-safe (RFC 3156 section 3), CRLF."""
    inner = EmailMessage(policy=email.policy.SMTP)
    inner.set_content("Bob,\n\nthe contract draft is attached; this mail is signed.\n\n-- \nAlice\n",
                      cte="quoted-printable")
    pdf = open(os.path.join(files, "report.pdf"), "rb").read()
    inner.add_attachment(pdf, "application", "pdf", filename="Vertragsentwurf \u00c4nderungen.pdf")
    att = inner.get_payload()[-1]
    att.set_param("creation-date", file_date(1794800000), header="Content-Disposition")
    for part in inner.walk():
        del part["MIME-Version"]
    data = inner.as_bytes(policy=email.policy.SMTP)
    return data[:-2] if data.endswith(CRLF) else data


def kind_signed(files, home):
    data = signed_inner(files)
    sig = crlf(gpg(["--armor", "--detach-sign", "--digest-algo", "SHA256", "--local-user", "alice@mail.i2p"], data, home))
    b = "=-=-signed-" + secrets.token_hex(12)
    head = header_block([("From", ALICE), ("To", BOB), ("Subject", "Signed: contract draft"),
                         ("Date", formatdate(localtime=True)), ("Message-ID", make_msgid()),
                         ("X-Mailer", X_MAILER), ("MIME-Version", "1.0"),
                         ("Content-Type", f'multipart/signed; micalg=pgp-sha256; '
                                          f'protocol="application/pgp-signature"; boundary="{b}"')])
    bb = b.encode()
    raw = (head + CRLF + b"This is an OpenPGP/MIME signed message (RFC 4880 and 3156)" + CRLF
           + b"--" + bb + CRLF + data + CRLF
           + b"--" + bb + CRLF
           + b'Content-Type: application/pgp-signature; name="signature.asc"' + CRLF
           + b"Content-Description: OpenPGP digital signature" + CRLF
           + b'Content-Disposition: attachment; filename="signature.asc"' + CRLF + CRLF
           + sig + b"--" + bb + b"--" + CRLF)
    return raw, [BOB], []


def kind_encrypted(files, home):
    inner = EmailMessage(policy=email.policy.SMTP)
    inner.set_content("Bob,\n\nthe door code is 4711. Encrypted to you and me.\n\nAlice\n")
    inner.add_attachment(open(os.path.join(files, "photo.png"), "rb").read(), "image", "png", filename="door.png")
    del inner["MIME-Version"]
    plain = inner.as_bytes(policy=email.policy.SMTP)
    enc = crlf(gpg(["--armor", "--encrypt", "--sign", "--local-user", "alice@mail.i2p", "--trust-model", "always",
                    "-r", "bob@mail.i2p", "-r", "alice@mail.i2p"], plain, home))
    b = "=-=-encrypted-" + secrets.token_hex(12)
    head = header_block([("From", ALICE), ("To", BOB), ("Subject", "..."),
                         ("Date", formatdate(localtime=True)), ("Message-ID", make_msgid()),
                         ("X-Mailer", X_MAILER), ("MIME-Version", "1.0"),
                         ("Content-Type", f'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="{b}"')])
    bb = b.encode()
    raw = (head + CRLF + b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)" + CRLF
           + b"--" + bb + CRLF
           + b"Content-Type: application/pgp-encrypted" + CRLF
           + b"Content-Description: PGP/MIME version identification" + CRLF + CRLF
           + b"Version: 1" + CRLF + CRLF
           + b"--" + bb + CRLF
           + b'Content-Type: application/octet-stream; name="encrypted.asc"' + CRLF
           + b"Content-Description: OpenPGP encrypted message" + CRLF
           + b'Content-Disposition: inline; filename="encrypted.asc"' + CRLF + CRLF
           + enc + CRLF + b"--" + bb + b"--" + CRLF)
    return raw, [BOB], []


KINDS = {
    "html-inline-image": kind_html_inline_image,
    "leaky-headers": kind_leaky_headers,
    "smtputf8": kind_smtputf8,
    "long-headers": kind_long_headers,
    "reply-autocrypt": kind_reply_autocrypt,
    "signed": kind_signed,
    "encrypted": kind_encrypted,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--kind", choices=sorted(KINDS), required=True)
    ap.add_argument("--files", required=True, help="folder with photo.png and report.pdf")
    ap.add_argument("--gnupghome", default=os.environ.get("GNUPGHOME", ""))
    a = ap.parse_args()
    raw, rcpts, opts = KINDS[a.kind](a.files, a.gnupghome)
    # local_hostname=None: smtplib says EHLO with socket.getfqdn(), as every script using it does.
    with smtplib.SMTP("127.0.0.1", a.port, timeout=30) as s:
        s.ehlo()
        s.login("alice", "alice-password")
        refused = s.sendmail("alice@mail.i2p", rcpts, raw, mail_options=opts)
        if refused:
            sys.exit(f"refused: {refused}")


if __name__ == "__main__":
    main()
