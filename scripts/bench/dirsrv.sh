#!/usr/bin/env bash
# The benchmark's own 389-ds instance, apart from the shared test instance (scripts/dirsrv.sh,
# `mattersync-test` on 3389) that other tests use at the same time.
#
#   scripts/bench/dirsrv.sh up             create (first time), configure and start
#   scripts/bench/dirsrv.sh load LDIF      replace the whole database with LDIF by an offline
#                                          bulk import (stop, ldif2db, start); skipped when the
#                                          same LDIF (sha256) is already loaded
#   scripts/bench/dirsrv.sh modify LDIF    apply LDIF modifies online (ldapmodify)
#   scripts/bench/dirsrv.sh down | destroy | status
#
# Instance `mattersync-bench`: ldap://127.0.0.1:3390 (plain LDAP on loopback; no TLS, so
# that the benchmark measures the directory and not the handshake), suffix
# dc=rockylinux,dc=org, the project's FreeIPA/FAS schema (scripts/ldap/99mattersync.ldif),
# Retro Changelog and Content Synchronization (syncrepl) enabled as on FreeIPA. The memberOf
# plugin stays off: mattersync reads `member`, and an offline import would not compute
# memberOf anyway. Directory Manager password: .local/bench/dirsrv/dm.password (0600), only
# ever passed to tools in files. Writes .local/bench/dirsrv.env.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
INSTANCE=${MATTERSYNC_BENCH_DIRSRV_INSTANCE:-mattersync-bench}
PORT=${MATTERSYNC_BENCH_LDAP_PORT:-3390}
SUFFIX=dc=rockylinux,dc=org
ROOT_DN="cn=Directory Manager"
URL="ldap://127.0.0.1:$PORT"
STATE=$root/.local/bench/dirsrv
PW_FILE=$STATE/dm.password
STAMP=$STATE/loaded.sha256
ENV_FILE=$root/.local/bench/dirsrv.env
INST_DIR=/etc/dirsrv/slapd-$INSTANCE
PID_FILE=/run/dirsrv/slapd-$INSTANCE.pid
LDIF_DIR=/var/lib/dirsrv/slapd-$INSTANCE/ldif
export LDAPTLS_REQCERT=never

log() { printf '%s bench/dirsrv.sh: %s\n' "$(date -u +%FT%T.%3NZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

dm() { local tool=$1; shift; "$tool" -x -H "$URL" -D "$ROOT_DN" -y "$PW_FILE" "$@"; }
running() {
  local pid
  pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = ns-slapd ]
}
wait_ldap() {
  local i
  for i in $(seq 1 120); do
    ldapsearch -x -H "$URL" -o nettimeout=2 -s base -b "" -LLL "(objectClass=*)" vendorVersion \
      >/dev/null 2>&1 </dev/null && return 0
    sleep 0.5
  done
  die "$INSTANCE does not answer on $URL"
}
rundirs() { install -d -o dirsrv -g dirsrv -m 0770 /run/dirsrv "/run/lock/dirsrv/slapd-$INSTANCE"; }

create() {
  local inf
  command -v dscreate >/dev/null || die "389-ds is not installed: run scripts/dirsrv.sh up once"
  mkdir -p "$STATE"; chmod 700 "$STATE"
  if [ ! -s "$PW_FILE" ]; then
    (umask 077; python3 -c 'import secrets,sys; sys.stdout.write(secrets.token_hex(20))' >"$PW_FILE")
  fi
  if grep -q '^with_systemd = 1' /usr/share/dirsrv/inf/defaults.inf; then
    sed -i 's/^with_systemd = 1/with_systemd = 0/' /usr/share/dirsrv/inf/defaults.inf
  fi
  log "creating instance $INSTANCE on $URL"
  inf=$(umask 077; mktemp "$STATE/dscreate.XXXXXX.inf")
  {
    printf '[general]\nfull_machine_name = localhost\nstart = True\nstrict_host_checking = False\n'
    printf '[slapd]\ninstance_name = %s\nport = %s\nsecure_port = %s\n' "$INSTANCE" "$PORT" "$((PORT + 247))"
    printf 'root_dn = %s\nroot_password = %s\nself_sign_cert = False\n' "$ROOT_DN" "$(cat "$PW_FILE")"
    printf '[backend-userroot]\nsuffix = %s\ncreate_suffix_entry = True\nsample_entries = no\n' "$SUFFIX"
  } >"$inf"
  rundirs
  dscreate from-file "$inf" >&2 </dev/null || { rm -f "$inf"; die "dscreate failed"; }
  rm -f "$inf" "$STAMP"
  install -o dirsrv -g dirsrv -m 0640 "$root/scripts/ldap/99mattersync.ldif" "$INST_DIR/schema/99mattersync.ldif"
  wait_ldap
  dm ldapmodify >/dev/null <<EOF || die "plugin configuration failed"
dn: cn=Retro Changelog Plugin,cn=plugins,cn=config
changetype: modify
replace: nsslapd-pluginEnabled
nsslapd-pluginEnabled: on
-
replace: nsslapd-include-suffix
nsslapd-include-suffix: $SUFFIX
-
replace: nsslapd-attribute
nsslapd-attribute: nsuniqueid:targetUniqueId
-
replace: nsslapd-changelogmaxage
nsslapd-changelogmaxage: 2d

dn: cn=Content Synchronization,cn=plugins,cn=config
changetype: modify
replace: nsslapd-pluginEnabled
nsslapd-pluginEnabled: on

dn: cn=config
changetype: modify
replace: nsslapd-sizelimit
nsslapd-sizelimit: -1
-
replace: nsslapd-accesslog-logbuffering
nsslapd-accesslog-logbuffering: on
EOF
  dsctl "$INSTANCE" restart >&2 </dev/null
  wait_ldap
}

write_env() {
  cat >"$ENV_FILE.tmp" <<EOF
BENCH_LDAP_URL=$URL
BENCH_LDAP_BIND_DN="$ROOT_DN"
BENCH_LDAP_PASSWORD_FILE=$PW_FILE
BENCH_LDAP_BASE_DN=$SUFFIX
BENCH_DIRSRV_INSTANCE=$INSTANCE
EOF
  chmod 644 "$ENV_FILE.tmp"; mv "$ENV_FILE.tmp" "$ENV_FILE"
}

cmd_up() {
  [ -f "$INST_DIR/dse.ldif" ] || create
  if ! running; then rundirs; dsctl "$INSTANCE" start >&2 </dev/null; fi
  wait_ldap
  write_env
}

cmd_load() {
  local ldif=$1 hash t0
  [ -f "$ldif" ] || die "no such LDIF: $ldif"
  hash=$(sha256sum <"$ldif" | cut -d' ' -f1)
  cmd_up
  if [ "$(cat "$STAMP" 2>/dev/null)" = "$hash" ]; then
    log "already loaded: $ldif"
    return 0
  fi
  t0=$(date +%s%3N)
  log "bulk import of $ldif ($(grep -c '^dn: ' "$ldif") entries): stop, ldif2db, start"
  rm -f "$STAMP"
  dsctl "$INSTANCE" stop >&2 </dev/null
  # the server reads the file as user dirsrv: put it in the instance's own ldif directory
  install -o dirsrv -g dirsrv -m 0640 "$ldif" "$LDIF_DIR/bench-import.ldif"
  dsctl "$INSTANCE" ldif2db userroot "$LDIF_DIR/bench-import.ldif" >&2 </dev/null || die "ldif2db failed"
  rm -f "$LDIF_DIR/bench-import.ldif"
  rundirs
  dsctl "$INSTANCE" start >&2 </dev/null
  wait_ldap
  # ldif2db can report success although it read nothing: count what is there
  local want got
  want=$(grep -c '^dn: ' "$ldif")
  got=$(dm ldapsearch -LLL -b "$SUFFIX" "(objectClass=*)" 1.1 | grep -c '^dn: ' || true)
  [ "$got" = "$want" ] || die "import left $got entries, the LDIF has $want (see /var/log/dirsrv/slapd-$INSTANCE/errors)"
  echo "$hash" >"$STAMP"
  log "loaded in $(( ($(date +%s%3N) - t0) / 1000 ))s"
}

case "${1:-}" in
  up) cmd_up ;;
  load) [ $# = 2 ] || die "usage: $0 load LDIF"; cmd_load "$2" ;;
  modify) [ $# = 2 ] || die "usage: $0 modify LDIF"; dm ldapmodify -f "$2" >/dev/null ;;
  down) if running; then dsctl "$INSTANCE" stop >&2 </dev/null; fi ;;
  destroy) dsctl "$INSTANCE" remove --do-it >&2 </dev/null || true; rm -rf "$STATE" "$ENV_FILE" ;;
  status) if running; then echo "$INSTANCE: running on $URL"; else echo "$INSTANCE: stopped"; exit 3; fi ;;
  *) echo "usage: $0 up|load LDIF|modify LDIF|down|destroy|status" >&2; exit 2 ;;
esac
