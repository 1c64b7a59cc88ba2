"""The inbound HTML policy (issue 9, SCAN-2) end to end: mail sent from the Internet through the test
Internet of internet.py (the gateway's MX, which hands it to the core) to two accounts, one with
the HTML switch on (the default) and one with `postern account set NAME html_sanitise=off`.

The stored message itself is checked, not the webmail: its text/html part is written to a file and
rendered by a real headless Chromium with JavaScript ON (the worst reader: any client), and a
local HTTP server run by the test (browser.Tracker) counts every request. The sanitised copy must
make ZERO requests; the same HTML as sent (the other account's copy) is rendered too, as the
control that shows the corpus really does phone home in this browser.

Tracking and active constructs in the corpus (every one points at the tracker, each at its own
path, so a leak names its construct):

  - tracking pixels: <img src> 1x1, lazy-loaded <img loading=lazy>, <input type=image>
  - responsive images: <img srcset>, <picture><source srcset>
  - SVG: <image href>, <image xlink:href>, <use href>, SVG <style> with @import, <svg onload>
  - CSS in <style> elements: @import url(), @import "string", url() in background,
    background-image, list-style-image, cursor, @font-face src, CSS escapes hiding url (u\\72 l),
    a second <style> in the body
  - CSS in style attributes: background:url(), url(&quot;…&quot;) with entity-encoded quotes,
    background-image with unquoted url, comments inside the url token (ur/**/l)
  - <link rel=stylesheet>, rel=preload, rel=prefetch, rel=icon, rel=dns-prefetch
  - <meta http-equiv=refresh> (head and body), <base href> followed by relative URLs
  - Outlook conditional comments: <!--[if mso]>…<![endif]--> and the downlevel-revealed
    <!--[if !mso]><!-->…<!--<![endif]--> (which every browser renders)
  - malformed markup: <img/src=…>, unquoted and upper-case attributes, spaces around "=", a
    tag left unterminated, "<<img …>>", a tag split by another, a stray "</p>" inside a table,
    a NUL byte, a <textarea>/<title> RCDATA trick, a comment closed with "--!>"
  - nested markup: deep inline nesting, tables in tables, <math><mtext> and <svg><foreignObject>
    islands, <noscript>, <template>
  - background="" attribute on <body>, <table>, <td>
  - embedded content: <iframe src>, <iframe srcdoc>, <frame>, <object data>, <embed src>,
    <video poster>, <video src>, <video><source src>, <video><track src>, <audio src>,
    <audio><source src>, <bgsound src>
  - forms: <form action> (and one submitted by script), <button formaction>
  - script: <script src>, inline <script> (new Image, fetch, navigator.sendBeacon),
    `javascript:` links (plain, entity-encoded, with a tab inside the scheme), <a ping>
  - event handlers: <body onload>, <img onerror>, <details open ontoggle>, <video onloadstart>,
    <div onmouseover>, <marquee onstart>
  - MIME hiding places: a text/html part inside a multipart whose boundary is longer than RFC
    2046's 70 characters, and one nested 40 multiparts deep (both read by ordinary MIME parsers)

Also: the text/plain alternative is byte-identical to what was sent; `cid:` inline images still
reference their part (and that part is byte-identical); the account with html_sanitise=off gets the
whole body exactly as sent; a single-part latin-1 base64 text/html message is rewritten too; HTML
in multiparts Postern's MIME parser will not read (too long a boundary, too deep) is made harmless
as well.
"""
from __future__ import annotations

import base64
import email
import email.policy
import quopri
import re
import smtplib
import time
import uuid

import pytest

from browser import Tracker, make_browser
from internet import GATEWAY_ADDRESS, STRANGER, Lab
from mailutil import body_of, fetch_all, split_message, wait_for_count

SETTLE = 5.0   # seconds a rendered page gets for refreshes, lazy loads, media, script timers

# The 1x1 PNG of the inline image (cid:logo@example.test).
PNG = base64.b64decode(b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def corpus(t: str) -> str:
    """The tracking corpus; every remote reference is the tracker T at /c/<construct>."""
    return f"""<!DOCTYPE html>
<html><head>
<meta charset="utf-8">
<title>Your weekly offers</title>
<meta http-equiv="refresh" content="2;url={t}/c/meta-refresh-head">
<base href="{t}/c/base-href/">
<link rel="stylesheet" href="{t}/c/link-stylesheet.css">
<link rel="preload" as="image" href="{t}/c/link-preload.png">
<link rel="prefetch" href="{t}/c/link-prefetch">
<link rel="icon" href="{t}/c/link-icon.ico">
<link rel="dns-prefetch" href="{t}/c/link-dns-prefetch">
<style>
@import url("{t}/c/style-import-url.css");
@import "{t}/c/style-import-string.css";
body {{ background: #fff url({t}/c/style-body-background.png) no-repeat; }}
.hero {{ background-image: url('{t}/c/style-class-background.png'); height: 20px; }}
@font-face {{ font-family: tracked; src: url({t}/c/style-font-face.woff) format("woff"); }}
.tracked-font {{ font-family: tracked, sans-serif; }}
ul.marks li {{ list-style-image: url({t}/c/style-list-image.png); }}
.pointer {{ cursor: url({t}/c/style-cursor.cur), auto; }}
.escaped {{ background: u\\72 l({t}/c/style-css-escape.png); height: 5px; }}
</style>
<script src="{t}/c/script-src.js"></script>
<script>new Image().src = "{t}/c/script-new-image"; fetch("{t}/c/script-fetch", {{mode: "no-cors"}});</script>
</head>
<body background="{t}/c/body-background-attribute.png" onload="fetch('{t}/c/body-onload', {{mode: 'no-cors'}})">
<h1 class="hero tracked-font">Dear customer,</h1>
<p class="escaped pointer">Here are this week's offers, just for you.</p>
<img src="{t}/c/pixel.gif" width="1" height="1" alt="" style="display:block">
<img src="{t}/c/pixel-lazy.gif" loading="lazy" width="1" height="1">
<img src="cid:logo@example.test" alt="Logo" width="16" height="16">
<img src="relative-under-base.png" width="1" height="1">
<img src="does-not-exist" onerror="this.onerror=null; this.src='{t}/c/img-onerror'">
<img srcset="{t}/c/srcset-1x.png 1x, {t}/c/srcset-2x.png 2x" alt="responsive">
<picture><source srcset="{t}/c/picture-source.png"><img src="{t}/c/picture-img.png" alt="picture"></picture>
<input type="image" src="{t}/c/input-image.png" alt="go">
<svg width="20" height="20" onload="fetch('{t}/c/svg-onload', {{mode: 'no-cors'}})">
  <style>@import url({t}/c/svg-style-import.css);</style>
  <image href="{t}/c/svg-image-href.png" width="10" height="10"/>
  <image xlink:href="{t}/c/svg-image-xlink.png" width="10" height="10"/>
  <use href="{t}/c/svg-use.svg#a"/>
  <foreignObject width="10" height="10"><img src="{t}/c/svg-foreign-img.png"></foreignObject>
</svg>
<div style="background:url({t}/c/style-attribute-background.png); height:5px">styled</div>
<div style="background-image: url(&quot;{t}/c/style-attribute-entities.png&quot;); height:5px">styled</div>
<div style="background-image:url({t}/c/style-attribute-unquoted.png);height:5px">styled</div>
<div style="background: ur/**/l({t}/c/style-attribute-comment.png); height:5px">styled</div>
<style>.late {{ background: url({t}/c/style-in-body.png); height: 5px; }}</style><div class="late">late</div>
<ul class="marks"><li>one</li><li>two</li></ul>
<table background="{t}/c/table-background.png" width="100"><tr><td background="{t}/c/td-background.png" height="5">cell</td></tr></table>
<iframe src="{t}/c/iframe-src" width="10" height="10"></iframe>
<iframe srcdoc="&lt;img src='{t}/c/iframe-srcdoc'&gt;" width="10" height="10"></iframe>
<frameset><frame src="{t}/c/frame-src"></frameset>
<object data="{t}/c/object-data" width="10" height="10"></object>
<embed src="{t}/c/embed-src" width="10" height="10">
<video poster="{t}/c/video-poster.png" src="{t}/c/video-src.mp4" width="10" height="10" onloadstart="fetch('{t}/c/video-onloadstart', {{mode: 'no-cors'}})"></video>
<video width="10" height="10"><source src="{t}/c/video-source.mp4" type="video/mp4"><track kind="captions" src="{t}/c/video-track.vtt" default></video>
<audio src="{t}/c/audio-src.mp3" preload="auto"></audio>
<audio preload="auto"><source src="{t}/c/audio-source.mp3" type="audio/mpeg"></audio>
<bgsound src="{t}/c/bgsound.wav">
<form action="{t}/c/form-action" method="post"><input name="email" value="you@example.test"><button formaction="{t}/c/button-formaction">Unsubscribe</button></form>
<form id="auto" action="{t}/c/form-script-submitted" method="get"></form>
<script>setTimeout(function () {{ navigator.sendBeacon("{t}/c/script-beacon", "x"); document.getElementById("auto").submit(); }}, 1500);</script>
<p><a href="javascript:fetch('{t}/c/javascript-link')">a script link</a>
<a href="&#106;avascript:fetch('{t}/c/javascript-entities')">entity-encoded</a>
<a href="java&#9;script:fetch('{t}/c/javascript-tab')">tab in the scheme</a>
<a href="https://shop.example.test/offers" ping="{t}/c/a-ping">an ordinary link</a></p>
<details open ontoggle="fetch('{t}/c/details-ontoggle', {{mode: 'no-cors'}})"><summary>more</summary>details</details>
<div onmouseover="fetch('{t}/c/div-onmouseover')">hover</div>
<marquee onstart="fetch('{t}/c/marquee-onstart', {{mode: 'no-cors'}})">news</marquee>
<meta http-equiv="refresh" content="3;url={t}/c/meta-refresh-body">
<!--[if mso]><img src="{t}/c/conditional-mso.png"><![endif]-->
<!--[if !mso]><!--><img src="{t}/c/conditional-downlevel-revealed.png" width="1" height="1"><!--<![endif]-->
<img/src="{t}/c/malformed-slash.png">
<IMG SRC={t}/c/malformed-upper-unquoted.png WIDTH=1>
<img src = "{t}/c/malformed-spaces.png" >
<<img src="{t}/c/malformed-double-lt.png">>
<im<img src="{t}/c/malformed-split.png">g>
<table><tr></p><td><img src="{t}/c/malformed-stray-close.png"></td></tr></table>
<p>nul\x00<img src="{t}/c/malformed-after-nul.png"></p>
<textarea><img src="{t}/c/rcdata-textarea.png"></textarea>
<title><img src="{t}/c/rcdata-title.png"></title>
<!-- a comment closed oddly --!><img src="{t}/c/comment-bang-close.png">
<div><p><span><b><i><u><em><strong><img src="{t}/c/nested-deep.png"></strong></em></u></i></b></span></p></div>
<table><tr><td><table><tr><td><table><tr><td style="background:url({t}/c/nested-table-style.png)"><img src="{t}/c/nested-table-img.png"></td></tr></table></td></tr></table></td></tr></table>
<math><mtext><img src="{t}/c/math-mtext-img.png"></mtext></math>
<noscript><img src="{t}/c/noscript-img.png"></noscript>
<template><img src="{t}/c/template-img.png"></template>
<img src="{t}/c/malformed-unterminated.png" alt="the end
</body></html>
"""


def plain_text() -> bytes:
    """The text/plain alternative as sent (quoted-printable: soft breaks, =20 before line ends, =3D,
    non-ASCII) — it must come back byte for byte."""
    text = ("Dear customer,\n\nHere are this week's offers, just for you — prices in € and £.   \n"
            "A long line that a mail client wraps with soft line breaks because it is longer than seventy-six characters in all.\n"
            "x=y and a trailing tab\t\n-- \nThe shop\n")
    return qp(text.encode("utf-8"))


def qp(data: bytes) -> bytes:
    encoded = quopri.encodestring(data.replace(b"\r\n", b"\n"))
    return encoded.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


class Sent:
    def __init__(self, tracker_url: str, recipients: list[str]):
        self.marker = uuid.uuid4().hex[:12]
        self.html = corpus(tracker_url)
        self.plain_part = (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                           + plain_text().rstrip(b"\r\n"))
        self.html_part = (b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                          + qp(self.html.encode("utf-8")).rstrip(b"\r\n"))
        self.image_part = (b"Content-Type: image/png; name=\"logo.png\"\r\nContent-Transfer-Encoding: base64\r\n"
                           b"Content-ID: <logo@example.test>\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n\r\n"
                           + b64(PNG).rstrip(b"\r\n"))
        self.message = (
            f"From: Offers <news@nospf.test>\r\nTo: {', '.join(recipients)}\r\nSubject: offers {self.marker}\r\n"
            f"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{self.marker}@nospf.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/related; boundary=\"rel-b0undary\"; type=\"multipart/alternative\"\r\n\r\n").encode() + (
            b"--rel-b0undary\r\nContent-Type: multipart/alternative; boundary=\"alt-b0undary\"\r\n\r\n"
            b"--alt-b0undary\r\n" + self.plain_part + b"\r\n"
            b"--alt-b0undary\r\n" + self.html_part + b"\r\n"
            b"--alt-b0undary--\r\n"
            b"--rel-b0undary\r\n" + self.image_part + b"\r\n"
            b"--rel-b0undary--\r\n")


def from_internet(recipients: list[str], message: bytes) -> None:
    with smtplib.SMTP(GATEWAY_ADDRESS, 25, source_address=(STRANGER, 0), timeout=60) as smtp:
        smtp.ehlo("mailer.nospf.test")
        refused = smtp.sendmail("news@nospf.test", recipients, message)
        assert not refused, refused


def html_of(raw: bytes) -> str:
    """The decoded text/html part a mail client would show."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = [p for p in message.walk() if p.get_content_type() == "text/html"]
    assert len(parts) == 1, [p.get_content_type() for p in message.walk()]
    return parts[0].get_content()


@pytest.fixture(scope="module")
def lab(make_server):
    lab = Lab(make_server)
    yield lab
    lab.close()


@pytest.fixture(scope="module")
def tracker():
    t = Tracker()
    yield t
    t.close()


@pytest.fixture(scope="module")
def browser():
    driver = make_browser(javascript=True)
    yield driver
    driver.quit()


def render(browser, tracker, html: str, path) -> list[str]:
    """Loads HTML from a local file in the browser; returns the tracker's requests meanwhile."""
    path.write_text(html, encoding="utf-8")
    tracker.requests.clear()
    browser.get("about:blank")
    browser.get(path.as_uri())
    time.sleep(SETTLE)
    browser.get("about:blank")
    time.sleep(0.3)
    return list(tracker.requests)


@pytest.fixture(scope="module")
def delivered(lab, tracker):
    """The corpus mail sent once from the Internet to an account with the switch on (default)
    and one with it off, in one SMTP transaction; both stored copies."""
    on = lab.core.take_account("htmlon")
    off = lab.core.take_account("htmloff")
    lab.core.cli("account", "set", off.name, "html_sanitise=off")
    assert "html_sanitise: off" in lab.core.cli("account", "show", off.name).stdout
    assert "html_sanitise: on" in lab.core.cli("account", "show", on.name).stdout
    sent = Sent(tracker.url, [f"{on.name}@i2pmail.org", f"{off.name}@i2pmail.org"])
    from_internet([f"{on.name}@i2pmail.org", f"{off.name}@i2pmail.org"], sent.message)
    [stored_on] = wait_for_count(lab.core, on, 1, timeout=30)
    [stored_off] = wait_for_count(lab.core, off, 1, timeout=30)
    assert sent.marker.encode() in stored_on and sent.marker.encode() in stored_off
    return sent, stored_on, stored_off


def test_sanitised_html_makes_zero_requests_in_a_real_browser(delivered, browser, tracker, tmp_path):
    sent, stored_on, stored_off = delivered
    html = html_of(stored_on)
    assert "Dear customer," in html and "this week" in html        # the readable content stays
    requests = render(browser, tracker, html, tmp_path / "sanitised.html")
    assert requests == [], f"the stored HTML made the reader's browser fetch: {requests}"
    # Control: the copy of the account with html_sanitise=off is the HTML as sent, and the same
    # browser does phone home with it — the corpus is live, the zero above means something.
    original = html_of(stored_off)
    # (The CRLF before the boundary belongs to the delimiter: the part ends without it.)
    assert original.replace("\r\n", "\n") == sent.html.rstrip("\n")
    control = render(browser, tracker, original, tmp_path / "original.html")
    hit = sorted({r.split()[1].split("?")[0] for r in control})
    print(f"control: {len(hit)} constructs fetched: {hit}")
    for construct in ("pixel.gif", "srcset-1x.png", "picture-source.png", "svg-image-href.png", "svg-image-xlink.png",
                      "link-stylesheet.css", "style-import-url.css", "style-css-escape.png", "style-attribute-background.png",
                      "style-attribute-entities.png", "table-background.png", "td-background.png", "iframe-src",
                      "object-data", "embed-src", "base-href/relative-under-base.png", "script-new-image",
                      "conditional-downlevel-revealed.png", "malformed-slash.png", "malformed-upper-unquoted.png",
                      "nested-deep.png", "nested-table-style.png"):
        assert f"/c/{construct}" in hit, f"the control did not fetch {construct}: {hit}"


def test_sanitised_html_has_no_active_or_remote_markup_left(delivered, tracker):
    sent, stored_on, _ = delivered
    html = html_of(stored_on).lower()
    for gone in ("<script", "<iframe", "<object", "<embed", "<video", "<audio", "<svg", "<form", "<base",
                 "<link", "<meta", "<frame", "<picture", "<source", "<input", "<math", "@import", "@font-face", "url(", "srcset=", "background=", "javascript:",
                 "poster", "formaction", "ping=", "<!--[if"):
        assert gone not in html, f"{gone!r} is still in the sanitised HTML"
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", html), "an event handler is still there"
    # <style> may stay, re-serialised from its tokens with nothing that loads (no url(), @import).
    for style in re.findall(r"<style>(.*?)</style>", html, re.S):
        assert "url" not in style and "@" not in style and "\\" not in style, style
    # What still names the tracker may only be an ordinary link, opened by a click.
    for m in re.finditer(re.escape(tracker.url.lower()) + r"[^\"' >]*", html):
        before = html[max(0, m.start() - 200):m.start()]
        assert re.search(r"<a\s[^>]*href=[\"']?$", before), f"tracker reference outside a link: {before[-80:]}{m.group(0)}"


def test_plain_alternative_inline_image_and_cid_survive(delivered):
    sent, stored_on, _ = delivered
    # The text/plain alternative and the inline image: byte for byte, in their place.
    assert b"--alt-b0undary\r\n" + sent.plain_part + b"\r\n--alt-b0undary\r\n" in stored_on
    assert b"--rel-b0undary\r\n" + sent.image_part + b"\r\n--rel-b0undary--\r\n" in stored_on
    # The HTML part was rewritten (UTF-8 quoted-printable) and its inline image still points at
    # the part, which a client finds by its Content-ID.
    assert sent.html_part not in stored_on
    html = html_of(stored_on)
    assert re.search(r"<img\b[^>]*\ssrc=\"cid:logo@example\.test\"", html), html[:2000]
    message = email.message_from_bytes(stored_on, policy=email.policy.default)
    types = [p.get_content_type() for p in message.walk()]
    assert types == ["multipart/related", "multipart/alternative", "text/plain", "text/html", "image/png"], types
    html_part = [p for p in message.walk() if p.get_content_type() == "text/html"][0]
    assert html_part.get_content_charset() == "utf-8"
    assert html_part["Content-Transfer-Encoding"].lower() == "quoted-printable"
    image = [p for p in message.walk() if p.get_content_type() == "image/png"][0]
    assert image["Content-ID"] == "<logo@example.test>" and image.get_content() == PNG
    # The message header is the gateway's usual one (PRIV-5), untouched by the HTML policy.
    head, _ = split_message(stored_on)
    assert b"Subject: offers " + sent.marker.encode() in head and b"Authentication-Results: i2pmail.org;" in head


def test_account_with_the_switch_off_gets_the_html_unchanged(delivered):
    sent, _, stored_off = delivered
    assert body_of(stored_off) == body_of(sent.message)
    assert sent.html_part in stored_off


def test_single_part_latin1_base64_html_is_rewritten_too(lab, browser, tracker, tmp_path):
    user = lab.core.take_account("htmlsingle")
    recipient = f"{user.name}@i2pmail.org"
    html = (f"<html><body style=\"background:url({tracker.url}/c/single-body)\"><p>Grüße aus Köln, "
            f"Ihr Händler</p><img src=\"{tracker.url}/c/single-pixel.gif\" width=1 height=1></body></html>")
    message = (f"From: shop@nospf.test\r\nTo: {recipient}\r\nSubject: single\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n"
               "X-Campaign: 42\r\n\r\n").encode() + b64(html.encode("iso-8859-1"))
    from_internet([recipient], message)
    [stored] = wait_for_count(lab.core, user, 1, timeout=30)
    head, _ = split_message(stored)
    assert b"X-Campaign: 42" in head
    assert b"Content-Type: text/html; charset=utf-8" in head and b"Content-Transfer-Encoding: quoted-printable" in head
    assert b"iso-8859-1" not in head and b"base64" not in head
    shown = html_of(stored)
    assert "Grüße aus Köln" in shown and "Händler" in shown
    # (Only this message's paths count: a late request of an earlier page cannot blur the result.)
    assert [r for r in render(browser, tracker, shown, tmp_path / "single.html") if "/c/single-" in r] == []
    assert tracker.url not in shown
    assert len(fetch_all(lab.core, user)) == 1


def hidden_html(recipient: str, tracker_url: str, boundary: str, depth: int) -> bytes:
    """A text/html part inside DEPTH multiparts whose boundaries start with BOUNDARY."""
    entity = (b"Content-Type: text/html; charset=us-ascii\r\n\r\n<p>Dear customer,</p>"
              + f'<img src="{tracker_url}/c/hidden-pixel.gif" width="1" height="1">'.encode() + b"\r\n")
    for level in range(depth):
        b = f"{boundary}{level}".encode()
        entity = b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--' + b + b"\r\n" + entity + b"--" + b + b"--\r\n"
    return f"From: shop@nospf.test\r\nTo: {recipient}\r\nSubject: hidden\r\nMIME-Version: 1.0\r\n".encode() + entity


@pytest.mark.parametrize("boundary,depth", [("b" * 72, 1), ("n", 40)], ids=["boundary-over-70-characters", "nested-40-deep"])
def test_html_in_multiparts_the_parser_will_not_read_is_made_harmless_too(lab, browser, tracker, tmp_path, boundary, depth):
    """Python's email package (like Thunderbird) reads a boundary longer than RFC 2046's 70
    characters and any depth of nesting: the HTML such a client finds must be harmless as well."""
    user = lab.core.take_account("htmlhidden")
    recipient = f"{user.name}@i2pmail.org"
    from_internet([recipient], hidden_html(recipient, tracker.url, boundary, depth))
    [stored] = wait_for_count(lab.core, user, 1, timeout=30)
    message = email.message_from_bytes(stored, policy=email.policy.default)
    shown = [p.get_content() for p in message.walk() if p.get_content_type() == "text/html"]
    assert shown, [p.get_content_type() for p in message.walk()]
    for i, html in enumerate(shown):
        requests = render(browser, tracker, html, tmp_path / f"hidden-{i}.html")
        assert [r for r in requests if "/c/hidden-" in r] == [], html[:300]
    assert tracker.url.encode() not in stored, "the tracking pixel reached the mailbox untouched"
