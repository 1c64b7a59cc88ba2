#!/bin/bash
# start.sh DIR — start the private Dovecot (POP3, LMTP, auth socket) and Postfix (submission with
# AUTH) laid out by setup.sh; waits for their ports (SMTP_PORT, POP_PORT as given to setup.sh).
# Adapted from ../shared/peers/mailstack/start-mailstack.sh.
# Already-running parts are left alone. Prints nothing but errors.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR=$(realpath -m -- "$1")
# shellcheck source=lib.sh
. "$(dirname "$(realpath "$0")")/lib.sh"
ms_paths "$DIR"
{ [ -f "$PF_CONF/main.cf" ] && [ -f "$DV_CONF" ]; } || { echo "$0: $DIR is not set up (run setup.sh)" >&2; exit 1; }
mkdir -p "$DIR/logs" "$DIR/pids"
# keep the logs from filling the disk over long benchmark sessions (one old generation kept)
for f in "$DIR/logs/postfix.log" "$DIR/logs/dovecot.log"; do
  if [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt $((256 * 1024 * 1024)) ]; then
    if ! { alive "$PF_PIDF" "$PF_EXE" || alive "$DV_PIDF" "$DV_EXE"; }; then mv -f "$f" "$f.1"; fi
  fi
done

fail() { echo "$0: $1" >&2; [ -z "${2:-}" ] || tail -n 8 "$2" >&2 2>/dev/null; exit 1; }

if ! alive "$DV_PIDF" "$DV_EXE"; then
  # dovecot daemonizes (becomes a session leader) and writes base_dir/master.pid.
  # Its output must go to a file: the daemon keeps stderr open, so $(dovecot ...) would never return.
  dovecot -c "$DV_CONF" >"$DIR/logs/dovecot.start" 2>&1 ||
    { cat "$DIR/logs/dovecot.start" >&2; fail "dovecot failed to start" "$DIR/logs/dovecot.log"; }
fi
for _ in $(seq 200); do
  [ -S "$DIR/dovecot/run/auth-postfix" ] && [ -S "$DIR/dovecot/run/lmtp" ] && alive "$DV_PIDF" "$DV_EXE" && break
  sleep 0.05
done
{ alive "$DV_PIDF" "$DV_EXE" && [ -S "$DIR/dovecot/run/lmtp" ]; } || fail "dovecot did not come up" "$DIR/logs/dovecot.log"

if ! alive "$PF_PIDF" "$PF_EXE"; then
  # "postfix start" runs "master -w": returns once the master (a session leader) has initialized
  postfix -c "$PF_CONF" start >"$DIR/logs/postfix.start" 2>&1 ||
    { cat "$DIR/logs/postfix.start" >&2; fail "postfix failed to start" "$DIR/logs/postfix.log"; }
fi

SMTP_PORT=${SMTP_PORT:-2525} POP_PORT=${POP_PORT:-1110}
for port in "$POP_PORT" "$SMTP_PORT"; do
  for _ in $(seq 200); do listening "$port" && break; sleep 0.05; done
  listening "$port" || fail "port $port not listening after 10 s" 
done
# convenience copies (the authoritative pid files are the daemons' own)
pid_of "$PF_PIDF" >"$DIR/pids/postfix.pid"
pid_of "$DV_PIDF" >"$DIR/pids/dovecot.pid"
