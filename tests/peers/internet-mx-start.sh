#!/bin/bash
# usage: [RELAYHOST='[127.0.0.1]:2600'] [ADDR=127.0.0.1] [USERS='alice bob ...'] [NAMESERVER=127.0.0.2] \
#        internet-mx-start.sh DIR PORT DOMAIN
# A private Postfix acting as an ordinary Internet mail server for DOMAIN on ADDR:PORT:
#  - accepts mail for the USERS of DOMAIN (default alice bob carol dave postmaster; others get 550
#    at RCPT) with STARTTLS offered (self-signed certificate DIR/etc/cert.pem for mx.DOMAIN, made
#    once) and delivers it to Maildir DIR/mail/USER/new (user+tag@ goes to USER);
#  - relays mail from 127.0.0.0/8 for other domains: to RELAYHOST if set (e.g. the new service's MX),
#    else by DNS MX lookups through NAMESERVER (port 53, see with-resolver.sh); outgoing TLS "may".
#    Deferred mail is retried every ~10 s.
# Log: DIR/log/postfix.log. PID of the master in DIR/pid. Ready = the 220 banner. DIR must be
# reachable by the postfix user (no 0700 parent such as a plain mktemp -d). Stop: internet-mx-stop.sh DIR
. "$(dirname "$(realpath "$0")")/lib.sh"
[ $# -eq 3 ] || usage
DIR=$(realpath -m "$1"); PORT=$2; DOMAIN=$3; ADDR=${ADDR:-127.0.0.1}
need postfix openssl
running "$DIR" /usr/lib/postfix/sbin/master && die "already running (pid $(cat "$DIR/pid"))"
tcp_open "$ADDR" "$PORT" && die "port $ADDR:$PORT already in use"
mkdir -p "$DIR/etc" "$DIR/spool" "$DIR/log" "$DIR/mail"
chmod 755 "$DIR" "$DIR/etc" "$DIR/spool" "$DIR/log"; chown 5000:5000 "$DIR/mail"
runuser -u postfix -- test -x "$DIR" || die "$DIR is not reachable by user postfix (0700 parent?)"
[ -f "$DIR/etc/cert.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mx.$DOMAIN" \
  -addext "subjectAltName=DNS:mx.$DOMAIN" -keyout "$DIR/etc/key.pem" -out "$DIR/etc/cert.pem" 2>/dev/null
for u in ${USERS:-alice bob carol dave postmaster}; do echo "$u@$DOMAIN $u/"; done >"$DIR/etc/mailboxes"
if [ -n "${NAMESERVER:-}" ]; then DNS="smtp_dns_support_level = enabled"; else DNS="smtp_dns_support_level = disabled
smtp_host_lookup = native"; fi
cat >"$DIR/etc/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $DIR/spool
data_directory = $DIR/data
maillog_file = $DIR/log/postfix.log
maillog_file_prefixes = /var, /dev/stdout, $DIR
myhostname = mx.$DOMAIN
mydomain = $DOMAIN
myorigin = $DOMAIN
mydestination =
# the address is in master.cf: "all" lets it be any 127.x.y.z, which lo answers without being configured
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
biff = no
smtpd_peername_lookup = no
smtp_bind_address = $ADDR
recipient_delimiter = +
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_maps = texthash:$DIR/etc/mailboxes
virtual_mailbox_base = $DIR/mail
virtual_uid_maps = static:5000
virtual_gid_maps = static:5000
relayhost = ${RELAYHOST:-}
$DNS
smtpd_tls_security_level = may
smtpd_tls_cert_file = $DIR/etc/cert.pem
smtpd_tls_key_file = $DIR/etc/key.pem
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
smtp_tls_security_level = may
smtp_tls_loglevel = 1
queue_run_delay = 10s
minimal_backoff_time = 10s
maximal_backoff_time = 60s
CONF
cat >"$DIR/etc/master.cf" <<CONF
$ADDR:$PORT inet n - n - - smtpd
pickup     unix n - n 60 1 pickup
cleanup    unix n - n - 0 cleanup
qmgr       unix n - n 300 1 qmgr
tlsmgr     unix - - n 1000? 1 tlsmgr
rewrite    unix - - n - - trivial-rewrite
bounce     unix - - n - 0 bounce
defer      unix - - n - 0 bounce
trace      unix - - n - 0 bounce
verify     unix - - n - 1 verify
flush      unix n - n 1000? 0 flush
proxymap   unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp       unix - - n - - smtp
relay      unix - - n - - smtp
showq      unix n - n - - showq
error      unix - - n - - error
retry      unix - - n - - error
discard    unix - - n - - discard
anvil      unix - - n - 1 anvil
scache     unix - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
virtual    unix - n n - - virtual
CONF
# Postfix re-reads a main.cf younger than ~2 s until it is "stable" (1.5-2 s lost): backdate the files
touch -d "@$(( $(date +%s) - 10 ))" "$DIR/etc/main.cf" "$DIR/etc/master.cf" "$DIR/etc/mailboxes"
pf() { postfix -c "$DIR/etc" "$@" >>"$DIR/log/postfix.out" 2>&1 || { tail -n 15 "$DIR/log/postfix.out" "$DIR/log/postfix.log" >&2 2>/dev/null; die "postfix $* failed"; }; }
pf post-install create-missing
rm -f "$DIR/spool/pid/master.pid"
if [ -n "${NAMESERVER:-}" ]; then   # the master and all its children see only NAMESERVER
  "$(dirname "$(realpath "$0")")/with-resolver.sh" "$NAMESERVER" postfix -c "$DIR/etc" start >>"$DIR/log/postfix.out" 2>&1 || die "postfix start failed"
else
  pf start
fi
awk '{print $1; exit}' "$DIR/spool/pid/master.pid" >"$DIR/pid"
banner() { local r; { exec 3<>"/dev/tcp/$ADDR/$PORT"; } 2>/dev/null || return 1; read -r -t 5 r <&3 || true
           printf 'QUIT\r\n' >&3; exec 3<&-; [[ $r == 220* ]]; }
wait_ready 20 "$(cat "$DIR/pid")" "$DIR/log/postfix.log" banner
echo "postfix ready: pid $(cat "$DIR/pid"), $ADDR:$PORT for @$DOMAIN, relayhost=${RELAYHOST:-none}${NAMESERVER:+ nameserver=$NAMESERVER}, Maildirs $DIR/mail"
