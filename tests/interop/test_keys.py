"""The key book (KEYS-1..3) against real gpg (2.2): keys made by gpg at test time, published on the
account page (HTTP posts with a session) and with `postern keys import`, fetched back with
`gpg --recv-keys` / `--search-keys` over HKP and by a direct WKD fetch + `gpg --import`; a mail
encrypted by gpg to a fetched key goes through submission and POP3 and decrypts.

Every gpg party has its own GNUPGHOME (a temporary folder) and its agent and dirmngr are stopped at
the end of the test (`gpgconf --kill all`).

What is proved:
  - only the user ID with the account's address is published (foreign user IDs and third-party
    certifications are stripped), subkeys kept; HKP get, WKD and the index serve the same key;
  - bad uploads are refused with the reason named, on the page (400) and by the CLI
    (`refused: …`, exit status not 0), and nothing is stored (nor is a published key replaced);
  - listing is opt-in: an unlisted key is found by no interface, neither is a removed key nor the
    key of a deleted account.
"""
from __future__ import annotations

import hashlib
import html
import re
import subprocess
import urllib.parse
import uuid
from pathlib import Path

import pytest

from harness import HOST, Account, PosternServer
from mailutil import body_of, make_message, send_raw, wait_for_count
from webclient import WebClient

GPG_TIMEOUT = 60


# -- gpg ------------------------------------------------------------------------------------------

class GPG:
    """One gpg party: its own GNUPGHOME, no passphrases, batch mode."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.env = {"GNUPGHOME": str(self.home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

    def run(self, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        # --utf8-strings and --display-charset: user IDs given and shown as UTF-8, whatever the locale.
        cmd = ["gpg", "--batch", "--no-tty", "--utf8-strings", "--display-charset", "utf-8",
               "--pinentry-mode", "loopback", "--passphrase", "", *args]
        cp = subprocess.run(cmd, input=input if input is not None else b"", capture_output=True,
                            env=self.env, timeout=GPG_TIMEOUT)
        if check and cp.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {cp.returncode}\nstdout: {cp.stdout!r}\n"
                                 f"stderr: {cp.stderr.decode(errors='replace')}")
        return cp

    def gen(self, uid: str, algo: str = "ed25519", usage: str = "cert,sign", expire: str = "0",
            faked_time: str | None = None) -> str:
        """A new primary key; returns its fingerprint."""
        extra = ["--faked-system-time", faked_time] if faked_time else []
        self.run(*extra, "--yes", "--quick-gen-key", uid, algo, usage, expire)
        return self.fingerprints(uid)[-1]

    def add_subkey(self, fpr: str, algo: str, usage: str, expire: str = "0") -> None:
        self.run("--quick-add-key", fpr, algo, usage, expire)

    def add_uid(self, fpr: str, uid: str) -> None:
        self.run("--quick-add-uid", fpr, uid)

    def certify(self, signer: str, fpr: str) -> None:
        """A third-party certification of all user IDs of fpr by the key signer."""
        self.run("--default-key", signer, "--quick-sign-key", fpr)

    def fingerprints(self, who: str | None = None) -> list[str]:
        cp = self.run("--with-colons", "--list-keys", *([who] if who else []), check=False)
        out, fprs, want = cp.stdout.decode(), [], False
        for line in out.splitlines():
            f = line.split(":")
            if f[0] == "pub":
                want = True
            elif f[0] == "fpr" and want:
                fprs.append(f[9])
                want = False
            elif f[0] == "sub":
                want = False
        return fprs

    def export(self, *who: str, armor: bool = False) -> bytes:
        return self.run(*(["--armor"] if armor else []), "--export", *who).stdout

    def export_secret(self, who: str, armor: bool = False) -> bytes:
        return self.run(*(["--armor"] if armor else []), "--export-secret-keys", who).stdout

    def import_(self, data: bytes) -> subprocess.CompletedProcess:
        return self.run("--status-fd", "1", "--import", input=data)

    def describe(self) -> dict[str, dict]:
        """fpr -> {"uids": [...], "subkeys": [fpr, ...], "signers": {key ids of every signature},
        "keyid", "validity", "created", "expires"}, from --list-sigs --with-colons."""
        out = self.run("--with-colons", "--fixed-list-mode", "--list-sigs").stdout.decode()
        keys: dict[str, dict] = {}
        current = None
        expect_fpr = None
        for line in out.splitlines():
            f = line.split(":")
            if f[0] == "pub":
                current = {"uids": [], "subkeys": [], "signers": set(), "keyid": f[4], "validity": f[1],
                           "created": f[5], "expires": f[6]}
                expect_fpr = "pub"
            elif f[0] == "sub":
                expect_fpr = "sub"
            elif f[0] == "fpr" and expect_fpr:
                if expect_fpr == "pub":
                    keys[f[9]] = current
                else:
                    current["subkeys"].append(f[9])
                expect_fpr = None
            elif f[0] == "uid":
                current["uids"].append(unescape_colons(f[9]))
            elif f[0] == "sig":
                current["signers"].add(f[4])
        return keys

    def recv_keys(self, port: int, *ids: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("--status-fd", "1", "--keyserver", f"hkp://{HOST}:{port}", "--recv-keys", *ids, check=check)

    def search_keys(self, port: int, query: str) -> str:
        """The listing --search-keys prints on standard output ("(1)\tUSER ID\n\t  255 bit EDDSA key
        KEYID, created: …"); in batch mode it then fails to read a choice. "" when nothing was found."""
        cp = self.run("--keyserver", f"hkp://{HOST}:{port}", "--search-keys", query, check=False)
        listing, errors = cp.stdout.decode(errors="replace"), cp.stderr.decode(errors="replace")
        if not listing:
            assert "not found on keyserver" in errors, errors
        return listing

    def wkd_hash(self, address: str) -> str:
        """gpg's own WKD name of address's local part (--with-wkd-hash)."""
        out = self.run("--with-wkd-hash", "--list-keys", address).stdout.decode()
        m = re.search(r"^\s+([ybndrfg8ejkmcpqxot1uwisza345h769]{32})@" + re.escape(address.split("@")[1]) + r"\s*$",
                      out, re.M)
        assert m, out
        return m.group(1)

    def kill(self) -> None:
        subprocess.run(["gpgconf", "--kill", "all"], env=self.env, capture_output=True, timeout=30)


def unescape_colons(s: str) -> str:
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), s)


@pytest.fixture
def gpg(tmp_path, tool):
    """Factory: gpg("alice") -> a GPG party in its own GNUPGHOME; all stopped after the test."""
    tool("gpg")
    tool("gpgconf")
    tool("dirmngr")
    parties: list[GPG] = []

    def make(name: str) -> GPG:
        party = GPG(tmp_path / f"gnupg-{name}")
        parties.append(party)
        return party

    yield make
    for party in parties:
        party.kill()


ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


def wkd_hash(local: str) -> str:
    digest = hashlib.sha1(local.lower().encode()).digest()
    bits = "".join(f"{b:08b}" for b in digest)
    return "".join(ZBASE32[int(bits[i:i + 5].ljust(5, "0"), 2)] for i in range(0, len(bits), 5))


def test_wkd_hash_of_the_draft():
    # The example of draft-koch-openpgp-webkey-service 3.1.
    assert wkd_hash("Joe.Doe") == "iy9q119eutrkn8s1mk4r39qejnbu3n5q"


# -- HTTP -----------------------------------------------------------------------------------------

class Web(WebClient):
    """Responses as bytes (keys are binary); `text` for pages."""

    def get(self, path: str):
        return self.request("GET", path)

    def text(self, path: str) -> tuple[int, str]:
        resp, data = self.get(path)
        return resp.status, html.unescape(data.decode("utf-8", "replace"))

    def post(self, path: str, fields: dict):
        return self.post_form(path, fields)


def login(srv: PosternServer, acct: Account) -> Web:
    web = Web(srv.web_port)
    token = web.csrf("/login")
    resp, _ = web.post("/login", {"csrf": token, "name": acct.name, "password": acct.password})
    assert resp.status == 303 and resp.getheader("Location") == "/account", resp.status
    return web


def upload(web: Web, data: bytes, *, paste: bool = False):
    """The account page's key form: the file input, or the text area (with an empty file input).
    Returns (status, Location, page text)."""
    token = web.csrf("/account")
    if paste:
        # A browser sends a text area's lines with CRLF, and the empty file input as an empty part.
        text = data.decode().replace("\r\n", "\n").replace("\n", "\r\n")
        resp, body = web.post_multipart("/account/key", {"csrf": token, "armored": text}, {"keyfile": ("", b"")})
    else:
        resp, body = web.post_multipart("/account/key", {"csrf": token, "armored": ""}, {"keyfile": ("key.gpg", data)})
    return resp.status, resp.getheader("Location"), html.unescape(body.decode("utf-8", "replace"))


def set_listing(web: Web, on: bool) -> None:
    """The "List my OpenPGP key" checkbox, keeping the HTML option as it is."""
    _, page = web.text("/account")
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    fields = {"csrf": token}
    if re.search(r'name="html_sanitise" value="on" checked', page):
        fields["html_sanitise"] = "on"
    if on:
        fields["key_listing"] = "on"
    resp, _ = web.post("/account/options", fields)
    assert resp.status == 303
    _, page = web.text("/account")
    assert bool(re.search(r'name="key_listing" value="on" checked', page)) is on
    assert "Privacy options saved" in page


def grouped(fpr: str) -> str:
    return " ".join(fpr[i:i + 4] for i in range(0, len(fpr), 4))


# -- what every interface finds ---------------------------------------------------------------------

def hkp(srv: PosternServer, op: str, search: str, mr: bool = True):
    q = urllib.parse.urlencode({"op": op, "search": search, **({"options": "mr"} if mr else {})})
    return Web(srv.web_port).get(f"/pks/lookup?{q}")


def wkd(srv: PosternServer, local: str, with_l: bool = True):
    path = f"/.well-known/openpgpkey/hu/{wkd_hash(local)}" + (f"?l={urllib.parse.quote(local)}" if with_l else "")
    return Web(srv.web_port).get(path)


def sightings(srv: PosternServer, acct: Account, fpr: str, keyid: str) -> dict[str, bool]:
    """Whether each interface shows the key: HKP get/index/vindex by address, fingerprint and key id,
    WKD with and without ?l=, the search page by address and fingerprint."""
    seen = {}
    for name, search in (("address", acct.address), ("fingerprint", "0x" + fpr), ("keyid", "0x" + keyid),
                         ("short keyid", keyid[-8:])):
        resp, data = hkp(srv, "get", search)
        seen[f"hkp get {name}"] = resp.status == 200 and b"BEGIN PGP PUBLIC KEY BLOCK" in data
        if resp.status != 200:
            assert resp.status == 404, (name, resp.status)
    for op in ("index", "vindex"):
        resp, data = hkp(srv, op, acct.address)
        seen[f"hkp {op}"] = resp.status == 200 and fpr.encode() in data
        if resp.status != 200:
            assert resp.status == 404, (op, resp.status)
    resp, data = hkp(srv, "index", acct.address, mr=False)
    seen["hkp index html"] = resp.status == 200 and grouped(fpr).encode() in data
    for with_l in (True, False):
        resp, data = wkd(srv, acct.name, with_l)
        seen[f"wkd l={with_l}"] = resp.status == 200 and len(data) > 0
        if resp.status != 200:
            assert resp.status == 404, resp.status
    for name, search in (("address", acct.address), ("fingerprint", fpr)):
        status, page = Web(srv.web_port).text("/keys?" + urllib.parse.urlencode({"search": search}))
        assert status == 200
        found = grouped(fpr) in page
        assert found or 'id="no-keys"' in page
        seen[f"search page {name}"] = found
    return seen


def assert_found_nowhere(srv, acct, fpr, keyid, when: str):
    seen = sightings(srv, acct, fpr, keyid)
    assert not any(seen.values()), f"{when}: found by {[k for k, v in seen.items() if v]}"


def assert_found_everywhere(srv, acct, fpr, keyid, when: str):
    seen = sightings(srv, acct, fpr, keyid)
    assert all(seen.values()), f"{when}: not found by {[k for k, v in seen.items() if not v]}"


def keys_list(srv: PosternServer) -> str:
    return srv.cli("keys", "list").stdout


def key_ids(party: GPG, fpr: str) -> tuple[str, list[str]]:
    """The primary key id and the subkey fingerprints of fpr in party's keyring."""
    d = party.describe()[fpr]
    return d["keyid"], d["subkeys"]


# -- the server -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(make_server):
    return make_server(name="keys")


# -- tests ------------------------------------------------------------------------------------------

def test_web_upload_of_an_ed25519_key_fetched_by_hkp_search_and_wkd(server, gpg):
    """Ed25519/Cv25519 with two foreign user IDs and a third-party certification, uploaded as a
    binary file on the account page: gpg --recv-keys, --search-keys and WKD + --import all get
    exactly the key with the account's user ID only, its subkey, and self-signatures only."""
    srv = server
    alice, bob = srv.take_account("alice"), srv.take_account("bob")
    owner = gpg("owner")
    uid = f"Älice Ünïcode: the 100% real one <{alice.address}>"  # UTF-8, ":" and "%" in the index
    fpr = owner.gen(uid)
    owner.add_subkey(fpr, "cv25519", "encr")
    owner.add_uid(fpr, "Alice Real Name <alice@example.org>")
    owner.add_uid(fpr, f"Alice as Bob <{bob.address}>")
    friend_fpr = owner.gen("A Friend <friend@example.org>")
    owner.certify(friend_fpr, fpr)
    keyid, subkeys = key_ids(owner, fpr)
    friend_keyid = owner.describe()[friend_fpr]["keyid"]
    assert friend_keyid in owner.describe()[fpr]["signers"]  # the upload does carry it
    assert len(owner.describe()[fpr]["uids"]) == 3

    web = login(srv, alice)
    status, location, page = upload(web, owner.export(fpr))
    assert status == 303 and location == "/account#key", page
    _, page = web.text("/account")
    assert f"Key {grouped(fpr)} published for {uid}." in page
    assert "Not listed" in page
    assert re.search(rf"^{re.escape(alice.name)}\s+{fpr}\s+not listed\s+{re.escape(uid)}$", keys_list(srv), re.M)
    # Not listed yet: nobody finds it.
    assert_found_nowhere(srv, alice, fpr, keyid, "before listing")

    set_listing(web, True)
    _, page = web.text("/account")
    assert "Listed in the key book." in page
    assert_found_everywhere(srv, alice, fpr, keyid, "after listing")

    # gpg --recv-keys by fingerprint over HKP, into an empty keyring.
    fetcher = gpg("fetcher")
    cp = fetcher.recv_keys(srv.web_port, fpr)
    assert f"[GNUPG:] IMPORT_OK 1 {fpr}" in cp.stdout.decode(), cp.stdout
    got = fetcher.describe()
    assert list(got) == [fpr]
    assert got[fpr]["uids"] == [uid]
    assert got[fpr]["subkeys"] == subkeys
    assert got[fpr]["signers"] == {keyid}, "only self-signatures"
    hkp_binary = fetcher.export(fpr)

    # gpg --search-keys by address: the listing names the key and only the account's user ID.
    listing = fetcher.search_keys(srv.web_port, alice.address)
    assert re.search(r"\(1\)\s+" + re.escape(uid) + r"\n", listing), listing
    assert keyid in listing.upper().replace(" ", ""), listing
    assert "example.org" not in listing and bob.address not in listing
    assert "(2)" not in listing

    # WKD: gpg's own hash of the address is the one served; the direct URL gives the binary key.
    assert owner.wkd_hash(alice.address) == wkd_hash(alice.name)
    resp, data = wkd(srv, alice.name)
    assert resp.status == 200 and resp.getheader("Content-Type") == "application/octet-stream"
    assert data[:1] != b"-", "WKD serves the binary key"
    wkd_party = gpg("wkd")
    cp = wkd_party.import_(data)
    assert f"[GNUPG:] IMPORT_OK 1 {fpr}" in cp.stdout.decode()
    got = wkd_party.describe()
    assert list(got) == [fpr] and got[fpr]["uids"] == [uid] and got[fpr]["subkeys"] == subkeys
    assert got[fpr]["signers"] == {keyid}
    # The same key by every interface: WKD's bytes, HKP's armour, gpg's re-export of the HKP key.
    resp, armored = hkp(srv, "get", "0x" + fpr)
    assert resp.getheader("Content-Type") == "application/pgp-keys"
    assert wkd_party.run("--dearmor", input=armored).stdout == data
    assert hkp_binary == wkd_party.export(fpr)
    # The machine-readable index: one key, one user ID.
    resp, index = hkp(srv, "index", alice.address)
    lines = index.decode().splitlines()
    assert lines[0] == "info:1:1"
    assert lines[1].startswith(f"pub:{fpr}:22:255:") and lines[2:] == [f"uid:%C3%84lice %C3%9Cn%C3%AFcode%3A the 100%25 real one <{alice.address}>:::"]

    # HKP submission is refused; the WKD policy file is there.
    resp, data = Web(srv.web_port).request("POST", "/pks/add", b"keytext=x", {"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 403 and b"account page" in data
    cp = owner.run("--keyserver", f"hkp://{HOST}:{srv.web_port}", "--send-keys", fpr, check=False)
    assert cp.returncode != 0
    resp, _ = Web(srv.web_port).get("/.well-known/openpgpkey/policy")
    assert resp.status == 200


def test_cli_import_of_an_rsa_key_with_subkeys(server, gpg):
    """RSA 2048 with a signing and an encryption subkey, armoured, through `postern keys import`
    (file and standard input); listed with `postern account set`; fetched by key id and by a
    subkey's key id."""
    srv = server
    carol = srv.take_account("carol")
    owner = gpg("owner")
    fpr = owner.gen(f"Carol <{carol.address}>", algo="rsa2048", usage="cert", expire="2y")
    owner.add_subkey(fpr, "rsa2048", "sign")
    owner.add_subkey(fpr, "rsa2048", "encr")
    owner.add_uid(fpr, "Carol at home <carol@example.net>")
    keyid, subkeys = key_ids(owner, fpr)
    assert len(subkeys) == 2
    key_file = owner.home.parent / "carol.asc"
    key_file.write_bytes(owner.export(fpr, armor=True))

    out = srv.cli("keys", "import", carol.name, str(key_file)).stdout
    assert out.strip() == (f"published {fpr} for Carol <{carol.address}> "
                           f"(not listed: postern account set {carol.name} key_listing=on)")
    assert_found_nowhere(srv, carol, fpr, keyid, "imported, not listed")
    fetcher = gpg("fetcher")
    assert fetcher.recv_keys(srv.web_port, fpr, check=False).returncode != 0
    assert fetcher.describe() == {}

    srv.cli("account", "set", carol.name, "key_listing=on")
    assert "key_listing: on" in srv.cli("account", "show", carol.name).stdout
    assert re.search(rf"^{re.escape(carol.name)}\s+{fpr}\s+listed\s+Carol <{re.escape(carol.address)}>$", keys_list(srv), re.M)
    # Standard input, listed now: no hint.
    out = srv.cli("keys", "import", carol.name, "-", input=key_file.read_text()).stdout
    assert out.strip() == f"published {fpr} for Carol <{carol.address}>"
    assert_found_everywhere(srv, carol, fpr, keyid, "listed")

    # By the primary's long key id, and by the encryption subkey's.
    cp = fetcher.recv_keys(srv.web_port, "0x" + keyid)
    assert f"IMPORT_OK 1 {fpr}" in cp.stdout.decode()
    fetcher.run("--yes", "--delete-keys", fpr)
    cp = fetcher.recv_keys(srv.web_port, "0x" + subkeys[1][-16:])
    assert f"IMPORT_OK 1 {fpr}" in cp.stdout.decode()
    got = fetcher.describe()[fpr]
    assert got["uids"] == [f"Carol <{carol.address}>"]
    assert got["subkeys"] == subkeys
    listing = fetcher.search_keys(srv.web_port, carol.address)
    assert re.search(r"\(1\)\s+Carol <" + re.escape(carol.address) + ">", listing), listing
    assert "2048 bit RSA key" in listing and "example.net" not in listing
    # The expiry gpg set is the one the index states, and gpg shows it in the listing.
    mine = owner.describe()[fpr]
    assert mine["expires"] and got["expires"] == mine["expires"]
    resp, index = hkp(srv, "index", carol.address)
    assert index.decode().splitlines()[1] == f"pub:{fpr}:1:2048:{mine['created']}:{mine['expires']}:"
    assert "expires:" in listing


def test_mail_encrypted_to_a_fetched_key_decrypts_at_the_recipient(server, gpg):
    """Dave publishes on the page, Erin with the CLI; Erin fetches Dave's key over HKP, signs and
    encrypts to it with gpg and submits by SMTP; Dave fetches it over POP3, gets Erin's key from
    WKD and decrypts with his secret key: the text and a good signature by Erin."""
    srv = server
    dave, erin = srv.take_account("dave"), srv.take_account("erin")
    dave_gpg, erin_gpg = gpg("dave"), gpg("erin")
    dave_fpr = dave_gpg.gen(dave.address)
    dave_gpg.add_subkey(dave_fpr, "cv25519", "encr")
    erin_fpr = erin_gpg.gen(erin.address)
    erin_gpg.add_subkey(erin_fpr, "cv25519", "encr")

    web = login(srv, dave)
    status, _, page = upload(web, dave_gpg.export(dave_fpr, armor=True), paste=True)
    assert status == 303, page
    set_listing(web, True)
    srv.cli("keys", "import", erin.name, "-", input=erin_gpg.export(erin_fpr, armor=True).decode())
    srv.cli("account", "set", erin.name, "key_listing=on")

    # Erin: fetch Dave's key by address, the way a user would (search, then receive).
    listing = erin_gpg.search_keys(srv.web_port, dave.address)
    assert dave.address in listing, listing
    erin_gpg.recv_keys(srv.web_port, dave_fpr)
    secret_text = f"Meet at the usual place. {uuid.uuid4().hex}\nÜmlauts survive too.\n"
    cipher = erin_gpg.run("--armor", "--trust-model", "always", "--local-user", erin_fpr, "--recipient", dave.address,
                          "--sign", "--encrypt", input=secret_text.encode()).stdout
    assert b"BEGIN PGP MESSAGE" in cipher and secret_text.encode() not in cipher
    message = make_message(erin.address, dave.address, "encrypted", cipher)
    send_raw(srv, erin, [dave.address], message)

    # Dave: POP3, Erin's key by WKD, decrypt.
    [raw] = wait_for_count(srv, dave, 1)
    resp, key = wkd(srv, erin.name)
    assert resp.status == 200
    dave_gpg.import_(key)
    cp = dave_gpg.run("--status-fd", "2", "--trust-model", "always", "--decrypt", input=body_of(raw))
    status = cp.stderr.decode()
    assert cp.stdout.decode() == secret_text
    assert "[GNUPG:] DECRYPTION_OKAY" in status
    assert re.search(rf"^\[GNUPG:\] VALIDSIG {erin_fpr} .* {erin_fpr}$", status, re.M), status
    assert "[GNUPG:] GOODSIG" in status


# -- refusals ---------------------------------------------------------------------------------------

def _flip_checksum(armored: bytes) -> bytes:
    lines = armored.split(b"\n")
    i = next(i for i, line in enumerate(lines) if re.fullmatch(rb"=[A-Za-z0-9+/]{4}\r?", line))
    crc = lines[i]
    lines[i] = crc[:2] + (b"B" if crc[2:3] != b"B" else b"C") + crc[3:]
    return b"\n".join(lines)


def _bad_inputs(party: GPG, acct: Account) -> list[tuple[str, bytes, str]]:
    """(case, upload, what the refusal must say) for every kind of bad input, made with gpg."""
    fpr = party.gen(acct.address)
    party.add_subkey(fpr, "cv25519", "encr")
    binary = party.export(fpr)
    armored = party.export(fpr, armor=True)
    expired = party.gen(acct.address, expire="1y", faked_time="20200101T000000!")
    other = party.gen("Somebody Else <else@example.org>")
    half = armored.split(b"\n")
    return [
        ("expired", party.export(expired, armor=True), "The key expired (at "),
        ("secret armoured", party.export_secret(fpr, armor=True), "This is a secret key: never upload it"),
        ("secret binary", party.export_secret(fpr), "This is a secret key: never upload it"),
        ("wrong checksum", _flip_checksum(armored), "The ASCII armour's checksum is wrong"),
        ("truncated in the last packet", binary[:-5], "The key is cut short: packet"),
        ("truncated in the key packet", binary[:20], "The key is cut short: packet 1 (public key) claims"),
        ("armour cut short", b"\n".join(half[:len(half) // 2]) + b"\n", "the text was cut short"),
        ("encrypted message", party.run("--armor", "--trust-model", "always", "--recipient", fpr, "--encrypt",
                                        input=b"hello").stdout, "This is a PGP message"),
        ("signature", party.run("--local-user", fpr, "--detach-sign", input=b"hello").stdout,
         "This is not a public key: it starts with a signature packet"),
        ("too large", b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n" + b"QUFB\n" * 14000 + b"-----END PGP PUBLIC KEY BLOCK-----\n",
         "The key is too large ("),
        ("plain text", b"Hello, this is my key: trust me.\n", "This is not an OpenPGP key"),
        ("empty armour", b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n", "Nothing was uploaded"),
        ("no user ID with the address", party.export(other, armor=True),
         f"The key has no user ID with your address {acct.address}"),
        ("two keys", party.export(fpr, other, armor=True), "more than one key"),
    ]


def test_bad_uploads_are_refused_with_the_reason_and_nothing_is_stored(server, gpg):
    """Every bad input, on the page (file and pasted) and with the CLI: a refusal naming the problem,
    and no key for the account anywhere, although it is listed."""
    srv = server
    frank = srv.take_account("frank")
    srv.cli("account", "set", frank.name, "key_listing=on")
    party = gpg("frank")
    cases = _bad_inputs(party, frank)
    web = login(srv, frank)
    failures = []
    for case, data, reason in cases:
        status, location, page = upload(web, data)
        if status != 400 or reason not in page:
            failures.append(f"page, file, {case}: {status} {location} {re.sub(r'<[^>]+>', ' ', page)[-600:]!r}")
        if b"\0" not in data and data.isascii():
            status, _, page = upload(web, data, paste=True)
            if status != 400 or reason not in page:
                failures.append(f"page, pasted, {case}: {status}")
        if data.isascii():
            cp = srv.cli("keys", "import", frank.name, "-", input=data.decode(), check=False)
        else:  # the harness's standard input is text: binary goes in a file
            path = party.home.parent / "upload.bin"
            path.write_bytes(data)
            cp = srv.cli("keys", "import", frank.name, str(path), check=False)
        if cp.returncode == 0 or f"refused: " not in cp.stderr or reason not in cp.stderr:
            failures.append(f"cli, {case}: exit {cp.returncode}: {cp.stdout} {cp.stderr}")
    assert not failures, "\n".join(failures)
    assert frank.name not in keys_list(srv)
    _, page = web.text("/account")
    assert "No key published." in page
    resp, _ = hkp(srv, "get", frank.address)
    assert resp.status == 404
    resp, _ = wkd(srv, frank.name)
    assert resp.status == 404


def test_an_expired_key_extended_as_the_refusal_says_is_published(server, gpg):
    """The refusal of an expired key says to run gpg --quick-set-expire FINGERPRINT 2y: doing that
    makes the same key publishable, and the fetched key is valid again."""
    srv = server
    kate = srv.take_account("kate")
    srv.cli("account", "set", kate.name, "key_listing=on")
    party = gpg("kate")
    fpr = party.gen(kate.address, expire="1y", faked_time="20200101T000000!")
    party.run("--faked-system-time", "20200101T000100!", "--quick-add-key", fpr, "cv25519", "encr", "0")
    assert party.describe()[fpr]["validity"] == "e"
    web = login(srv, kate)
    status, _, page = upload(web, party.export(fpr, armor=True))
    assert status == 400 and f"Extend it with gpg --quick-set-expire FINGERPRINT 2y" in page
    cp = srv.cli("keys", "import", kate.name, "-", input=party.export(fpr, armor=True).decode(), check=False)
    assert cp.returncode != 0 and "refused: The key expired" in cp.stderr

    party.run("--quick-set-expire", fpr, "2y")
    assert party.describe()[fpr]["validity"] != "e"
    status, _, page = upload(web, party.export(fpr, armor=True))
    assert status == 303, page
    fetcher = gpg("fetcher")
    fetcher.recv_keys(srv.web_port, fpr)
    got = fetcher.describe()[fpr]
    assert got["validity"] != "e" and got["expires"] == party.describe()[fpr]["expires"]
    assert got["uids"] == [kate.address]


def test_a_refused_upload_leaves_the_published_key_alone(server, gpg):
    srv = server
    grace = srv.take_account("grace")
    party = gpg("grace")
    fpr = party.gen(grace.address)
    srv.cli("keys", "import", grace.name, "-", input=party.export(fpr, armor=True).decode())
    srv.cli("account", "set", grace.name, "key_listing=on")
    _, before = hkp(srv, "get", grace.address)
    web = login(srv, grace)
    for case, data, reason in _bad_inputs(party, grace):
        status, _, page = upload(web, data)
        assert status == 400 and reason in page, case
    resp, after = hkp(srv, "get", grace.address)
    assert resp.status == 200 and after == before
    assert re.search(rf"^{re.escape(grace.name)}\s+{fpr}\s+listed", keys_list(srv), re.M)


# -- listing, removal, deletion ----------------------------------------------------------------------

def test_an_unlisted_key_is_found_by_no_interface(server, gpg):
    """Listing is opt-in and can be taken back, on the page and with the CLI."""
    srv = server
    heidi = srv.take_account("heidi")
    party = gpg("heidi")
    fpr = party.gen(heidi.address)
    party.add_subkey(fpr, "cv25519", "encr")
    keyid, _ = key_ids(party, fpr)
    web = login(srv, heidi)
    assert upload(web, party.export(fpr, armor=True), paste=True)[0] == 303
    assert "key_listing: off" in srv.cli("account", "show", heidi.name).stdout

    fetcher = gpg("fetcher")
    assert_found_nowhere(srv, heidi, fpr, keyid, "never listed")
    assert fetcher.recv_keys(srv.web_port, fpr, check=False).returncode != 0
    assert heidi.address not in fetcher.search_keys(srv.web_port, heidi.address)
    assert fetcher.describe() == {}

    set_listing(web, True)
    assert_found_everywhere(srv, heidi, fpr, keyid, "listed on the page")
    set_listing(web, False)
    assert_found_nowhere(srv, heidi, fpr, keyid, "unlisted on the page")
    assert fetcher.recv_keys(srv.web_port, fpr, check=False).returncode != 0
    srv.cli("account", "set", heidi.name, "key_listing=on")
    assert_found_everywhere(srv, heidi, fpr, keyid, "listed with the CLI")
    assert fetcher.recv_keys(srv.web_port, fpr).returncode == 0
    srv.cli("account", "set", heidi.name, "key_listing=off")
    assert_found_nowhere(srv, heidi, fpr, keyid, "unlisted with the CLI")
    assert heidi.address not in fetcher.search_keys(srv.web_port, heidi.address)


def test_removing_the_key_or_the_account_removes_it_everywhere(server, gpg):
    srv = server
    ivan = srv.take_account("ivan")
    party = gpg("ivan")
    fpr = party.gen(ivan.address)
    party.add_subkey(fpr, "cv25519", "encr")
    keyid, _ = key_ids(party, fpr)
    armored = party.export(fpr, armor=True)
    fetcher = gpg("fetcher")

    # On the page.
    web = login(srv, ivan)
    assert upload(web, armored)[0] == 303
    set_listing(web, True)
    assert_found_everywhere(srv, ivan, fpr, keyid, "published")
    resp, _ = web.post("/account/key/remove", {"csrf": web.csrf("/account")})
    assert resp.status == 303
    _, page = web.text("/account")
    assert "Key removed: nobody can look it up any more." in page and "No key published." in page
    assert_found_nowhere(srv, ivan, fpr, keyid, "removed on the page")
    assert fetcher.recv_keys(srv.web_port, fpr, check=False).returncode != 0
    assert ivan.name not in keys_list(srv)

    # With the CLI.
    srv.cli("keys", "import", ivan.name, "-", input=armored.decode())
    assert_found_everywhere(srv, ivan, fpr, keyid, "imported again")
    assert srv.cli("keys", "remove", ivan.name).stdout.strip() == f"removed the key of {ivan.name}"
    assert_found_nowhere(srv, ivan, fpr, keyid, "removed with the CLI")
    assert srv.cli("keys", "remove", ivan.name).stdout.strip() == f"{ivan.name} had no key"

    # Deleting the account on the page.
    assert upload(web, armored)[0] == 303
    assert_found_everywhere(srv, ivan, fpr, keyid, "published again")
    token = web.csrf("/account/delete")
    resp, _ = web.post("/account/delete", {"csrf": token, "password": ivan.password, "confirm": "yes"})
    assert resp.status == 200
    assert_found_nowhere(srv, ivan, fpr, keyid, "account deleted on the page")
    assert fetcher.recv_keys(srv.web_port, fpr, check=False).returncode != 0
    assert ivan.name not in keys_list(srv)

    # Deleting the account with the CLI.
    judy = srv.take_account("judy")
    fpr2 = party.gen(judy.address)
    keyid2, _ = key_ids(party, fpr2)
    srv.cli("keys", "import", judy.name, "-", input=party.export(fpr2, armor=True).decode())
    srv.cli("account", "set", judy.name, "key_listing=on")
    assert_found_everywhere(srv, judy, fpr2, keyid2, "published")
    srv.cli("account", "delete", judy.name)
    assert_found_nowhere(srv, judy, fpr2, keyid2, "account deleted with the CLI")
    assert judy.name not in keys_list(srv)
