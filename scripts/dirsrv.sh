#!/usr/bin/env bash
# Real 389 Directory Server for mattersync's tests (the LDAP server inside FreeIPA).
#
#   scripts/dirsrv.sh up       install if needed, create/configure/start the instance,
#                              load the seed if it is not loaded, write .local/dirsrv.env
#                              (idempotent; a second run with the instance up is fast)
#   scripts/dirsrv.sh down     stop the instance
#   scripts/dirsrv.sh reset    delete every entry under the suffix and reload the seed
#   scripts/dirsrv.sh destroy  remove the instance (keeps .local/dirsrv/dm.password)
#   scripts/dirsrv.sh status   print the state; exit 0 when running, 3 otherwise
#
# Instance `mattersync-test`: ldap://127.0.0.1:3389, ldaps://127.0.0.1:3636 (self-signed
# CA exported to .local/dirsrv/ca.pem; the server certificate names localhost and
# 127.0.0.1). Plugins as on FreeIPA: memberOf (nested, scoped to the suffix), Retro
# Changelog (including the suffix), Content Synchronization (syncrepl).
# The seed is scripts/seed.py; the schema is scripts/ldap/99mattersync.ldif.
#
# The Directory Manager password is generated once into .local/dirsrv/dm.password
# (0600) and is only ever passed to tools through files, never on a command line.
# Needs root (installs packages, writes /etc/dirsrv). No systemd required.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$SCRIPT_DIR")

# DIRSRV_INSTANCE / DIRSRV_PORT / DIRSRV_SECURE_PORT make another instance (its own env,
# seed stamp and CA file, suffixed with its name), e.g. the one tests restart at will:
#   DIRSRV_INSTANCE=mattersync-restart DIRSRV_PORT=3391 DIRSRV_SECURE_PORT=3638 scripts/dirsrv.sh up
INSTANCE=${DIRSRV_INSTANCE:-mattersync-test}
HOST=127.0.0.1
PORT=${DIRSRV_PORT:-3389}
SECURE_PORT=${DIRSRV_SECURE_PORT:-3636}
[ "$INSTANCE" = mattersync-test ] && FILE_SUFFIX= || FILE_SUFFIX=-$INSTANCE
SUFFIX=dc=rockylinux,dc=org
ROOT_DN="cn=Directory Manager"
LDAP_URL="ldap://$HOST:$PORT"
LDAPS_URL="ldaps://$HOST:$SECURE_PORT"

LOCAL_DIR=$REPO_ROOT/.local
STATE_DIR=$LOCAL_DIR/dirsrv
PW_FILE=$STATE_DIR/dm.password
CA_FILE=$STATE_DIR/ca$FILE_SUFFIX.pem
SEED_STAMP=$STATE_DIR/seed$FILE_SUFFIX.sha256
ENV_FILE=$LOCAL_DIR/dirsrv$FILE_SUFFIX.env

INST_DIR=/etc/dirsrv/slapd-$INSTANCE
PID_FILE=/run/dirsrv/slapd-$INSTANCE.pid
LDAPI_SOCKET=/run/slapd-$INSTANCE.socket
DEFAULTS_INF=/usr/share/dirsrv/inf/defaults.inf
SCHEMA_SRC=$SCRIPT_DIR/ldap/99mattersync.ldif
SCHEMA_NAME=99mattersync.ldif
SEED=$SCRIPT_DIR/seed.py
# Written into the instance directory once it is configured; removed with the instance.
CONFIG_STAMP=$INST_DIR/mattersync.configured
# Bump when configure() changes so existing instances are reconfigured.
CONFIG_VERSION=1

export DEBIAN_FRONTEND=noninteractive
export LDAPTLS_REQCERT=never  # our own ldap* calls use plain LDAP; be safe if ldap.conf says otherwise

log() { printf '%s dirsrv.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# ---------------------------------------------------------------- packages

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# DPkg::Lock::Timeout makes apt wait for the dpkg lock; `update` takes the lists lock,
# which it does not wait for, so retry for a while when another apt run holds it.
apt_retry() {
  local i
  for i in $(seq 1 60); do
    apt-get -o DPkg::Lock::Timeout=600 "$@" >&2 </dev/null && return 0
    log "apt-get $1 failed (attempt $i); retrying in 10 s"
    sleep 10
  done
  die "apt-get $* kept failing"
}

ensure_packages() {
  local missing=() p
  for p in 389-ds-base ldap-utils libnss3-tools python3; do
    pkg_installed "$p" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (apt waits for the dpkg lock if someone else holds it)"
    apt_retry update -q
    apt_retry install -y -q "${missing[@]}"
  fi
  # No systemd here: make dscreate/dsctl start ns-slapd themselves. A package upgrade
  # restores the file, so check every time (cheap).
  if grep -q '^with_systemd = 1' "$DEFAULTS_INF"; then
    log "setting with_systemd = 0 in $DEFAULTS_INF"
    sed -i 's/^with_systemd = 1/with_systemd = 0/' "$DEFAULTS_INF"
  fi
}

# ---------------------------------------------------------------- secrets

ensure_password() {
  mkdir -p "$STATE_DIR"
  chmod 0700 "$STATE_DIR"
  if [ ! -s "$PW_FILE" ]; then
    log "generating Directory Manager password into $PW_FILE"
    # No trailing newline: `ldap* -y FILE` uses the whole file as the password.
    (umask 077; python3 -c 'import secrets,sys; sys.stdout.write(secrets.token_hex(20))' >"$PW_FILE")
  fi
  chmod 0600 "$PW_FILE"
}

# ---------------------------------------------------------------- instance state

instance_exists() { [ -f "$INST_DIR/dse.ldif" ]; }

instance_running() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = ns-slapd ]
}

ldap_answers() {  # anonymous read of the root DSE
  ldapsearch -x -H "$LDAP_URL" -o nettimeout=2 -s base -b "" -LLL "(objectClass=*)" vendorVersion \
    >/dev/null 2>&1 </dev/null
}

wait_ldap() {
  local i
  for i in $(seq 1 120); do
    ldap_answers && return 0
    sleep 0.5
  done
  die "instance $INSTANCE does not answer on $LDAP_URL (see /var/log/dirsrv/slapd-$INSTANCE/errors)"
}

dm() {  # dm TOOL ARGS...: run an ldap tool bound as Directory Manager (password from file)
  local tool=$1; shift
  "$tool" -x -H "$LDAP_URL" -D "$ROOT_DN" -y "$PW_FILE" "$@"
}

ensure_rundirs() {
  # /run is a tmpfs: after a reboot of the machine/container these are gone.
  install -d -o dirsrv -g dirsrv -m 0770 /run/dirsrv "/run/lock/dirsrv/slapd-$INSTANCE"
}

# ---------------------------------------------------------------- create / configure

create_instance() {
  local inf
  log "creating instance $INSTANCE (dscreate, ~10-20 s)"
  inf=$(umask 077; mktemp "$STATE_DIR/dscreate.XXXXXX.inf")
  # shellcheck disable=SC2064
  trap "rm -f '$inf'" EXIT
  {
    printf '[general]\nfull_machine_name = localhost\nstart = True\nstrict_host_checking = False\n'
    printf '[slapd]\ninstance_name = %s\nport = %s\nsecure_port = %s\n' "$INSTANCE" "$PORT" "$SECURE_PORT"
    printf 'root_dn = %s\nroot_password = %s\n' "$ROOT_DN" "$(cat "$PW_FILE")"
    printf 'self_sign_cert = True\nself_sign_cert_valid_months = 120\n'
    printf '[backend-userroot]\nsuffix = %s\ncreate_suffix_entry = True\nsample_entries = no\n' "$SUFFIX"
  } >"$inf"
  ensure_rundirs
  dscreate from-file "$inf" >&2 </dev/null
  rm -f "$inf"
  trap - EXIT
  rm -f "$SEED_STAMP"
}

# The certificate dscreate issues names only full_machine_name (localhost), but the
# tests connect to ldaps://127.0.0.1. Issue a new one with DNS:localhost and
# IP:127.0.0.1 from the same CA: dscreate keeps that CA's key in /etc/dirsrv/ssca
# (shared by all instances on the machine); the instance database holds only the CA
# certificate. Takes effect at the next restart.
SSCA_DIR=/etc/dirsrv/ssca
reissue_server_cert() {
  local work
  [ -f "$SSCA_DIR/pwdfile.txt" ] || { log "no $SSCA_DIR: keeping dscreate's certificate"; return 0; }
  log "reissuing Server-Cert with SAN DNS:localhost, IP:127.0.0.1"
  work=$(mktemp -d)
  head -c 2048 /dev/urandom >"$work/noise"
  certutil -R -d "sql:$INST_DIR" -f "$INST_DIR/pwdfile.txt" -z "$work/noise" \
    -s "CN=localhost,O=mattersync-test" --extSAN "dns:localhost,ip:127.0.0.1" \
    --keyUsage digitalSignature,keyEncipherment --nsCertType sslServer \
    --extKeyUsage serverAuth -k rsa -g 2048 -a -o "$work/server.csr" >/dev/null 2>&1 </dev/null \
    || die "certutil: could not create the certificate request"
  certutil -C -d "sql:$SSCA_DIR" -f "$SSCA_DIR/pwdfile.txt" -c Self-Signed-CA -v 60 \
    -a -i "$work/server.csr" -o "$work/server.crt" >/dev/null 2>&1 </dev/null \
    || die "certutil: could not sign the certificate request"
  # Drop the old certificate (its key stays as an unused orphan), add the new one.
  while certutil -L -d "sql:$INST_DIR" -n Server-Cert >/dev/null 2>&1; do
    certutil -D -d "sql:$INST_DIR" -f "$INST_DIR/pwdfile.txt" -n Server-Cert </dev/null || break
  done
  certutil -A -d "sql:$INST_DIR" -f "$INST_DIR/pwdfile.txt" -n Server-Cert -t ',,' -a -i "$work/server.crt" </dev/null \
    || die "certutil: could not import the new certificate"
  rm -rf "$work"
}

configure_instance() {
  log "installing schema $SCHEMA_NAME"
  install -o dirsrv -g dirsrv -m 0640 "$SCHEMA_SRC" "$INST_DIR/schema/$SCHEMA_NAME"

  log "configuring plugins: memberOf (nested, scope $SUFFIX), retro changelog, content sync"
  # `replace` makes this safe to repeat.
  dm ldapmodify >/dev/null <<EOF || die "plugin configuration failed"
dn: cn=MemberOf Plugin,cn=plugins,cn=config
changetype: modify
replace: nsslapd-pluginEnabled
nsslapd-pluginEnabled: on
-
replace: memberOfGroupAttr
memberOfGroupAttr: member
-
replace: memberOfAttr
memberOfAttr: memberOf
-
replace: memberOfSkipNested
memberOfSkipNested: off
-
replace: memberOfEntryScope
memberOfEntryScope: $SUFFIX

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
EOF

  if ! certutil -L -d "sql:$INST_DIR" -n Server-Cert 2>/dev/null | grep -q 'IP Address: 127.0.0.1'; then
    reissue_server_cert
    # The backends' attribute-encryption keys are wrapped with the old certificate's
    # key; drop them so the server makes new ones at the restart (else it logs ERR
    # attrcrypt_unwrap_key at every start). No attribute is encrypted here.
    local keys
    keys=$(mktemp)
    dm ldapsearch -LLL -o ldif-wrap=no -b "cn=ldbm database,cn=plugins,cn=config" \
      "(nsSymmetricKey=*)" 1.1 | sed -n 's/^dn: //p' >"$keys"
    if [ -s "$keys" ]; then dm ldapdelete -f "$keys" || die "could not drop old attribute keys"; fi
    rm -f "$keys"
  fi

  log "restarting $INSTANCE"
  dsctl "$INSTANCE" restart >&2 </dev/null
  wait_ldap
  config_fingerprint >"$CONFIG_STAMP"
}

config_fingerprint() {
  printf 'config=%s schema=%s\n' "$CONFIG_VERSION" "$(sha256sum <"$SCHEMA_SRC" | cut -d' ' -f1)"
}

configured() { [ -f "$CONFIG_STAMP" ] && [ "$(cat "$CONFIG_STAMP")" = "$(config_fingerprint)" ]; }

# The password file is the source of truth. If the instance has another password (the
# file was deleted and regenerated), set it over LDAPI as root (autobind maps root to
# Directory Manager), passing it in an LDIF file.
ensure_root_password() {
  dm ldapwhoami >/dev/null 2>&1 && return 0
  log "Directory Manager password differs from $PW_FILE; resetting it over LDAPI"
  local ldif
  ldif=$(umask 077; mktemp)
  printf 'dn: cn=config\nchangetype: modify\nreplace: nsslapd-rootpw\nnsslapd-rootpw: %s\n' \
    "$(cat "$PW_FILE")" >"$ldif"
  ldapmodify -Q -Y EXTERNAL -H "ldapi://${LDAPI_SOCKET//\//%2F}" -f "$ldif" >/dev/null </dev/null \
    || { rm -f "$ldif"; die "could not reset the Directory Manager password"; }
  rm -f "$ldif"
  dm ldapwhoami >/dev/null || die "bind as $ROOT_DN still fails"
}

# ---------------------------------------------------------------- seed

seed_ldif() { python3 "$SEED" ldif; }

delete_all() {
  local list
  list=$(mktemp)
  dm ldapsearch -LLL -o ldif-wrap=no -s one -b "$SUFFIX" "(objectClass=*)" 1.1 \
    | sed -n 's/^dn: //p' >"$list"
  if [ -s "$list" ]; then
    log "deleting all entries under $SUFFIX ($(wc -l <"$list") subtrees)"
    # -r: delete each subtree, leaves first.
    dm ldapdelete -r -f "$list" || { rm -f "$list"; die "deleting entries failed"; }
  fi
  rm -f "$list"
}

load_seed() {  # load_seed LDIF_FILE HASH
  local n
  n=$(grep -c '^dn: ' "$1")
  log "loading seed ($n entries)"
  dm ldapadd -f "$1" >/dev/null || die "loading the seed failed"
  printf '%s\n' "$2" >"$SEED_STAMP"
}

reset_data() {
  local ldif hash
  ldif=$(mktemp)
  seed_ldif >"$ldif"
  hash=$(sha256sum <"$ldif" | cut -d' ' -f1)
  rm -f "$SEED_STAMP"
  delete_all
  load_seed "$ldif" "$hash"
  rm -f "$ldif"
}

ensure_seed() {
  local ldif hash last
  ldif=$(mktemp)
  seed_ldif >"$ldif"
  hash=$(sha256sum <"$ldif" | cut -d' ' -f1)
  last=$(sed -n 's/^dn: //p' "$ldif" | tail -n 1)
  if [ -f "$SEED_STAMP" ] && [ "$(cat "$SEED_STAMP")" = "$hash" ] \
     && dm ldapsearch -LLL -s base -b "$last" "(objectClass=*)" 1.1 >/dev/null 2>&1; then
    rm -f "$ldif"
    return 0
  fi
  log "seed not loaded or changed: reloading"
  rm -f "$SEED_STAMP"
  delete_all
  load_seed "$ldif" "$hash"
  rm -f "$ldif"
}

# ---------------------------------------------------------------- outputs

export_ca() {
  local tmp
  tmp=$(mktemp "$STATE_DIR/ca.XXXXXX")
  certutil -L -d "sql:$INST_DIR" -n Self-Signed-CA -a >"$tmp" </dev/null \
    || { rm -f "$tmp"; die "could not export the CA certificate"; }
  if cmp -s "$tmp" "$CA_FILE"; then rm -f "$tmp"; else chmod 0644 "$tmp"; mv "$tmp" "$CA_FILE"; fi
}

write_env() {
  local tmp
  tmp=$(mktemp "$ENV_FILE.XXXXXX")
  cat >"$tmp" <<EOF
MATTERSYNC_LDAP_URL=$LDAP_URL
MATTERSYNC_LDAPS_URL=$LDAPS_URL
MATTERSYNC_LDAP_BIND_DN="$ROOT_DN"
MATTERSYNC_LDAP_PASSWORD_FILE=$PW_FILE
MATTERSYNC_LDAP_BASE_DN=$SUFFIX
MATTERSYNC_LDAP_CA_FILE=$CA_FILE
MATTERSYNC_DIRSRV_INSTANCE=$INSTANCE
EOF
  chmod 0644 "$tmp"
  if cmp -s "$tmp" "$ENV_FILE"; then rm -f "$tmp"; else mv "$tmp" "$ENV_FILE"; fi
}

# ---------------------------------------------------------------- commands

cmd_up() {
  need_root
  ensure_packages
  ensure_password
  if ! instance_exists; then
    create_instance
  fi
  if ! instance_running; then
    log "starting $INSTANCE"
    ensure_rundirs
    dsctl "$INSTANCE" start >&2 </dev/null
  fi
  wait_ldap
  ensure_root_password
  configured || configure_instance
  ensure_seed
  export_ca
  write_env
  log "up: $LDAP_URL $LDAPS_URL base $SUFFIX (env in $ENV_FILE)"
}

cmd_down() {
  need_root
  if instance_exists && instance_running; then
    log "stopping $INSTANCE"
    dsctl "$INSTANCE" stop >&2 </dev/null
  else
    log "$INSTANCE is not running"
  fi
}

cmd_reset() {
  need_root
  instance_exists && instance_running || die "$INSTANCE is not running (run: $0 up)"
  ensure_password
  ensure_root_password
  reset_data
  log "reset done"
}

cmd_destroy() {
  need_root
  if instance_exists; then
    log "removing instance $INSTANCE"
    ensure_rundirs
    dsctl "$INSTANCE" remove --do-it >&2 </dev/null
  else
    log "$INSTANCE does not exist"
  fi
  rm -f "$SEED_STAMP" "$CA_FILE" "$ENV_FILE"
}

cmd_status() {
  local state=absent
  if ! command -v ns-slapd >/dev/null 2>&1 && [ ! -x /usr/sbin/ns-slapd ]; then
    state=not-installed
  elif instance_exists; then
    if instance_running; then state=running; else state=stopped; fi
  fi
  echo "instance: $INSTANCE ($state)"
  if [ "$state" = running ]; then
    echo "ldap:     $LDAP_URL"
    echo "ldaps:    $LDAPS_URL"
    echo "base:     $SUFFIX"
    if [ -s "$PW_FILE" ] && [ -f "$SEED_STAMP" ]; then
      echo "seed:     loaded ($(cut -c1-12 "$SEED_STAMP"))"
    else
      echo "seed:     unknown"
    fi
    [ -f "$ENV_FILE" ] && echo "env:      $ENV_FILE"
    return 0
  fi
  return 3
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  reset) cmd_reset ;;
  destroy) cmd_destroy ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|reset|destroy|status" >&2; exit 2 ;;
esac
