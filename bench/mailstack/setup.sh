#!/bin/bash
# setup.sh DIR USERS_FILE — lay out a private Postfix + Dovecot instance under DIR from the
# templates beside this script (main.cf.in, master.cf.in, dovecot.conf.in).
#   Postfix  127.0.0.1:$SMTP_PORT submission, SASL AUTH PLAIN/LOGIN via Dovecot's auth socket (required)
#            virtual domain $DOMAIN -> Dovecot LMTP (unix socket) -> Maildir DIR/mail/$DOMAIN/USER/Maildir
#   Dovecot  127.0.0.1:$POP_PORT POP3 (plaintext USER/PASS), LMTP socket, auth socket for Postfix
#   Users    one "NAME PASSWORD" per line of USERS_FILE -> NAME@$DOMAIN
# Env: SMTP_PORT (2525) POP_PORT (1110) DOMAIN (example.test) VMAIL_UID/VMAIL_GID (5000)
#      POSTFIX_PROCESS_LIMIT (100, Postfix's default_process_limit)
# The packages (postfix dovecot-core dovecot-pop3d dovecot-lmtpd) must be installed (bench/run does it).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 DIR USERS_FILE" >&2; exit 2; }
HERE=$(dirname "$(realpath "$0")")
DIR=$(realpath -m -- "$1"); USERS=$2
DOMAIN=${DOMAIN:-example.test}
VUID=${VMAIL_UID:-5000} VGID=${VMAIL_GID:-5000}
SMTP_PORT=${SMTP_PORT:-2525} POP_PORT=${POP_PORT:-1110}
PROCESS_LIMIT=${POSTFIX_PROCESS_LIMIT:-100}
[ "$(id -u)" = 0 ] || { echo "$0: must run as root" >&2; exit 1; }
[ "$DIR" != / ] || { echo "$0: refusing DIR=/" >&2; exit 1; }
# unix socket paths are limited to 107 bytes (sun_path)
[ ${#DIR} -le 70 ] || { echo "$0: DIR path too long for unix sockets (max 70 chars): $DIR" >&2; exit 1; }

umask 022
mkdir -p "$DIR/postfix/etc" "$DIR/postfix/spool" "$DIR/dovecot" "$DIR/logs" "$DIR/pids" "$DIR/mail"
chmod 755 "$DIR" "$DIR/postfix" "$DIR/postfix/etc" "$DIR/postfix/spool" "$DIR/dovecot" "$DIR/logs" "$DIR/pids"
chown "$VUID:$VGID" "$DIR/mail"; chmod 755 "$DIR/mail"

INST="bench-$(printf %s "$DIR" | md5sum | cut -c1-8)"
render() {  # render TEMPLATE OUT
  sed -e "s|@DIR@|$DIR|g" -e "s|@DOMAIN@|$DOMAIN|g" -e "s|@SMTP_PORT@|$SMTP_PORT|g" -e "s|@POP_PORT@|$POP_PORT|g" \
      -e "s|@VUID@|$VUID|g" -e "s|@VGID@|$VGID|g" -e "s|@INSTANCE@|$INST|g" -e "s|@PROCESS_LIMIT@|$PROCESS_LIMIT|g" \
      "$HERE/$1" >"$2"
}
render main.cf.in "$DIR/postfix/etc/main.cf"
render master.cf.in "$DIR/postfix/etc/master.cf"
render dovecot.conf.in "$DIR/dovecot/dovecot.conf"
# a main.cf younger than ~2 s makes every postfix command wait for it to "settle": backdate it
touch -d '-10 seconds' "$DIR/postfix/etc/main.cf" "$DIR/postfix/etc/master.cf"

awk -v d="$DOMAIN" 'NF >= 2 { print $1 "@" d " OK" }' "$USERS" >"$DIR/postfix/etc/vmailbox"
touch -d '-10 seconds' "$DIR/postfix/etc/vmailbox"
awk -v d="$DOMAIN" 'NF >= 2 { print $1 "@" d ":{PLAIN}" $2 "::::::" }' "$USERS" >"$DIR/dovecot/users"
chmod 640 "$DIR/dovecot/users"; chgrp dovecot "$DIR/dovecot/users"

# every path component must be traversable by the unprivileged daemons (postfix, dovecot, vmail uid)
if ! runuser -u postfix -- test -r "$DIR/postfix/etc/main.cf"; then
  echo "$0: $DIR is not traversable by user postfix (put DIR under a world-executable path)" >&2; exit 1
fi
doveconf -c "$DIR/dovecot/dovecot.conf" -n >/dev/null || { echo "$0: dovecot config invalid" >&2; exit 1; }
# queue + data directories with the right owners/modes; unlike set-permissions this does not touch
# the system's Postfix files. (postfix commands log errors to maillog_file when stderr is no tty)
pflog_fail() { echo "$1" >&2; tail -n 5 "$DIR/logs/postfix.log" >&2 2>/dev/null; echo "$0: postfix $2 failed" >&2; exit 1; }
out=$(postfix -c "$DIR/postfix/etc" post-install create-missing 2>&1) || pflog_fail "$out" "post-install create-missing"
out=$(postfix -c "$DIR/postfix/etc" check 2>&1) || pflog_fail "$out" check
out=$(echo "$out" | grep -v -e 'symlink leaves directory' || true)
[ -z "$out" ] || echo "$out" >&2
exit 0
