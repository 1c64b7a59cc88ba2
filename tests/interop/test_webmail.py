"""The webmail (WEB-2) in a real browser with JavaScript OFF, against a live core: read plain,
HTML (zero requests to a tracker) and broken mail, download an attachment, compose with an
attachment, reply (threading checked on the received copy), reply-all, forward, drafts, delete,
Sent/Drafts/Trash — and the webmail's data folder holds no message text in clear.
"""
from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import poplib
import re
import signal
import smtplib
import subprocess
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from browser import Tracker, make_browser, screenshot, wait_for
from harness import HOST, postern_bin, render_config
from test_web_accounts import Client

ATTACHMENT = hashlib.sha256(b"postern").digest() * 100 + b"ATTACHMENT-MARKER-7f3a"
UPLOAD = b"UPLOAD-MARKER-91c2 " + bytes(range(256)) * 20
MARKERS = ["PLAINBODY-MARKER-3e1d", "HTMLVISIBLE-MARKER-b77c", "SUBJECT-MARKER-c0de", "COMPOSED-MARKER-55aa",
           "DRAFT-MARKER-d4f7", "REPLY-MARKER-4242", "ATTACHMENT-MARKER-7f3a", "UPLOAD-MARKER-91c2"]


class WebmailProcess:
    """`postern webmail` on its own folder, pointed at the core's SMTP and POP3 ports."""

    def __init__(self, folder: Path, core, page_size: int = 25, overrides: dict | None = None):
        self.folder = folder
        self.data_dir = folder / "webmail-data"
        self.config = folder / "webmail.toml"
        sections = {
            "server": {"domain": "mail.i2p"},
            "webmail": {"listen": f"{HOST}:0", "smtp": f"{HOST}:{core.smtp_port}", "pop3": f"{HOST}:{core.pop3_port}",
                        "data_dir": str(self.data_dir), "page_size": page_size},
        }
        for section, keys in (overrides or {}).items():
            sections.setdefault(section, {}).update(keys)
        self.config.write_text(render_config(sections))
        self.stderr = open(folder / "webmail.stderr.log", "wb")
        self.proc = subprocess.Popen([str(postern_bin()), "webmail", "--config", str(self.config)], cwd=folder,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr, start_new_session=True)
        self.port = None
        deadline = time.monotonic() + 60
        while self.port is None:
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line and self.proc.poll() is not None:
                raise AssertionError(f"postern webmail exited {self.proc.returncode}: {(folder / 'webmail.stderr.log').read_text()}")
            m = re.match(r"webmail listening on (\S+):(\d+)", line)
            if m:
                self.port = int(m.group(2))
            assert time.monotonic() < deadline, "postern webmail did not start"
        threading.Thread(target=lambda: self.proc.stdout.read(), daemon=True).start()
        self.url = f"http://{HOST}:{self.port}"

    def stop(self) -> int | None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        finally:
            self.stderr.close()


def submit(srv, sender, recipients, msg: EmailMessage):
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=60) as s:
        s.login(sender.name, sender.password)
        refused = s.sendmail(sender.address, recipients, msg.as_bytes(policy=email.policy.SMTP))
        assert not refused


def mailbox(srv, acct) -> list[email.message.EmailMessage]:
    box = poplib.POP3(HOST, srv.pop3_port, timeout=60)
    box.user(acct.name)
    box.pass_(acct.password)
    try:
        count = len(box.list()[1])
        return [email.message_from_bytes(b"\r\n".join(box.retr(n)[1]), policy=email.policy.default) for n in range(1, count + 1)]
    finally:
        box.quit()


def wait_mail(srv, acct, predicate, what: str):
    return wait_for(lambda: next((m for m in mailbox(srv, acct) if predicate(m)), None), timeout=30, interval=0.5, what=what)


@pytest.fixture(scope="module")
def world(make_server, tmp_path_factory):
    srv = make_server(name="webmail-core")
    alice, bob, carol = srv.add_account("alice"), srv.add_account("bob"), srv.add_account("carol")
    tracker = Tracker()
    t = tracker.url

    plain = EmailMessage()
    plain["From"], plain["To"], plain["Cc"] = bob.address, alice.address, carol.address
    plain["Subject"] = "Plain hello SUBJECT-MARKER-c0de"
    plain.set_content("Hello Alice,\nPLAINBODY-MARKER-3e1d\n-- \nBob\n")
    submit(srv, bob, [alice.address, carol.address], plain)

    html = EmailMessage()
    html["From"], html["To"] = bob.address, alice.address
    html["Subject"] = "Newsletter with pictures"
    html.set_content("Plain part of the newsletter.\n")
    html.add_alternative(f"""<html><head>
<link rel="stylesheet" href="{t}/link.css"><style>@import url({t}/import.css); p {{ color: navy }}</style>
<script src="{t}/script.js"></script></head>
<body><p>HTMLVISIBLE-MARKER-b77c</p>
<img src="{t}/pixel.gif" width="1" height="1"><img srcset="{t}/srcset.gif 1x">
<div style="background-image: url('{t}/css-url.gif')">styled</div>
<iframe src="{t}/frame.html"></iframe><video poster="{t}/poster.jpg" src="{t}/video.mp4"></video>
<table background="{t}/table-bg.gif"><tr><td>cell</td></tr></table>
<a href="{t}/click">a link</a></body></html>""", subtype="html")
    html.add_attachment(ATTACHMENT, maintype="application", subtype="pdf", filename="report.pdf")
    submit(srv, bob, [alice.address], html)

    broken = (f"From: {bob.address}\r\nTo: {alice.address}\r\nSubject: =?x-bogus?Q?broken=20mail?=\r\n"
              "X-Long: " + "\r\n\t".join(["filler"] * 3000) + "\r\n"
              "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"nope\"\r\n\r\n"
              "--nope\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n\r\nbody in a bogus charset \xe9\r\n"
              "--nope\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n")
    with smtplib.SMTP(HOST, srv.smtp_port, timeout=60) as s:
        s.login(bob.name, bob.password)
        s.sendmail(bob.address, [alice.address], broken.encode("latin-1"))

    folder = tmp_path_factory.mktemp("webmail")
    webmail = WebmailProcess(folder, srv, page_size=2)
    downloads = folder / "downloads"
    downloads.mkdir()
    driver = make_browser(javascript=False, downloads=downloads)
    yield dict(srv=srv, alice=alice, bob=bob, carol=carol, tracker=tracker, webmail=webmail, b=driver,
               downloads=downloads, folder=folder)
    driver.quit()
    tracker.close()
    assert webmail.stop() == 0


def notice(b) -> str:
    try:
        return wait_for(lambda: b.find_element(By.CSS_SELECTOR, "p.notice").text, timeout=10, what="a notice")
    except AssertionError:
        raise AssertionError(f"no notice on {b.current_url}: {b.find_element(By.TAG_NAME, 'body').text[:2000]}")


def expect_notice(b, text: str) -> None:
    """Waits for the next page's notice to say `text`."""
    try:
        wait_for(lambda: text in b.find_element(By.CSS_SELECTOR, "p.notice").text, timeout=20, what=f"the notice {text!r}")
    except AssertionError:
        raise AssertionError(f"no notice {text!r} on {b.current_url}: {b.find_element(By.TAG_NAME, 'body').text[:2000]}")


def open_row(b, text: str):
    """Opens the message whose subject contains `text`, paging through the inbox as needed."""
    b.get(b.current_url.split("?")[0] if "/folder/" in b.current_url else b.current_url)
    while True:
        links = [a for a in b.find_elements(By.CSS_SELECTOR, "#messages td a") if text in a.text]
        if links:
            links[0].click()
            return
        older = b.find_elements(By.CSS_SELECTOR, "a[rel=next]")
        assert older, f"no message with {text!r} in the folder"
        older[0].click()


def all_subjects(b) -> list[str]:
    """Every subject of the folder on screen, following the pager."""
    subjects = []
    while True:
        subjects += [a.text for a in b.find_elements(By.CSS_SELECTOR, "#messages td a")]
        older = b.find_elements(By.CSS_SELECTOR, "a[rel=next]")
        if not older:
            return subjects
        older[0].click()


def test_webmail_walk(world):
    srv, alice, bob, carol, b = world["srv"], world["alice"], world["bob"], world["carol"], world["b"]
    tracker, webmail = world["tracker"], world["webmail"]
    # The Message-ID of the plain mail as Alice's mailbox holds it (the core gave it a new one).
    plain_id = next(m["Message-ID"] for m in mailbox(srv, alice) if "Plain hello" in m["Subject"])

    b.get(webmail.url + "/")
    assert b.current_url.endswith("/login")
    screenshot(b, "webmail-login")
    b.find_element(By.NAME, "user").send_keys(alice.name)
    b.find_element(By.NAME, "password").send_keys("wrong-password")
    b.find_element(By.CSS_SELECTOR, "#login button").click()
    assert "Wrong account name or password" in b.find_element(By.CSS_SELECTOR, "p.error").text
    time.sleep(1.1)  # the core's login back-off
    b.find_element(By.NAME, "user").clear()
    b.find_element(By.NAME, "user").send_keys(alice.address)
    b.find_element(By.NAME, "password").send_keys(alice.password)
    b.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_for(lambda: "/inbox" in b.current_url, what="the inbox")

    # Inbox: 3 messages, 2 per page, sortable.
    assert "3 messages" in b.find_element(By.CSS_SELECTOR, ".toolbar .hint").text
    assert len(b.find_elements(By.CSS_SELECTOR, "#messages tbody tr")) == 2
    assert "Page 1 of 2" in b.find_element(By.CSS_SELECTOR, ".pager").text
    screenshot(b, "webmail-inbox")
    b.find_element(By.LINK_TEXT, "Subject").click()  # descending by subject
    subjects = [a.text for a in b.find_elements(By.CSS_SELECTOR, "#messages td a")]
    b.find_element(By.LINK_TEXT, "Subject").click()  # then ascending
    ascending = [a.text for a in b.find_elements(By.CSS_SELECTOR, "#messages td a")]
    assert ascending[0].lower() <= ascending[1].lower() and subjects[0].lower() >= subjects[1].lower()
    assert ascending != subjects
    b.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
    assert "Page 2 of 2" in b.find_element(By.CSS_SELECTOR, ".pager").text
    b.find_element(By.LINK_TEXT, "Size").click()
    sizes_page = b.find_element(By.CSS_SELECTOR, ".pager").text
    assert "Page 1 of 2" in sizes_page

    # Plain text.
    b.get(webmail.url + "/inbox")
    open_row(b, "Plain hello")
    assert "PLAINBODY-MARKER-3e1d" in b.find_element(By.ID, "text-body").text
    assert bob.address in b.find_element(By.CSS_SELECTOR, "dl.headers").text

    # HTML: shown in the sandboxed frame, nothing remote requested.
    b.get(webmail.url + "/inbox")
    open_row(b, "Newsletter")
    frame = b.find_element(By.ID, "html-body")
    assert frame.get_attribute("sandbox") == ""
    assert "remote reference" in b.find_element(By.ID, "blocked").text
    b.switch_to.frame(frame)
    inner = b.find_element(By.TAG_NAME, "body").text
    b.switch_to.default_content()
    assert "HTMLVISIBLE-MARKER-b77c" in inner
    screenshot(b, "webmail-html-message")
    time.sleep(2)
    assert tracker.requests == [], f"the HTML mail made requests: {tracker.requests}"

    # The attachment downloads byte for byte.
    link = b.find_element(By.CSS_SELECTOR, "#attachments a")
    assert link.text == "report.pdf"
    link.click()
    target = world["downloads"] / "report.pdf"
    wait_for(lambda: target.exists() and target.read_bytes() == ATTACHMENT, what="the downloaded attachment")

    # Broken mail: a page that says what is odd, not an error.
    b.get(webmail.url + "/inbox")
    open_row(b, "broken")
    page = b.find_element(By.TAG_NAME, "main").text
    assert "Note:" in page
    assert "500" not in b.title

    # Compose with an attachment.
    upload = world["folder"] / "upload.bin"
    upload.write_bytes(UPLOAD)
    b.get(webmail.url + "/compose")
    b.find_element(By.NAME, "to").send_keys(bob.address)
    b.find_element(By.NAME, "bcc").send_keys(carol.address)
    b.find_element(By.NAME, "subject").send_keys("Composed with a file")
    b.find_element(By.NAME, "body").send_keys("Hi Bob,\nCOMPOSED-MARKER-55aa\n")
    b.find_element(By.NAME, "attachments").send_keys(str(upload))
    screenshot(b, "webmail-compose")
    b.find_element(By.ID, "send").click()
    expect_notice(b, "Sent to 2 recipients")
    assert "Composed with a file" in b.find_element(By.ID, "messages").text  # the Sent folder
    got = wait_mail(srv, bob, lambda m: m["Subject"] == "Composed with a file", "the composed mail at Bob")
    assert "COMPOSED-MARKER-55aa" in got.get_body(("plain",)).get_content()
    assert [p.get_content() for p in got.iter_attachments()] == [UPLOAD]
    assert got["Date"].endswith("+0000")
    for name in ("User-Agent", "X-Mailer", "Bcc", "X-Originating-IP"):
        assert got[name] is None, name
    assert carol.address not in got.as_string()  # Bcc is never named
    wait_mail(srv, carol, lambda m: m["Subject"] == "Composed with a file", "the Bcc copy at Carol")

    # Reply: threading headers on the copy Bob receives.
    b.get(webmail.url + "/inbox")
    open_row(b, "Plain hello")
    b.find_element(By.LINK_TEXT, "Reply").click()
    assert b.find_element(By.NAME, "to").get_attribute("value") == bob.address
    assert b.find_element(By.NAME, "subject").get_attribute("value").startswith("Re: Plain hello")
    body = b.find_element(By.NAME, "body")
    assert "> PLAINBODY-MARKER-3e1d" in body.get_attribute("value")
    body.send_keys("REPLY-MARKER-4242")
    b.find_element(By.ID, "send").click()
    notice(b)
    reply = wait_mail(srv, bob, lambda m: (m["Subject"] or "").startswith("Re: Plain hello"), "the reply at Bob")
    assert reply["In-Reply-To"] == plain_id
    assert plain_id in (reply["References"] or "")

    # Reply all: Bob and Carol (Alice herself left out).
    b.get(webmail.url + "/inbox")
    open_row(b, "Plain hello")
    b.find_element(By.LINK_TEXT, "Reply all").click()
    assert b.find_element(By.NAME, "to").get_attribute("value") == bob.address
    assert b.find_element(By.NAME, "cc").get_attribute("value") == carol.address
    b.find_element(By.ID, "send").click()
    notice(b)
    wait_mail(srv, carol, lambda m: (m["Subject"] or "").startswith("Re: Plain hello") and m["In-Reply-To"] == plain_id,
              "the reply-all at Carol")

    # Forward, the attachment going along.
    b.get(webmail.url + "/inbox")
    open_row(b, "Newsletter")
    b.find_element(By.LINK_TEXT, "Forward").click()
    assert b.find_element(By.NAME, "subject").get_attribute("value") == "Fwd: Newsletter with pictures"
    b.find_element(By.NAME, "to").send_keys(carol.address)
    b.find_element(By.ID, "send").click()
    notice(b)
    fwd = wait_mail(srv, carol, lambda m: m["Subject"] == "Fwd: Newsletter with pictures", "the forward at Carol")
    assert "Forwarded message" in fwd.get_body(("plain",)).get_content()
    assert [p.get_content() for p in fwd.iter_attachments()] == [ATTACHMENT]

    # Drafts: saved, listed, opened, sent, gone from Drafts.
    b.get(webmail.url + "/compose")
    b.find_element(By.NAME, "to").send_keys(bob.address)
    b.find_element(By.NAME, "subject").send_keys("A draft")
    b.find_element(By.NAME, "body").send_keys("DRAFT-MARKER-d4f7")
    b.find_element(By.ID, "save-draft").click()
    expect_notice(b, "Draft saved")
    assert "A draft" in b.find_element(By.ID, "messages").text
    screenshot(b, "webmail-drafts")
    b.find_element(By.LINK_TEXT, "A draft").click()
    b.find_element(By.LINK_TEXT, "Edit draft").click()
    assert b.find_element(By.NAME, "body").get_attribute("value").strip() == "DRAFT-MARKER-d4f7"
    b.find_element(By.ID, "send").click()
    notice(b)
    wait_mail(srv, bob, lambda m: m["Subject"] == "A draft", "the sent draft at Bob")
    b.get(webmail.url + "/folder/drafts")
    assert "No messages." in b.find_element(By.TAG_NAME, "main").text
    b.get(webmail.url + "/folder/sent")
    sent = all_subjects(b)
    assert {"A draft", "Fwd: Newsletter with pictures", "Composed with a file"} <= set(sent)
    assert sum(s.startswith("Re: Plain hello") for s in sent) == 2

    # Delete: to Trash (and off the server), then for good.
    before = len(mailbox(srv, alice))
    b.get(webmail.url + "/inbox")
    open_row(b, "broken")
    b.find_element(By.ID, "delete").click()
    expect_notice(b, "moved to Trash")
    assert len(mailbox(srv, alice)) == before - 1
    b.get(webmail.url + "/folder/trash")
    assert "broken" in b.find_element(By.ID, "messages").text
    screenshot(b, "webmail-trash")
    b.find_element(By.CSS_SELECTOR, "#messages td a").click()
    b.find_element(By.ID, "delete").click()
    expect_notice(b, "deleted for good")
    assert "No messages." in b.find_element(By.TAG_NAME, "main").text

    # Check for new mail picks up what arrived meanwhile.
    late = EmailMessage()
    late["From"], late["To"], late["Subject"] = bob.address, alice.address, "Arrived later"
    late.set_content("late\n")
    submit(srv, bob, [alice.address], late)
    b.get(webmail.url + "/inbox")
    assert "Arrived later" not in all_subjects(b)
    b.get(webmail.url + "/inbox")
    b.find_element(By.ID, "check").click()
    assert "Arrived later" in all_subjects(b)

    # Log out: the mailbox pages need a login again.
    b.find_element(By.CSS_SELECTOR, "header form button").click()
    b.get(webmail.url + "/inbox")
    assert b.current_url.endswith("/login")


def test_webmail_data_folder_holds_no_text_in_clear(world):
    data = world["webmail"].data_dir
    files = [p for p in data.rglob("*") if p.is_file()]
    assert files, "the walk saved Sent and Trash messages"
    needles = []
    for marker in MARKERS + [world["alice"].address, world["bob"].address, "Composed with a file", "Newsletter"]:
        raw = marker.encode()
        needles.append(raw)
        for shift in range(3):  # the marker inside base64 at any alignment
            needles.append(base64.b64encode(b"\0" * shift + raw)[4:-4])
    for path in files:
        blob = path.read_bytes()
        for needle in needles:
            assert needle not in blob, f"{path.relative_to(data)} contains {needle!r}"
        assert world["alice"].name.encode() not in path.name.encode()


def test_webmail_refuses_bad_requests_with_a_page(world):
    webmail, alice = world["webmail"], world["alice"]
    c = Client(webmail.port)
    resp, page = c.post("/login", {"user": alice.name, "password": alice.password, "csrf": "forged"})
    assert resp.status == 403 and "Reload the page" in page
    token = c.csrf("/login")
    resp, page = c.post("/login", {"csrf": token, "user": alice.name, "password": alice.password})
    assert resp.status == 303
    for path, status in (("/message?ref=garbage", 404), ("/message?ref=i:no-such-uid", 502),
                         ("/attachment?ref=i:x&n=999", 502), ("/folder/secret", 404)):
        resp, page = c.get(path)
        assert resp.status == status, (path, resp.status)
        assert "<h1>" in page and "Traceback" not in page
    token = c.csrf("/compose")
    resp, page = c.post("/compose", {"csrf": token, "to": "x" * 5000, "subject": "s", "body": "b", "action": "send"})
    assert resp.status == 400 and "longer than" in page
    resp, page = c.post("/compose", {"csrf": token, "to": "not an address", "subject": "s", "body": "b", "action": "send"})
    assert resp.status == 400 and "Not an address" in page
    resp, page = c.post("/compose", {"csrf": token, "subject": "s", "body": "b", "action": "send"})
    assert resp.status == 400 and "Name at least one recipient" in page
    # The HTML frame's own policy forbids every remote load and all script.
    c.get("/inbox?refresh=1")
    _, inbox = c.get("/inbox?sort=subject&order=asc")
    resp, page = c.get("/inbox")
    assert resp.getheader("Content-Security-Policy").startswith("default-src 'none'")
    m = re.search(r'href="(/message\?ref=[^"]+)"', inbox)
    assert m
    html_ref = m.group(1).replace("&amp;", "&")
    resp, page = c.get(html_ref.replace("/message?", "/message/html?"))
    csp = resp.getheader("Content-Security-Policy")
    assert "sandbox" in csp and "default-src 'none'" in csp and "script-src" not in csp
