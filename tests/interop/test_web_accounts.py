"""The account pages (WEB-1) in a real browser: sign-up with the proof of work minted by the
page's script and, with JavaScript off, pasted from `postern hashcash mint`; login; every
setting; password change; deletion. Plus the safety rules checked over plain HTTP: CSRF,
cookies, CSP, oversized and malformed forms, expired sessions, the sign-up limit.
"""
from __future__ import annotations

import poplib
import time

import pytest
from selenium.webdriver.common.by import By

from browser import make_browser, screenshot, wait_for
from harness import HOST
from webclient import WebClient

SIGNUP_BITS = 12
WEB = {"web": {"listen": f"{HOST}:0", "signup_bits": SIGNUP_BITS}}


@pytest.fixture(scope="module")
def web_server(make_server):
    return make_server(WEB, name="web")


@pytest.fixture
def browser():
    driver = make_browser(javascript=True)
    yield driver
    driver.quit()


@pytest.fixture
def plain_browser():
    """JavaScript off, as many I2P users browse."""
    driver = make_browser(javascript=False)
    yield driver
    driver.quit()


def fill(driver, **fields):
    for name, value in fields.items():
        element = driver.find_element(By.NAME, name)
        element.clear()
        element.send_keys(value)


def notice(driver) -> str:
    return wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "p.notice").text, what="a notice on the page")


def error(driver) -> str:
    return wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "p.error").text, what="an error on the page")


def expect_notice(driver, text: str) -> None:
    """Waits for the next page's notice to say `text` (the previous page's may still be shown
    for a moment after a click)."""
    wait_for(lambda: text in driver.find_element(By.CSS_SELECTOR, "p.notice").text, what=f"the notice {text!r}")


def expect_error(driver, text: str) -> None:
    wait_for(lambda: text in driver.find_element(By.CSS_SELECTOR, "p.error").text, what=f"the error {text!r}")


def show(srv, name: str) -> str:
    return srv.cli("account", "show", name).stdout


def pop3_login(srv, name: str, password: str) -> bool:
    box = poplib.POP3(HOST, srv.pop3_port, timeout=30)
    try:
        box.user(name)
        box.pass_(password)
        return True
    except poplib.error_proto:
        return False
    finally:
        try:
            box.quit()
        except Exception:
            pass


def test_signup_and_every_setting_with_javascript(web_server, browser):
    srv, b = web_server, browser
    b.get(srv.web_url + "/")
    screenshot(b, "account-home")
    b.find_element(By.LINK_TEXT, "Create an account").click()
    fill(b, name="walker", password="first-password-1", password2="first-password-1")
    screenshot(b, "account-signup")
    assert b.find_element(By.NAME, "stamp").get_attribute("value") == ""
    b.find_element(By.CSS_SELECTOR, "#signup button[type=submit]").click()
    # The page's script mints the stamp, then the form goes; the account page greets.
    expect_notice(b, "Your address is walker@mail.i2p")
    assert b.current_url.endswith("/account")
    assert "delay: defer" in show(srv, "walker")
    assert pop3_login(srv, "walker", "first-password-1")
    screenshot(b, "account-overview")

    # Delay mode.
    b.find_element(By.CSS_SELECTOR, "input[name=delay][value=pool]").click()
    b.find_element(By.CSS_SELECTOR, "#delay button").click()
    expect_notice(b, "Delay saved: pool")
    assert "delay: pool" in show(srv, "walker")
    assert b.find_element(By.CSS_SELECTOR, "input[name=delay][value=pool]").is_selected()

    # IRC nick: a bad one is refused with the reason, a good one kept, an empty one clears it.
    fill(b, irc_nick="9bad nick")
    b.find_element(By.CSS_SELECTOR, "#irc button").click()
    expect_error(b, "not a valid IRC nickname")
    b.get(srv.web_url + "/account")
    fill(b, irc_nick="walker_irc")
    b.find_element(By.CSS_SELECTOR, "#irc button").click()
    expect_notice(b, "IRC nick saved: walker_irc")
    assert "irc_nick: walker_irc" in show(srv, "walker")

    # Privacy options: both checkboxes turned the other way.
    html_box = b.find_element(By.NAME, "html_sanitise")
    listing_box = b.find_element(By.NAME, "key_listing")
    html_before, listing_before = html_box.is_selected(), listing_box.is_selected()
    html_box.click()
    listing_box.click()
    b.find_element(By.CSS_SELECTOR, "#options button").click()
    expect_notice(b, "Privacy options saved")
    assert b.find_element(By.NAME, "html_sanitise").is_selected() is not html_before
    assert b.find_element(By.NAME, "key_listing").is_selected() is not listing_before

    # Password: a wrong current one changes nothing; the right one does, for POP3 too.
    fill(b, current="not-my-password", new="second-password-2", new2="second-password-2")
    b.find_element(By.CSS_SELECTOR, "#password button").click()
    expect_error(b, "current password is wrong")
    assert pop3_login(srv, "walker", "first-password-1")
    b.get(srv.web_url + "/account")
    fill(b, current="first-password-1", new="second-password-2", new2="second-password-2")
    b.find_element(By.CSS_SELECTOR, "#password button").click()
    expect_notice(b, "Password changed")
    assert pop3_login(srv, "walker", "second-password-2")
    assert not pop3_login(srv, "walker", "first-password-1")

    # Log out, log in with the new password.
    b.find_element(By.CSS_SELECTOR, "header form button").click()
    wait_for(lambda: b.find_elements(By.LINK_TEXT, "Log in"), what="the home page")
    b.get(srv.web_url + "/account")
    assert b.current_url.endswith("/login")
    fill(b, name="walker", password="first-password-1")
    b.find_element(By.CSS_SELECTOR, "#login button").click()
    expect_error(b, "Wrong account name or password")
    screenshot(b, "account-login")
    time.sleep(1.1)  # the shared back-off (1 s in the tests) after that failure
    fill(b, name="walker", password="second-password-2")
    b.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_for(lambda: b.current_url.endswith("/account"), what="the account page")

    # Deletion: the page says it is final; the box must be ticked and the password right.
    b.find_element(By.LINK_TEXT, "Delete this account…").click()
    assert "This is final." in b.find_element(By.TAG_NAME, "main").text
    screenshot(b, "account-delete")
    fill(b, password="second-password-2")
    b.find_element(By.NAME, "confirm").click()
    b.find_element(By.CSS_SELECTOR, "main form button.danger").click()
    wait_for(lambda: "Account deleted" in b.find_element(By.TAG_NAME, "h1").text, what="the deletion page")
    assert srv.cli("account", "show", "walker", check=False).returncode != 0
    assert not pop3_login(srv, "walker", "second-password-2")
    # The name is quarantined: signing up again is refused with the reason.
    b.get(srv.web_url + "/signup")
    fill(b, name="walker", password="third-password-3", password2="third-password-3")
    b.find_element(By.CSS_SELECTOR, "#signup button[type=submit]").click()
    expect_error(b, "stays reserved")


def test_signup_without_javascript_takes_a_pasted_stamp(web_server, plain_browser):
    srv, b = web_server, plain_browser
    b.get(srv.web_url + "/signup")
    assert "postern hashcash mint" in b.find_element(By.ID, "pow-status").text
    # No stamp: the form says what is missing (the script that would mint it does not run).
    fill(b, name="nojs", password="plain-password-1", password2="plain-password-1")
    b.find_element(By.CSS_SELECTOR, "#signup button[type=submit]").click()
    expect_error(b, "Proof of work is missing")
    # A stamp for another address is refused.
    other = srv.cli("hashcash", "mint", "--bits", str(SIGNUP_BITS), "someone@mail.i2p").stdout.strip()
    fill(b, password="plain-password-1", password2="plain-password-1", stamp=other)
    b.find_element(By.CSS_SELECTOR, "#signup button[type=submit]").click()
    expect_error(b, "is for someone@mail.i2p")
    # Too few bits is refused.
    weak = srv.cli("hashcash", "mint", "--bits", "4", "nojs@mail.i2p").stdout.strip()
    fill(b, password="plain-password-1", password2="plain-password-1", stamp=weak)
    b.find_element(By.CSS_SELECTOR, "#signup button[type=submit]").click()
    expect_error(b, "has 4 bits, 12 are required")
    stamp = srv.cli("hashcash", "mint", "--bits", str(SIGNUP_BITS), "nojs@mail.i2p").stdout.strip()
    fill(b, password="plain-password-1", password2="plain-password-1", stamp=stamp)
    b.find_element(By.CSS_SELECTOR, "#signup button[type=submit]").click()
    expect_notice(b, "Your address is nojs@mail.i2p")
    # Every setting works with JavaScript off too: plain forms.
    b.find_element(By.CSS_SELECTOR, "input[name=delay][value=batch]").click()
    b.find_element(By.CSS_SELECTOR, "#delay button").click()
    expect_notice(b, "Delay saved: batch")
    assert "delay: batch" in show(srv, "nojs")
    # The same stamp cannot buy a second account (nor quota: one table of spent stamps).
    b.find_element(By.CSS_SELECTOR, "header form button").click()
    b.get(srv.web_url + "/signup")
    fill(b, name="nojs", password="plain-password-1", password2="plain-password-1", stamp=stamp)
    b.find_element(By.CSS_SELECTOR, "#signup button[type=submit]").click()
    expect_error(b, "already exists")


# -- plain HTTP: the safety rules -------------------------------------------------------------

class Client(WebClient):
    """Pages as text, for the checks a browser would hide."""

    def get(self, path):
        resp, data = self.request("GET", path)
        return resp, data.decode("utf-8", "replace")

    def post(self, path, fields: dict, raw: bytes | None = None):
        resp, data = self.post_form(path, fields, raw)
        return resp, data.decode("utf-8", "replace")


def test_pages_carry_strict_headers_and_cookies(web_server):
    c = Client(web_server.web_port)
    for path in ("/", "/login", "/signup", "/no-such-page", "/static/style.css", "/static/pow.js"):
        resp, _ = c.get(path)
        csp = resp.getheader("Content-Security-Policy")
        assert csp and "default-src 'none'" in csp and "script-src 'self'" in csp, path
        assert "http:" not in csp and "https:" not in csp and "*" not in csp, path  # no third-party source anywhere
        assert resp.getheader("X-Frame-Options") == "DENY", path
        assert resp.getheader("Referrer-Policy") == "no-referrer", path
        assert resp.getheader("X-Content-Type-Options") == "nosniff", path
    resp, page = c.get("/no-such-page")
    assert resp.status == 404 and "There is no such page." in page
    resp, _ = Client(web_server.web_port).get("/login")
    cookie = resp.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie


def test_forms_refuse_bad_csrf_bad_input_and_say_why(web_server):
    srv = web_server
    acct = srv.take_account("webcsrf")
    c = Client(srv.web_port)
    # No session, or a wrong token: 403 with a page that says what to do.
    resp, page = c.post("/login", {"name": acct.name, "password": acct.password, "csrf": "forged"})
    assert resp.status == 403 and "Reload the page" in page
    token = c.csrf("/login")
    resp, page = c.post("/login", {"name": acct.name, "password": acct.password, "csrf": token + "x"})
    assert resp.status == 403
    # Missing and oversized fields.
    resp, page = c.post("/login", {"csrf": token, "name": acct.name})
    assert resp.status == 400 and "Password is missing." in page
    resp, page = c.post("/login", {"csrf": token, "name": "a" * 5000, "password": "x"})
    assert resp.status == 400 and "longer than" in page
    # Malformed encoding and a body over the limit.
    resp, page = c.post("/login", {}, raw=b"csrf=%zz&name=%")
    assert resp.status == 400 and "not correctly encoded" in page
    resp, page = c.post("/login", {}, raw=b"a=" + b"x" * 100_000)
    assert resp.status == 413 and "too large" in page
    # The server is still fine, and the right token logs in.
    resp, _ = c.post("/login", {"csrf": token, "name": acct.name, "password": acct.password})
    assert resp.status == 303 and resp.getheader("Location") == "/account"
    resp, page = c.get("/account")
    assert resp.status == 200 and acct.address in page
    # A settings form with the pre-login token (the session id changed at login) is refused.
    resp, page = c.post("/account/delay", {"csrf": token, "delay": "none"})
    assert resp.status == 403
    token = c.csrf("/account")
    resp, page = c.post("/account/delay", {"csrf": token, "delay": "sometimes"})
    assert resp.status == 400 and "Choose one of the delay modes" in page
    assert "delay: defer" in show(srv, acct.name)
    # Unknown name and wrong password read the same: no account list for strangers.
    other = Client(srv.web_port)
    t = other.csrf("/login")
    _, unknown = other.post("/login", {"csrf": t, "name": "nobody-here", "password": "whatever-123"})
    _, wrong = other.post("/login", {"csrf": t, "name": acct.name, "password": "whatever-123"})
    assert "Wrong account name or password." in unknown and "Wrong account name or password." in wrong


def test_sessions_expire(make_server):
    srv = make_server({"web": {"listen": f"{HOST}:0", "session_idle": "2s"}}, name="web-idle")
    acct = srv.take_account("idle")
    c = Client(srv.web_port)
    token = c.csrf("/login")
    resp, _ = c.post("/login", {"csrf": token, "name": acct.name, "password": acct.password})
    assert resp.status == 303
    assert c.get("/account")[0].status == 200
    time.sleep(2.5)
    resp, _ = c.get("/account")
    assert resp.status == 303 and resp.getheader("Location") == "/login"


def test_signups_are_limited_per_hour(make_server):
    srv = make_server({"web": {"listen": f"{HOST}:0", "signup_bits": 8}, "limits": {"signups_per_hour": 1}}, name="web-limit")
    results = []
    for name in ("first", "second"):
        c = Client(srv.web_port)
        token = c.csrf("/signup")
        stamp = srv.cli("hashcash", "mint", "--bits", "8", f"{name}@mail.i2p").stdout.strip()
        resp, page = c.post("/signup", {"csrf": token, "name": name, "password": "limit-password-1",
                                        "password2": "limit-password-1", "stamp": stamp})
        results.append((resp.status, page))
    assert results[0][0] == 303
    assert results[1][0] == 429 and "Too many accounts were created in the last hour" in results[1][1]
    assert srv.cli("account", "show", "second", check=False).returncode != 0


def test_web_login_failures_slow_down_pop3_for_that_account(web_server):
    """SMTP-6: one back-off per account, whichever door the guesses come through."""
    srv = web_server
    acct = srv.take_account("shared")
    c = Client(srv.web_port)
    token = c.csrf("/login")
    for _ in range(3):
        c.post("/login", {"csrf": token, "name": acct.name, "password": "wrong-password-0"})
    started = time.monotonic()
    assert pop3_login(srv, acct.name, acct.password)
    assert time.monotonic() - started >= 0.8  # waited its turn (penalty capped at 1 s here)
