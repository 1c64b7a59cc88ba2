#!/bin/bash
# stop.sh DIR — (adapted from ../shared/peers/mailstack/stop-mailstack.sh) stop the private Postfix and Dovecot by the PIDs in their own pid files
# (SIGTERM to each master; they terminate their children), then wait until every Postfix/Dovecot
# process of their sessions is gone (SIGKILL by PID after 10 s). Also reaps the leftovers of a master
# that died (session ids recorded by start-mailstack.sh). Prints nothing but errors.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR=$(realpath -m -- "$1")
# shellcheck source=lib.sh
. "$(dirname "$(realpath "$0")")/lib.sh"
ms_paths "$DIR"

# only ever signal Postfix/Dovecot binaries (guards against reused pids / session ids)
ours() {
  case "$(readlink "/proc/$1/exe" 2>/dev/null)" in
    /usr/lib/postfix/*|/usr/lib/dovecot/*|/usr/sbin/dovecot|/usr/sbin/post*|/usr/bin/doveadm) return 0;;
  esac
  return 1
}
# exiting: a zombie, or exe no longer readable (mm already released)
dying() { [ ! -e "/proc/$1/exe" ] || ! readlink "/proc/$1/exe" >/dev/null 2>&1 || grep -q '^State:[[:space:]]*[ZX]' "/proc/$1/status" 2>/dev/null; }
# what we still wait for: our processes and dying members of the sessions
rest() { local s p; for s in $sids; do for p in $(session_pids "$s"); do { ours "$p" || dying "$p"; } && echo "$p"; done; done; }
# what may still be signalled: our live processes only
live() { local p; for p in $(rest); do ours "$p" && ! dying "$p" && echo "$p"; done; }

sids=""
for spec in "$PF_PIDF:$PF_EXE:postfix" "$DV_PIDF:$DV_EXE:dovecot"; do
  IFS=: read -r pidf exe name <<<"$spec"
  if alive "$pidf" "$exe"; then
    pid=$(pid_of "$pidf")
    [ "$(sid_of "$pid")" = "$pid" ] && sids="$sids $pid"   # a session leader: its session = what it started
    kill -TERM "$pid" 2>/dev/null
  else
    rec=$(pid_of "$DIR/pids/$name.pid")                   # master gone: its children may remain
    [ -n "$rec" ] && sids="$sids $rec"
  fi
done
[ -n "$sids" ] || { rm -f "$DIR/pids/postfix.pid" "$DIR/pids/dovecot.pid"; exit 0; }

left=""
for i in $(seq 100); do
  left=$(rest)
  [ -z "$left" ] && break
  # orphans of a dead master get no SIGTERM from it: send one ourselves (after 1 s), by PID
  if [ "$i" = 10 ]; then for p in $left; do kill -TERM "$p" 2>/dev/null; done; fi
  sleep 0.1
done
left=$(live)   # zombies left to their new parent are no running processes: not our business
if [ -n "$left" ]; then
  echo "$0: still running after 10 s, SIGKILL:" "$(tr "\n" " " <<<"$left")" >&2
  for p in $left; do kill -KILL "$p" 2>/dev/null; done
  sleep 0.5
  left=$(live)
  [ -z "$left" ] || { echo "$0: could not stop:" "$(tr "\n" " " <<<"$left")" >&2; exit 1; }
fi
rm -f "$DIR/pids/postfix.pid" "$DIR/pids/dovecot.pid"
exit 0
