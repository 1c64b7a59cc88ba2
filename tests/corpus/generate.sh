#!/usr/bin/env bash
# generate.sh -- (re)build the corpus of real client messages for Postern's privacy sanitiser
# (issue 3; SPEC section 6, PRIV-1..3). The corpus is what tests/privacy/test_corpus.py submits.
#
#   tests/corpus/generate.sh              install the clients if missing, regenerate messages/
#   tests/corpus/generate.sh --no-install use the clients already installed
#
# What it does:
#   1. Installs the mail programs from Debian (apt-get --no-install-recommends): mutt, neomutt,
#      s-nail, mailutils (`mail`), git + git-email (git send-email) with msmtp as its sendmail,
#      curl, swaks, gnupg, tmux; the Python client is Debian's /usr/bin/python3 and its email
#      package. Already-installed packages are skipped; `apt-get update` runs only when needed.
#   2. Makes a throwaway GNUPGHOME with passphrase-less test keys for alice@mail.i2p and
#      bob@mail.i2p. The keys are kept in gpg/ (pubkey.asc: both public keys; seckey.asc: both
#      secret keys, TEST ONLY) and re-imported on later runs, so signatures in the corpus and the
#      keys in the repository always match.
#   3. Starts tests/corpus/smtp-capture.py (a copy of the shared capture server that also takes
#      AUTH PLAIN/LOGIN with any credentials) on a free loopback port, and has every client submit
#      to it the way a user would configure it for Postern: AUTH as alice, no TLS, envelope
#      sender alice@mail.i2p, recipients bob@mail.i2p (and carol@mail.i2p in some).
#      Each client runs with its own host name (a private UTS namespace via `unshare -u`, so the
#      client's own HELO / Message-ID / Content-ID logic picks it up) and its own TZ, so the
#      corpus carries the leaks real clients produce: HELO names, host names in Message-IDs,
#      local time zones in Date, User-Agent / X-Mailer, client-specific MIME boundaries,
#      Content-Disposition file dates.
#      PGP/MIME: mutt and neomutt sign and encrypt themselves (gpgme, crypt_autosign /
#      crypt_autoencrypt). Their batch mode (-H/-s without a terminal) does no crypto at all, so
#      those messages are sent from the real compose screen: the MUA runs under tmux and the
#      script presses `y` (send). The Python client adds RFC 3156 messages built by hand around
#      `gpg --detach-sign --armor` and `gpg --encrypt --sign --armor`.
#   4. Copies each captured message byte for byte (CRLF, as received after DATA) to
#      messages/<client>-<what>.eml and writes messages/index.json (build_index.py): client and
#      version, what the message covers, and the leak markers the sanitiser must remove.
#
# Idempotent: messages/ is replaced as a whole (only when every client succeeded); gpg/ is
# created once and reused. Dates, Message-IDs and boundaries differ on every run, as they would.
# Needs root for apt-get and `unshare -u`; without unshare the clients see the machine's own
# host name (the index then records that name instead).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
MSGS=$HERE/messages
GPGDIR=$HERE/gpg
PY=/usr/bin/python3
PKGS=(mutt neomutt s-nail mailutils msmtp git git-email libmailtools-perl swaks curl gnupg tmux python3 util-linux)
INSTALL=1
[ "${1:-}" = --no-install ] && INSTALL=0

log() { echo "generate: $*" >&2; }
die() { log "$*"; exit 1; }

# -- 1. clients -----------------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
install_clients() {
  local missing=() p pol=""
  for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && { log "clients already installed"; return; }
  [ "$(id -u)" = 0 ] || die "not root: install ${missing[*]} yourself or run as root"
  export DEBIAN_FRONTEND=noninteractive
  if [ ! -e /usr/sbin/policy-rc.d ]; then   # no package services started during installation
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; pol=1
  fi
  log "apt-get install ${missing[*]}"
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$WORK/apt.log" 2>&1; then
    log "install failed; apt-get update and retry"
    apt-get update -q >>"$WORK/apt.log" 2>&1 || true
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$WORK/apt.log" 2>&1 ||
      { [ -z "$pol" ] || rm -f /usr/sbin/policy-rc.d; tail -n 20 "$WORK/apt.log" >&2; die "apt-get install failed"; }
  fi
  [ -z "$pol" ] || rm -f /usr/sbin/policy-rc.d
}

WORK=$(mktemp -d /tmp/postern-corpus.XXXXXX)
TMUX_SOCK=postern-corpus-$$
cleanup() {
  tmux -L "$TMUX_SOCK" kill-server >/dev/null 2>&1 || true
  if [ -f "$WORK/capture.pid" ]; then kill "$(cat "$WORK/capture.pid")" 2>/dev/null || true; fi
  GNUPGHOME=$WORK/gnupg gpgconf --kill all >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

[ $INSTALL = 1 ] && install_clients
for b in mutt neomutt s-nail mail msmtp git swaks curl gpg tmux unshare "$PY"; do
  command -v "$b" >/dev/null || die "$b not found (run without --no-install)"
done
gse_help=$(git send-email -h 2>&1 || true)
perl -MMail::Address -e 1 2>/dev/null && grep -q "git send-email" <<<"$gse_help" ||
  die "git send-email does not run (git-email, libmailtools-perl)"

mkdir -p "$WORK"/{cap,out,files,home,tmp,bin,logs,mutt,neomutt}
export HOME=$WORK/home LANG=C.UTF-8 LC_ALL=C.UTF-8 GNUPGHOME=$WORK/gnupg
unset MAIL MAILRC NEOMUTT MUTT EMAIL REPLYTO || true

# Each client's identity on its "own machine": host name and time zone.
declare -A HOST TZN VER STRINGS DEB
HOST=([mutt]=alice-thinkpad.home.lan [neomutt]=alice-desktop.fritz.box [s-nail]=alice-x220.lan
      [mailutils]=raspberrypi.local [git-send-email]=devbox-alice.corp.example [curl]=alice-mbp.local
      [swaks]=swaks-runner.internal [python-email]=alice-ws42.office.lan)
TZN=([mutt]=America/New_York [neomutt]=Europe/Berlin [s-nail]=Asia/Tokyo [mailutils]=Australia/Sydney
     [git-send-email]=America/Los_Angeles [curl]=Europe/London [swaks]=America/Sao_Paulo
     [python-email]=Asia/Kolkata)
debver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }
VER[mutt]=$(mutt -v | sed -n '1s/^Mutt \([^ ]*\).*/\1/p')
VER[neomutt]=$(neomutt -v | sed -n '1s/^NeoMutt \([^ ]*\).*/\1/p')
VER[s-nail]=$(s-nail -V | sed -n '1s/^s-nail v\([^ ,]*\).*/\1/p')
VER[mailutils]=$(mail --version | sed -n '1s/.*Mailutils) \([^ ]*\).*/\1/p')
VER[git-send-email]=$(git --version | awk '{print $3}')
VER[curl]=$(curl --version | awk 'NR==1{print $2}')
VER[swaks]=$(swaks --version | sed -n '1s/^swaks version \([^ ]*\).*/\1/p')
VER[python-email]=$("$PY" -c 'import platform; print(platform.python_version())')
MSMTP_VER=$(msmtp --version | awk 'NR==1{print $3}')
# Strings that name the client: none may survive in a sanitised header (| separated).
STRINGS=([mutt]="Mutt/${VER[mutt]}|Mutt|${VER[mutt]}" [neomutt]="NeoMutt/${VER[neomutt]}|NeoMutt|${VER[neomutt]}"
         [s-nail]="s-nail v${VER[s-nail]}|s-nail|${VER[s-nail]}" [mailutils]="GNU Mailutils ${VER[mailutils]}|Mailutils"
         [git-send-email]="git-send-email ${VER[git-send-email]}|git-send-email|${VER[git-send-email]}|msmtp"
         [curl]="curl|${VER[curl]}" [swaks]="swaks v${VER[swaks]}|swaks|jetmore.org"
         [python-email]="alice-mailer/0.9|alice-mailer|Python ${VER[python-email]}")
DEB=([mutt]="mutt" [neomutt]="neomutt" [s-nail]="s-nail" [mailutils]="mailutils" [git-send-email]="git git-email msmtp"
     [curl]="curl" [swaks]="swaks" [python-email]="python3 gnupg")
log "versions: $(for c in "${!VER[@]}"; do printf '%s=%s ' "$c" "${VER[$c]}"; done)msmtp=$MSMTP_VER"

CAN_UNSHARE=0
unshare -u true 2>/dev/null && CAN_UNSHARE=1
[ $CAN_UNSHARE = 1 ] || log "WARNING: unshare -u is not permitted: clients see this machine's host name"
cat >"$WORK/bin/onhost" <<EOF
#!/bin/sh
# onhost HOST CMD... : run CMD in a private UTS namespace whose host name is HOST
h=\$1; shift
if [ $CAN_UNSHARE = 1 ]; then exec unshare -u -- sh -c 'hostname "\$0" && exec "\$@"' "\$h" "\$@"; fi
exec "\$@"
EOF
chmod +x "$WORK/bin/onhost"

# run CLIENT CMD... : run a client on its "machine" (host name + time zone), stdin passed through
run() {
  local c=$1; shift
  if ! TZ=${TZN[$c]} "$WORK/bin/onhost" "${HOST[$c]}" "$@" >>"$WORK/logs/$c.log" 2>&1; then
    tail -n 30 "$WORK/logs/$c.log" >&2; die "$c failed: $*"
  fi
}

# -- test files -----------------------------------------------------------------------------------
"$PY" - "$WORK/files" <<'EOF'
import os, random, struct, sys, zlib
d = sys.argv[1]
def png(w, h):
    raw = b"".join(b"\x00" + b"".join(bytes(((x * 7 + y * 3) % 256, (x * y) % 256, (x + y * 5) % 256)) for x in range(w))
                   for y in range(h))
    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
open(os.path.join(d, "photo.png"), "wb").write(png(48, 32))
rnd = random.Random(20261129)
stream = zlib.compress(b"BT /F1 18 Tf 72 720 Td (Postern corpus test document) Tj ET\n" + bytes(rnd.randrange(256) for _ in range(1500)))
pdf = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
       b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
       b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >> endobj\n"
       + b"4 0 obj << /Length %d /Filter /FlateDecode >> stream\n" % len(stream) + stream + b"\nendstream endobj\n"
       b"trailer << /Root 1 0 R >>\n%%EOF\n")
open(os.path.join(d, "report.pdf"), "wb").write(pdf)
open(os.path.join(d, "\u00dcbersicht M\u00e4rz \u2013 \u00c4rger.pdf"), "wb").write(pdf)
open(os.path.join(d, "firmware.bin"), "wb").write(bytes(rnd.randrange(256) for _ in range(2048)))
open(os.path.join(d, "page.html"), "w").write("<html><body><p>Hi <b>Bob</b>,</p><p>the plan for M\u00e4rz is "
                                             "below \u2013 Gr\u00fc\u00dfe, Alice</p></body></html>\n")
EOF
F=$WORK/files
PDF_UTF8="$F/Übersicht März – Ärger.pdf"
cat >"$WORK/bin/text2html" <<'EOF'
#!/bin/sh
# mutt's send_multipart_alternative_filter: first line the type, a blank line, then the HTML
printf 'text/html; charset=utf-8\n\n<html><body><pre>\n'
sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'
printf '</pre></body></html>\n'
EOF
chmod +x "$WORK/bin/text2html"

# -- 2. keys --------------------------------------------------------------------------------------
mkdir -m 700 "$GNUPGHOME"
gpgq() { gpg --batch --quiet --pinentry-mode loopback --passphrase '' "$@"; }
if [ -s "$GPGDIR/seckey.asc" ]; then
  gpgq --import "$GPGDIR/seckey.asc" 2>>"$WORK/logs/gpg.log"
else
  log "making test keys (gpg/seckey.asc: passphrase-less, TEST ONLY)"
  for who in "Alice Example <alice@mail.i2p>" "Bob Example <bob@mail.i2p>"; do
    gpgq --quick-gen-key "$who" ed25519 sign,cert never 2>>"$WORK/logs/gpg.log"
    fpr=$(gpg --with-colons --list-keys "$who" | awk -F: '/^fpr/{print $10; exit}')
    gpgq --quick-add-key "$fpr" cv25519 encr never 2>>"$WORK/logs/gpg.log"
  done
  mkdir -p "$GPGDIR"
  gpg --armor --export alice@mail.i2p bob@mail.i2p >"$GPGDIR/pubkey.asc"
  gpgq --armor --export-secret-keys alice@mail.i2p bob@mail.i2p >"$GPGDIR/seckey.asc"
fi
# The imported keys are ours: trust them ultimately, as keys made here would be.
for fpr in $(gpg --with-colons --list-secret-keys | awk -F: '/^fpr/{print $10}'); do echo "$fpr:6:"; done |
  gpg --batch --import-ownertrust 2>>"$WORK/logs/gpg.log"
[ -s "$GPGDIR/pubkey.asc" ] || gpg --armor --export alice@mail.i2p bob@mail.i2p >"$GPGDIR/pubkey.asc"
printf 'allow-loopback-pinentry\n' >"$GNUPGHOME/gpg-agent.conf"

# -- 3. capture server ----------------------------------------------------------------------------
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PY" "$HERE/smtp-capture.py" --listen "127.0.0.1:$PORT" --dir "$WORK/cap" --pidfile "$WORK/capture.pid" \
  >"$WORK/capture.log" 2>&1 &
for _ in $(seq 1 50); do grep -q '^listening' "$WORK/capture.log" 2>/dev/null && break; sleep 0.1; done
grep -q '^listening' "$WORK/capture.log" || die "capture server did not start: $(cat "$WORK/capture.log")"
log "capture server on 127.0.0.1:$PORT"

N=0
# take NAME CLIENT "what it covers; ..." [how] : the next captured message becomes NAME.eml
take() {
  local name=$1 c=$2 covers=$3 how=${4:-}
  N=$((N + 1))
  local f; f=$WORK/cap/$(printf %06d $N)
  for _ in $(seq 1 100); do [ -f "$f.json" ] && break; sleep 0.1; done
  [ -f "$f.json" ] || die "$name: the capture server has no message $N"
  cp "$f.eml" "$WORK/out/$name.eml"
  cp "$f.json" "$WORK/out/$name.json"
  local pkgs="" p
  for p in ${DEB[$c]}; do pkgs+="$p=$(debver "$p") "; done
  "$PY" - "$WORK/out/$name.meta.json" "$c" "${VER[$c]}" "$covers" "${HOST[$c]}" "${TZN[$c]}" \
      "${STRINGS[$c]}" "$pkgs" "$how" "$CAN_UNSHARE" <<'EOF'
import json, socket, sys
out, client, version, covers, host, tz, strings, pkgs, how, uts = sys.argv[1:]
json.dump({"client": client, "version": version, "covers": [c.strip() for c in covers.split(";") if c.strip()],
           "hostname": host if uts == "1" else socket.gethostname(), "tz": tz,
           "client_strings": [s for s in strings.split("|") if s],
           "debian_packages": dict(p.split("=", 1) for p in pkgs.split()), "how": how}, open(out, "w"))
EOF
  log "captured $name.eml"
}

# tui CLIENT PROGRAM ARGS... : run a curses MUA under tmux and press y (send) on its compose
# screen -- the only way mutt/neomutt 2022 sign or encrypt (their batch mode does no crypto).
tui() {
  local c=$1; shift
  local sess=tui$N script=$WORK/tui-$N.sh pane="" sent=0 i
  {
    echo '#!/bin/sh'
    printf 'cd %q || exit 1\n' "$WORK"
    printf 'TZ=%q %q %q ' "${TZN[$c]}" "$WORK/bin/onhost" "${HOST[$c]}"
    printf '%q ' "$@"
    printf '\necho "TUI-EXIT=$?"\nexec sleep 300\n'
  } >"$script"
  tmux -L "$TMUX_SOCK" -f /dev/null new-session -d -s "$sess" -x 200 -y 50 "sh $script"
  for i in $(seq 1 120); do
    sleep 0.5
    pane=$(tmux -L "$TMUX_SOCK" capture-pane -p -t "$sess" 2>/dev/null || true)
    if grep -q 'TUI-EXIT=' <<<"$pane"; then break; fi
    if [ $sent = 0 ] && grep -qE '(^|[[:space:]])[yY]:Send' <<<"$pane"; then
      tmux -L "$TMUX_SOCK" send-keys -t "$sess" y; sent=1
    fi
  done
  tmux -L "$TMUX_SOCK" kill-session -t "$sess" >/dev/null 2>&1 || true
  grep -q 'TUI-EXIT=0' <<<"$pane" || { printf '%s\n' "$pane" | grep -v '^$' >&2; die "$c under tmux did not send ($*)"; }
}

# -- 4. the clients -------------------------------------------------------------------------------
cat >"$WORK/body-plain.txt" <<'EOF'
Hi Bob,

are we still on for lunch on Friday? The usual place at 12:30.

Cheers,
Alice
EOF
cat >"$WORK/body-utf8.txt" <<'EOF'
Hallo Bob,

Grüße aus Köln! Das Straßenfest war großartig – nächstes Jahr kommst du mit. ☃
日本語のテキストも少し。

Alice
EOF
REFS='<20261120093000.GA9999@carols-pc.example> <20261121111111.XY12@bobs-laptop.example> <20261122121212.AB34@alice-old-laptop.example> <20261128101500.GA1234@bobs-laptop.example>'

# mutt and neomutt share one configuration: SMTP AUTH as alice without TLS, User-Agent on,
# gpgme for PGP/MIME with alice's key. The host name comes from the (namespaced) system.
for m in mutt neomutt; do
  : >"$WORK/$m/spool"
  cat >"$WORK/$m/muttrc" <<EOF
set from = "alice@mail.i2p"
set realname = "Alice Example"
set smtp_url = "smtp://alice@127.0.0.1:$PORT/"
set smtp_pass = "alice-password"
set ssl_starttls = no
set ssl_force_tls = no
set record = ""
set postpone = no
set use_from = yes
set user_agent = yes
set charset = "utf-8"
set send_charset = "us-ascii:utf-8"
set tmpdir = "$WORK/tmp"
set folder = "$WORK/$m"
set spoolfile = "$WORK/$m/spool"
set editor = "/bin/true"
set autoedit = yes
set edit_headers = yes
set abort_noattach = no
set crypt_use_gpgme = yes
set pgp_default_key = "alice@mail.i2p"
set pgp_sign_as = "alice@mail.i2p"
set crypt_autosign = no
set crypt_autoencrypt = no
EOF
  cat >"$WORK/$m/draft-reply" <<EOF
From: Alice Example <alice@mail.i2p>
To: bob@mail.i2p
Cc: carol@mail.i2p
Subject: Re: Lunch on Friday?
In-Reply-To: <20261128101500.GA1234@bobs-laptop.example>
References: $REFS

On Sat, Nov 28, 2026 at 10:15:00AM +0100, Bob wrote:
> Lunch on Friday?

Sounds good, see you there.
EOF
  cat >"$WORK/$m/draft-signed" <<EOF
From: Alice Example <alice@mail.i2p>
To: bob@mail.i2p
Subject: Signed status report

Hello Bob,

this status report is signed (PGP/MIME, RFC 3156).
A line starting with From and one with trailing spaces:  
From here on everything is fine.

-- 
Alice
EOF
  sed -e 's/^Subject: .*/Subject: Encrypted: the door code/' -e 's/this status report is signed.*/the door code is 4711; this mail is encrypted./' \
    "$WORK/$m/draft-signed" >"$WORK/$m/draft-encrypted"
done

MRC=$WORK/mutt/muttrc
run mutt mutt -n -F "$MRC" -s 'Lunch on Friday?' -- bob@mail.i2p <"$WORK/body-plain.txt"
take mutt-plain mutt "plain text (us-ascii)" "batch mode (-s, body on stdin)"
run mutt mutt -n -F "$MRC" -e 'set realname="Ålice Exämple"' -s 'Grüße aus Köln – Straßenfest ☃' \
  -c carol@mail.i2p -- bob@mail.i2p <"$WORK/body-utf8.txt"
take mutt-utf8-headers mutt "RFC 2047 subject and display name; UTF-8 body; Cc" "batch mode"
run mutt mutt -n -F "$MRC" -s 'Photos and the report' -a "$F/photo.png" "$PDF_UTF8" -- bob@mail.i2p <"$WORK/body-plain.txt"
take mutt-attachments mutt "binary attachments (PNG, PDF); non-ASCII file name (RFC 2231 filename*)" "batch mode, -a"
run mutt mutt -n -F "$MRC" -H "$WORK/mutt/draft-reply" </dev/null
take mutt-reply mutt "reply: In-Reply-To, References (folded long header); Cc" "batch mode, -H draft"
run mutt mutt -n -F "$MRC" -e 'set send_multipart_alternative=yes' \
  -e "set send_multipart_alternative_filter=$WORK/bin/text2html" -s 'Agenda for Monday' -- bob@mail.i2p <"$WORK/body-plain.txt"
take mutt-html-alternative mutt "multipart/alternative text + HTML (send_multipart_alternative)" "batch mode"
tui mutt mutt -n -F "$MRC" -e 'set crypt_autosign=yes' -H "$WORK/mutt/draft-signed"
take mutt-signed mutt "PGP/MIME signed (multipart/signed, RFC 3156) by mutt+gpgme" "compose screen under tmux, crypt_autosign"
tui mutt mutt -n -F "$MRC" -e 'set crypt_autosign=yes' -H "$WORK/mutt/draft-signed" -a "$F/photo.png" "$PDF_UTF8"
take mutt-signed-attachments mutt "PGP/MIME signed multipart/mixed with binary and RFC 2231-named attachments (inner boundary and part headers are signed)" "compose screen under tmux, crypt_autosign"
tui mutt mutt -n -F "$MRC" -e 'set crypt_autosign=yes' -e 'set crypt_autoencrypt=yes' -H "$WORK/mutt/draft-encrypted"
take mutt-encrypted mutt "PGP/MIME signed+encrypted (multipart/encrypted) to bob and alice" "compose screen under tmux, crypt_autosign + crypt_autoencrypt"

NRC=$WORK/neomutt/muttrc
run neomutt neomutt -n -F "$NRC" -s 'Plain note' -- bob@mail.i2p <"$WORK/body-plain.txt"
take neomutt-plain neomutt "plain text" "batch mode"
run neomutt neomutt -n -F "$NRC" -e 'set realname="Алиса Пример"' -s '会議の議題 – Tagesordnung für Montag' \
  -c carol@mail.i2p -- bob@mail.i2p <"$WORK/body-utf8.txt"
take neomutt-utf8-headers neomutt "RFC 2047 subject (CJK + Latin) and Cyrillic display name; UTF-8 body; Cc" "batch mode"
run neomutt neomutt -n -F "$NRC" -s 'Firmware and scan' -a "$F/firmware.bin" "$PDF_UTF8" -- bob@mail.i2p <"$WORK/body-plain.txt"
take neomutt-attachments neomutt "binary attachment (application/octet-stream); RFC 2231 file name" "batch mode, -a"
# neomutt 20220429's batch mode refuses -H drafts ("Refusing to send an empty email"): compose screen.
tui neomutt neomutt -n -F "$NRC" -H "$WORK/neomutt/draft-reply"
take neomutt-reply neomutt "reply: In-Reply-To, References (folded); Cc" "compose screen under tmux, -H draft"
tui neomutt neomutt -n -F "$NRC" -e 'set crypt_autosign=yes' -H "$WORK/neomutt/draft-signed"
take neomutt-signed neomutt "PGP/MIME signed (multipart/signed) by neomutt+gpgme" "compose screen under tmux, crypt_autosign"
tui neomutt neomutt -n -F "$NRC" -e 'set crypt_autoencrypt=yes' -H "$WORK/neomutt/draft-encrypted"
take neomutt-encrypted neomutt "PGP/MIME encrypted, not signed (multipart/encrypted)" "compose screen under tmux, crypt_autoencrypt"

SN=(s-nail -n -S v15-compat -S "mta=smtp://alice:alice-password@127.0.0.1:$PORT" -S smtp-auth=plain -S ttycharset=utf-8)
run s-nail "${SN[@]}" -S 'from=Alice Example <alice@mail.i2p>' -s 'Meeting notes' bob@mail.i2p <"$WORK/body-plain.txt"
take s-nail-plain s-nail "plain text" "send mode, -s"
run s-nail "${SN[@]}" -S 'from=Alice Exämple <alice@mail.i2p>' -s 'Grüße aus Tōkyō' -a "$PDF_UTF8" -a "$F/photo.png" \
  -c carol@mail.i2p bob@mail.i2p <"$WORK/body-utf8.txt"
take s-nail-attachments s-nail "RFC 2047 subject and display name; attachments; RFC 2231 file name with continuations (filename*0*, filename*1); Content-IDs with timestamps; Cc" "send mode, -a"
run s-nail "${SN[@]}" -t <<EOF
From: Alice Example <alice@mail.i2p>
To: bob@mail.i2p
Subject: Re: Lunch on Friday?
In-Reply-To: <20261128101500.GA1234@bobs-laptop.example>
References: $REFS

Friday works for me.
EOF
take s-nail-reply s-nail "reply: In-Reply-To, References" "template on stdin (-t)"

MU=(mail -E "set sendmail=smtp://alice:alice-password@127.0.0.1:$PORT" -r alice@mail.i2p)
run mailutils "${MU[@]}" -s 'Backup finished' bob@mail.i2p <"$WORK/body-plain.txt"
take mailutils-no-from mailutils "no From field at all (mailutils writes none: the server must add it); Content-ID with host name and time" "mail -s"
run mailutils "${MU[@]}" -a 'From: Alice Example <alice@mail.i2p>' -s 'Plan für März' --alternative \
  --content-type=text/html -A "$F/page.html" --content-type=text/plain bob@mail.i2p <"$WORK/body-utf8.txt"
take mailutils-html-alternative mailutils "multipart/alternative text + HTML; raw UTF-8 (8-bit) Subject; Content-IDs with host name" "mail --alternative -A"
run mailutils "${MU[@]}" -a 'From: Alice Example <alice@mail.i2p>' \
  -a 'In-Reply-To: <20261128101500.GA1234@bobs-laptop.example>' -a "References: $REFS" -s 'Re: Scans' \
  --content-type=application/pdf -A "$PDF_UTF8" --content-type=image/png -A "$F/photo.png" \
  --content-type=text/plain bob@mail.i2p <"$WORK/body-plain.txt"
take mailutils-attachments-reply mailutils "reply with attachments; raw UTF-8 file name in part headers; Content-IDs with host name" "mail -a -A"

# git send-email, with msmtp as its sendmail: a cover letter and two patches, threaded.
cat >"$WORK/msmtprc" <<EOF
defaults
auth plain
tls off
account default
host 127.0.0.1
port $PORT
from alice@mail.i2p
user alice
password alice-password
domain ${HOST[git-send-email]}
EOF
chmod 600 "$WORK/msmtprc"
(
  export TZ=${TZN[git-send-email]}
  git init -q -b main "$WORK/repo" && cd "$WORK/repo"
  git config user.name 'Alice Exämple' && git config user.email alice@mail.i2p
  printf 'hello\n' >README && git add README && git commit -qm 'Initial commit'
  printf 'hello\nworld\n' >README && git commit -qam 'README: greet the world' -m 'Longer explanation, with ümlauts: the world deserves a greeting.'
  printf 'int main(void) { return 0; }\n' >main.c && git add main.c && git commit -qm 'Add main.c'
  git format-patch -q --cover-letter -2 -o "$WORK/patches"
  sed -i -e 's/\*\*\* SUBJECT HERE \*\*\*/Greet the world and add main/' -e 's/\*\*\* BLURB HERE \*\*\*/This series greets the world./' \
    "$WORK/patches/0000-cover-letter.patch"
) >>"$WORK/logs/git.log" 2>&1 || die "git: could not make the patch series"
run git-send-email git -C "$WORK/repo" send-email --smtp-server=/usr/bin/msmtp --smtp-server-option=-C \
  --smtp-server-option="$WORK/msmtprc" --to bob@mail.i2p --cc carol@mail.i2p --confirm=never --suppress-cc=all \
  --quiet "$WORK"/patches/*.patch
take git-send-email-0-cover git-send-email "patch series cover letter; RFC 2047 author name; X-Mailer; Message-ID with timestamp; Cc" "git send-email via msmtp $MSMTP_VER"
take git-send-email-1-patch git-send-email "patch 1/2: In-Reply-To/References to the cover letter; 8bit UTF-8 body" "git send-email via msmtp $MSMTP_VER"
take git-send-email-2-patch git-send-email "patch 2/2: threaded reply; 8bit body without Content-Type" "git send-email via msmtp $MSMTP_VER"

run curl curl -sS --max-time 30 "smtp://127.0.0.1:$PORT" --mail-from alice@mail.i2p --mail-rcpt bob@mail.i2p \
  --user alice:alice-password -H 'From: "Alice Example" <alice@mail.i2p>' -H 'To: bob@mail.i2p' \
  -H 'Subject: Quarterly numbers' -F '=(;type=multipart/alternative' -F '=Plain text version of the numbers.;type=text/plain' \
  -F '= <html><body><p>HTML <b>version</b> of the numbers.</p></body></html>;type=text/html' -F '=)' \
  -F "=@$F/photo.png;encoder=base64" -F "=@$PDF_UTF8;encoder=base64"
take curl-mime curl "curl's MIME API: multipart/mixed > alternative; attachments; raw UTF-8 file name; no Date, no Message-ID" "curl -F/-H smtp://"
cat >"$WORK/bin/notify.sh" <<'EOF'
#!/bin/sh
# A cron job's notification script: writes the message itself, uploads it with curl.
f=$(mktemp)
printf 'From: Backup Bot <alice@mail.i2p>\r\nTo: bob@mail.i2p\r\nSubject: nightly backup OK\r\nDate: %s\r\nMessage-ID: <%s.%s@%s>\r\nX-Mailer: notify.sh (curl)\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nBackup of /home finished on %s.\r\n' \
  "$(date -R)" "$(date +%s)" "$$" "$(hostname)" "$(hostname)" >"$f"
curl -sS --max-time 30 "smtp://127.0.0.1:$1/$(hostname)" --mail-from alice@mail.i2p --mail-rcpt bob@mail.i2p \
  --user alice:alice-password --upload-file "$f"
rc=$?; rm -f "$f"; exit $rc
EOF
chmod +x "$WORK/bin/notify.sh"
run curl "$WORK/bin/notify.sh" "$PORT"
take curl-upload curl "script-written message uploaded with curl: host name in HELO, Message-ID and body; no MIME-Version" "curl --upload-file smtp://host/HELO"

SW=(swaks --server "127.0.0.1:$PORT" --auth PLAIN --auth-user alice --auth-password alice-password --from alice@mail.i2p)
run swaks "${SW[@]}" --to bob@mail.i2p --h-From '"Alice Example" <alice@mail.i2p>' --h-Subject 'Connectivity check' \
  --body 'Just checking that mail gets through.'
take swaks-plain swaks "plain text; X-Mailer; Message-Id with host name and time" "swaks --body"
run swaks "${SW[@]}" --to bob@mail.i2p,carol@mail.i2p --h-From '"Alice Example" <alice@mail.i2p>' --h-Subject 'Invoice attached' \
  --body 'Please find the invoice attached.' --attach-type application/octet-stream \
  --attach-name 'Rechnung Nr. 7 – Größe.bin' --attach "@$F/firmware.bin"
take swaks-attachment swaks "binary attachment; raw UTF-8 name and Content-Description in part headers; two recipients" "swaks --attach"

for k in html-inline-image leaky-headers smtputf8 long-headers reply-autocrypt signed encrypted; do
  run python-email "$PY" "$HERE/python_client.py" --port "$PORT" --kind "$k" --files "$F"
  case $k in
    html-inline-image) cov="HTML with inline image (multipart/related, cid); multipart/alternative; PDF with RFC 2231 non-ASCII name; Content-Disposition creation-date/modification-date/read-date; MIME-Version in parts; RFC 2047 subject" ;;
    leaky-headers) cov="every field PRIV-1 drops: Received with IPv4/IPv6, X-Originating-IP, Bcc, Organization, Disposition-Notification-To, Thread-Index, Importance, Sender, Resent-*, X-*" ;;
    smtputf8) cov="SMTPUTF8: raw UTF-8 display name, subject and attachment name (RFC 6532); 8bit body" ;;
    long-headers) cov="long folded Subject with several RFC 2047 words; 14 References; named To/Cc" ;;
    reply-autocrypt) cov="reply: In-Reply-To, References; Reply-To; Autocrypt (folded keydata) and OpenPGP fields; Cc" ;;
    signed) cov="RFC 3156 multipart/signed over multipart/mixed with preamble; creation-date inside the signed part (must be kept)" ;;
    encrypted) cov="RFC 3156 multipart/encrypted (signed and encrypted), preamble" ;;
  esac
  how="email.message + smtplib"
  case $k in signed) how="email.message + gpg --detach-sign --armor, assembled per RFC 3156";; encrypted) how="email.message + gpg --encrypt --sign --armor, assembled per RFC 3156";; esac
  take "python-email-$k" python-email "$cov" "$how"
done

# -- 5. publish -----------------------------------------------------------------------------------
"$PY" "$HERE/build_index.py" "$WORK/out" "$WORK/out/index.json"
rm -rf "$MSGS.new"
mkdir -p "$MSGS.new"
cp "$WORK"/out/*.eml "$WORK/out/index.json" "$MSGS.new/"
rm -rf "$MSGS"
mv "$MSGS.new" "$MSGS"
total=$(du -cb "$MSGS"/*.eml | tail -n 1 | cut -f1)
log "$N messages from ${#VER[@]} clients in $MSGS ($total bytes)"
