#!/usr/bin/env bash
# A live FreeIPA JSON-RPC server for mattersync's tests: FreeIPA 4.12.4's own server
# framework (ipaserver: its rpcserver, plugins, ACIs and schema) from Debian's pinned,
# sha256-checked source tarball, over a 389-ds instance of its own. Debian packages only
# FreeIPA's client, so ipa-server-install cannot run here; what this script provides
# instead is in scripts/freeipa/ (server.py: login and session stand-ins and the HTTPS
# front; plugins/mattersync_fasgroup.py: a minimal fasgroup plugin; seed.json).
#
#   scripts/freeipa.sh up       install what is missing, fetch/prepare the source (cached in
#                               ~/.cache/mattersync/), create and bootstrap the instance (or
#                               restore the cached bootstrapped one), seed it, start the
#                               server, write .local/freeipa.env (idempotent)
#   scripts/freeipa.sh down     stop the server and the instance
#   scripts/freeipa.sh reset    delete the seed's and the tests' groups and users, seed again
#   scripts/freeipa.sh destroy  remove the instance and the state
#   scripts/freeipa.sh status   exit 0 when the server answers, 3 otherwise
#
# Instance `mattersync-ipa`: ldap://127.0.0.1:3392 (LDAPS port 3639 reserved, no certificate),
# base dc=rockylinux,dc=org,
# realm ROCKYLINUX.ORG. JSON-RPC at https://127.0.0.1:8443/ipa (a test CA,
# .local/freeipa/ca.pem). Passwords are generated once into .local/freeipa/ (0600).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$SCRIPT_DIR")
IPA_DIR=$SCRIPT_DIR/freeipa

IPA_VERSION=4.12.4
IPA_DEB_VERSION=4.12.4-1
# From trixie's Sources index (Checksums-Sha256 of freeipa_4.12.4.orig.tar.gz).
IPA_SHA256=367ddd1e8680b7af8c67480c1422678978229eae20b8d33c1e30a1ade9fd69d6
IPA_API_VERSION=2.254
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

INSTANCE=mattersync-ipa
HOST=127.0.0.1
LDAP_PORT=3392
LDAPS_PORT=3639
HTTPS_PORT=8443
SUFFIX=dc=rockylinux,dc=org
REALM=ROCKYLINUX.ORG
DOMAIN=rockylinux.org

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/mattersync/freeipa-$IPA_VERSION
TARBALL=$CACHE/freeipa_$IPA_VERSION.orig.tar.gz
TREE=$CACHE/tree
STATE=$REPO_ROOT/.local/freeipa
ENV_FILE=$REPO_ROOT/.local/freeipa.env
INST_DIR=/etc/dirsrv/slapd-$INSTANCE
PID_FILE=/run/dirsrv/slapd-$INSTANCE.pid
LDAPI_SOCKET=/run/slapd-$INSTANCE.socket
LDAPI="ldapi://${LDAPI_SOCKET//\//%2F}"
SERVER_PID=$STATE/server.pid
DEFAULTS_INF=/usr/share/dirsrv/inf/defaults.inf
PYTHON=/usr/bin/python3   # Debian's: the python3-* packages are installed for it
# Bump when the bootstrap changes so an existing instance is made again.
BOOTSTRAP_VERSION=2

export DEBIAN_FRONTEND=noninteractive

log() { printf '%s freeipa.sh: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# ---------------------------------------------------------------- packages

# What FreeIPA's server framework imports (checked: every dist-packages module the server,
# the bootstrap and the updater load comes from these or their dependencies), and the
# directory server.
PACKAGES=(389-ds-base ldap-utils openssl curl python3-cffi python3-cryptography python3-dbus
  python3-dnspython python3-gssapi python3-ldap python3-lxml python3-netaddr python3-pyasn1
  python3-pyasn1-modules python3-libipa-hbac python3-sss python3-requests python3-six
  python3-jwcrypto python3-pkg-resources)

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

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
  for p in "${PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_retry update -q
    apt_retry install -y -q --no-install-recommends "${missing[@]}"
  fi
  if grep -q '^with_systemd = 1' "$DEFAULTS_INF"; then
    sed -i 's/^with_systemd = 1/with_systemd = 0/' "$DEFAULTS_INF"
  fi
}

# ---------------------------------------------------------------- source

# The tarball through apt's `source`, with a private configuration (a deb-src line for
# trixie), so the system's sources and lists stay untouched.
fetch_source() {
  if [ -f "$TARBALL" ] && [ "$(sha256sum <"$TARBALL" | cut -d' ' -f1)" = "$IPA_SHA256" ]; then
    return 0
  fi
  local apt dl
  apt=$(mktemp -d)
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/dl" "$CACHE"
  printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' \
    "$DEBIAN_MIRROR" >"$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache")
  log "fetching FreeIPA $IPA_DEB_VERSION's source (apt-get source, private configuration)"
  dl=$apt/dl/freeipa_$IPA_VERSION.orig.tar.gz
  local i fetched=
  for i in 1 2 3; do
    if apt-get "${opts[@]}" update -q >&2 </dev/null \
       && (cd "$apt/dl" && apt-get "${opts[@]}" source --download-only --tar-only \
             "freeipa=$IPA_DEB_VERSION" >&2 </dev/null); then
      fetched=1
      break
    fi
    sleep 5
  done
  if [ -z "$fetched" ]; then
    # Once trixie moves past $IPA_DEB_VERSION its index no longer names it; the pool keeps
    # the orig tarball while any 4.12.4 revision is published. The hash decides either way.
    log "apt-get source freeipa=$IPA_DEB_VERSION failed; trying the mirror's pool"
    curl -fsS --retry 3 -o "$dl" "$DEBIAN_MIRROR/pool/main/f/freeipa/freeipa_$IPA_VERSION.orig.tar.gz" \
      || die "could not fetch freeipa_$IPA_VERSION.orig.tar.gz"
  fi
  [ "$(sha256sum <"$dl" | cut -d' ' -f1)" = "$IPA_SHA256" ] \
    || die "freeipa_$IPA_VERSION.orig.tar.gz does not have the pinned sha256 $IPA_SHA256"
  mv "$dl" "$TARBALL"
  rm -rf "$apt"
}

tree_fingerprint() { printf 'sha256=%s layout=1\n' "$IPA_SHA256"; }

# The files FreeIPA's `configure` would write: ipapython/version.py (from version.py.in and
# API.txt) and ipaplatform/override.py (the Debian platform).
prepare_tree() {
  if [ -f "$TREE/.mattersync-prepared" ] && [ "$(cat "$TREE/.mattersync-prepared")" = "$(tree_fingerprint)" ]; then
    return 0
  fi
  log "preparing the source tree in $TREE"
  local work num
  work=$(mktemp -d "$CACHE/tree.XXXXXX")
  tar -xzf "$TARBALL" -C "$work" --strip-components=1
  num=$(printf '%d%02d%02d' 4 12 4)
  awk '$1 == "default:" { print $2 }' "$work/API.txt" >"$work/.DEFAULT_PLUGINS"
  sed -e "s|@API_VERSION@|$IPA_API_VERSION|g" -e "s|@NUM_VERSION@|$num|g" \
      -e "s|@VERSION@|$IPA_VERSION|g" -e "s|@VENDOR_SUFFIX@||g" \
      -e "s|@KRB5_BUILD_VERSION@|$(krb5_version)|g" \
      -e "/@DEFAULT_PLUGINS@/r $work/.DEFAULT_PLUGINS" -e '/@DEFAULT_PLUGINS@/d' \
      "$work/ipapython/version.py.in" >"$work/ipapython/version.py"
  sed -e 's|@IPAPLATFORM@|debian|g' "$work/ipaplatform/override.py.in" >"$work/ipaplatform/override.py"
  tree_fingerprint >"$work/.mattersync-prepared"
  rm -rf "$TREE"
  mv "$work" "$TREE"
}

krb5_version() {
  dpkg-query -W -f='${Version}' libkrb5-3 2>/dev/null | sed 's/[-+].*//' || echo 1.20
}

install_plugin() {
  install -m 0644 "$IPA_DIR/plugins/mattersync_fasgroup.py" "$TREE/ipaserver/plugins/mattersync_fasgroup.py"
}

# ---------------------------------------------------------------- secrets and config

secret() {  # secret NAME: a generated password in $STATE/NAME.password (no newline)
  local f=$STATE/$1.password
  if [ ! -s "$f" ]; then
    (umask 077; $PYTHON -c 'import secrets,sys; sys.stdout.write(secrets.token_hex(16))' >"$f")
  fi
  chmod 0600 "$f"
}

write_ipa_conf() {
  mkdir -p "$STATE/etc" "$STATE/log"
  cat >"$STATE/etc/default.conf" <<EOF
[global]
basedn = $SUFFIX
realm = $REALM
domain = $DOMAIN
server = ipa.$DOMAIN
# FreeIPA's Referer check wants https://<host>/ipa; the test server listens on a port.
host = $HOST:$HTTPS_PORT
xmlrpc_uri = https://$HOST:$HTTPS_PORT/ipa/xml
ldap_uri = $LDAPI
enable_ra = False
ra_plugin = none
mode = production
debug = False
EOF
}

# A test CA and a server certificate for 127.0.0.1 and localhost (the HTTPS front).
ensure_tls() {
  [ -s "$STATE/ca.pem" ] && [ -s "$STATE/server.pem" ] && [ -s "$STATE/server.key" ] && return 0
  log "making the test CA and the server certificate"
  local t
  t=$(mktemp -d)
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/O=mattersync test/CN=mattersync test FreeIPA CA" \
    -keyout "$t/ca.key" -out "$t/ca.pem" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/O=mattersync test/CN=localhost" \
    -keyout "$t/server.key" -out "$t/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >"$t/ext"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
    -days 3650 -extfile "$t/ext" -out "$t/server.pem" >/dev/null 2>&1
  install -m 0644 "$t/ca.pem" "$STATE/ca.pem"
  install -m 0644 "$t/server.pem" "$STATE/server.pem"
  install -m 0600 "$t/server.key" "$STATE/server.key"
  rm -rf "$t"
}

# ---------------------------------------------------------------- instance

instance_exists() { [ -f "$INST_DIR/dse.ldif" ]; }
instance_running() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = ns-slapd ]
}
ensure_rundirs() { install -d -o dirsrv -g dirsrv -m 0770 /run/dirsrv "/run/lock/dirsrv/slapd-$INSTANCE"; }
wait_ldap() {
  local i
  for i in $(seq 1 120); do
    ldapsearch -x -H "ldap://$HOST:$LDAP_PORT" -o nettimeout=2 -s base -b "" -LLL 1.1 >/dev/null 2>&1 </dev/null && return 0
    sleep 0.5
  done
  die "instance $INSTANCE does not answer (see /var/log/dirsrv/slapd-$INSTANCE/errors)"
}
start_instance() {
  instance_running && return 0
  ensure_rundirs
  dsctl "$INSTANCE" start >&2 </dev/null
  wait_ldap
}
restart_instance() {
  ensure_rundirs
  dsctl "$INSTANCE" restart >&2 </dev/null
  wait_ldap
}

# The instance is this checkout's when it was bootstrapped by this version of the script
# with this state directory's passwords (another checkout's, or one whose .local/ was wiped,
# is made again).
bootstrap_stamp() { printf 'bootstrap=%s passwords=%s\n' "$BOOTSTRAP_VERSION" "$(cat "$STATE"/*.password | sha256sum | cut -d' ' -f1)"; }
bootstrapped() { [ -f "$INST_DIR/mattersync-ipa.bootstrapped" ] && [ "$(cat "$INST_DIR/mattersync-ipa.bootstrapped")" = "$(bootstrap_stamp)" ]; }
# The seed is applied again (reset) when seed.json or seed.py changed.
seed_stamp() { cat "$IPA_DIR/seed.json" "$IPA_DIR/seed.py" | sha256sum | cut -d' ' -f1; }

py() {  # py SCRIPT ARGS: run one of scripts/freeipa/*.py with the tree and the state
  IPA_TREE=$TREE IPA_STATE=$STATE IPA_LDAPI=$LDAPI IPA_INSTANCE=$INSTANCE \
    PYTHONDONTWRITEBYTECODE=1 \
    $PYTHON "$IPA_DIR/$1" "${@:2}" </dev/null
}

create_instance() {
  if instance_exists; then
    log "removing the instance left from an older bootstrap"
    ensure_rundirs
    dsctl "$INSTANCE" remove --do-it >&2 </dev/null
  fi
  log "creating instance $INSTANCE (dscreate)"
  local inf
  inf=$(umask 077; mktemp "$STATE/dscreate.XXXXXX")
  {
    printf '[general]\nfull_machine_name = localhost\nstart = True\nstrict_host_checking = False\n'
    printf '[slapd]\ninstance_name = %s\nport = %s\nsecure_port = %s\n' "$INSTANCE" "$LDAP_PORT" "$LDAPS_PORT"
    # No certificate: the tests reach this instance over loopback ldap:// (and dscreate's
    # self-signed CA is shared with scripts/dirsrv.sh's instance, made at the same time).
    printf 'root_dn = cn=Directory Manager\nroot_password = %s\nself_sign_cert = False\n' "$(cat "$STATE/dm.password")"
    printf '[backend-userroot]\nsuffix = %s\ncreate_suffix_entry = True\nsample_entries = no\n' "$SUFFIX"
  } >"$inf"
  ensure_rundirs
  dscreate from-file "$inf" >&2 </dev/null || { rm -f "$inf"; die "dscreate failed"; }
  rm -f "$inf"
  log "installing FreeIPA's schema and the FAS schema"
  local f
  for f in 60kerberos 60samba 60ipaconfig 60basev2 60basev3 60basev4 60ipapk11 60ipadns \
      60certificate-profiles 61kerberos-ipav3 65ipacertstore 65ipasudo 70ipaotp 70topology \
      71idviews 72domainlevels 73certmap 15rfc2307bis 15rfc4876 05rfc2247; do
    install -o dirsrv -g dirsrv -m 0440 "$TREE/install/share/$f.ldif" "$INST_DIR/schema/$f.ldif"
  done
  install -o dirsrv -g dirsrv -m 0440 "$IPA_DIR/89fas.ldif" "$INST_DIR/schema/89fas.ldif"
  restart_instance
  log "bootstrapping FreeIPA's tree"
  py bootstrap.py tree
  restart_instance
  py bootstrap.py update
  # What packaging/ tells a RAS admin to apply for `mattersync serve`'s syncrepl: the retro
  # changelog over the accounts too, and the Sync Request control for the system account.
  log "applying packaging/freeipa-syncrepl.ldif"
  ldapmodify -Q -Y EXTERNAL -H "$LDAPI" -f "$REPO_ROOT/packaging/freeipa-syncrepl.ldif" >/dev/null </dev/null \
    || die "packaging/freeipa-syncrepl.ldif did not apply"
  # The restart, with a snapshot of the bootstrapped instance taken while it is stopped.
  ensure_rundirs
  dsctl "$INSTANCE" stop >&2 </dev/null
  save_snapshot
  dsctl "$INSTANCE" start >&2 </dev/null
  wait_ldap
  finish_instance
}

# What every new instance gets last: the seed (with this state directory's passwords).
finish_instance() {
  rm -f "$STATE/builtin.json"  # what the seed finds before it, written by the seed
  py bootstrap.py seed
  bootstrap_stamp >"$INST_DIR/mattersync-ipa.bootstrapped"
  seed_stamp >"$STATE/seed.stamp"
}

# ---------------------------------------------------------------- bootstrapped snapshot
# A bootstrapped instance before its seed (no account passwords in it) is kept in the cache,
# keyed by everything that made it, so that making the instance again (after `destroy`, or
# for a new .local/) restores it in seconds instead of bootstrapping for a minute.

snapshot_file() {
  local key
  key=$(cat "$SCRIPT_DIR/freeipa.sh" "$IPA_DIR/bootstrap.py" "$IPA_DIR/ipa_env.py" "$IPA_DIR/89fas.ldif" \
    "$IPA_DIR"/plugins/*.py "$IPA_DIR"/stubs/*/*.py "$REPO_ROOT/packaging/freeipa-syncrepl.ldif" \
    | { cat; printf '%s %s' "$IPA_SHA256" "$(dpkg-query -W -f='${Version}' 389-ds-base)"; } \
    | sha256sum | cut -c1-16)
  echo "$CACHE/instance-$key.tar.gz"
}

save_snapshot() {
  local out tmp
  out=$(snapshot_file)
  rm -f "$CACHE"/instance-*.tar.gz
  tmp=$(mktemp "$CACHE/instance.XXXXXX")
  # gzip -1: 160 MB of mostly preallocated database files become about 14 MB in a second.
  if tar -C / -cf - "etc/dirsrv/slapd-$INSTANCE" "var/lib/dirsrv/slapd-$INSTANCE" | gzip -1 >"$tmp"; then
    mv "$tmp" "$out"
  else
    rm -f "$tmp"
    log "could not save the snapshot (not fatal)"
  fi
}

restore_snapshot() {  # restore_snapshot: 0 when the instance came back from the cache
  local snap
  snap=$(snapshot_file)
  [ -f "$snap" ] || return 1
  log "restoring the bootstrapped instance from $snap"
  if instance_exists; then
    ensure_rundirs
    dsctl "$INSTANCE" remove --do-it >&2 </dev/null
  fi
  tar -C / -xzf "$snap" || return 1
  install -d -o dirsrv -g dirsrv -m 0750 "/var/log/dirsrv/slapd-$INSTANCE"
  ensure_rundirs
  dsctl "$INSTANCE" start >&2 </dev/null || return 1
  wait_ldap
  # This state directory's Directory Manager password (the snapshot has its maker's),
  # set over LDAPI as root, from a file.
  local ldif
  ldif=$(umask 077; mktemp "$STATE/rootpw.XXXXXX")
  printf 'dn: cn=config\nchangetype: modify\nreplace: nsslapd-rootpw\nnsslapd-rootpw: %s\n' \
    "$(cat "$STATE/dm.password")" >"$ldif"
  ldapmodify -Q -Y EXTERNAL -H "$LDAPI" -f "$ldif" >/dev/null </dev/null || { rm -f "$ldif"; return 1; }
  rm -f "$ldif"
  finish_instance
}

# ---------------------------------------------------------------- JSON-RPC server

server_running() { [ -f "$SERVER_PID" ] && kill -0 "$(cat "$SERVER_PID")" 2>/dev/null; }
server_answers() {
  curl -fsS -o /dev/null --max-time 3 --cacert "$STATE/ca.pem" "https://$HOST:$HTTPS_PORT/ipa/ping" 2>/dev/null
}
server_fingerprint() { cat "$IPA_DIR"/*.py "$IPA_DIR"/plugins/*.py "$STATE/etc/default.conf" | sha256sum | cut -d' ' -f1; }
start_server() {
  if server_running && server_answers && [ "$(cat "$STATE/server.fingerprint" 2>/dev/null)" = "$(server_fingerprint)" ]; then
    return 0
  fi
  stop_server
  log "starting the JSON-RPC server on https://$HOST:$HTTPS_PORT"
  # setsid and no inherited descriptors: the server must not hold the caller's pipes.
  IPA_TREE=$TREE IPA_STATE=$STATE IPA_LDAPI=$LDAPI IPA_HTTPS_PORT=$HTTPS_PORT \
    PYTHONDONTWRITEBYTECODE=1 setsid $PYTHON "$IPA_DIR/server.py" \
    </dev/null >>"$STATE/log/server.out" 2>&1 &
  echo $! >"$SERVER_PID"
  server_fingerprint >"$STATE/server.fingerprint"
  local i
  for i in $(seq 1 120); do
    server_answers && return 0
    kill -0 "$(cat "$SERVER_PID")" 2>/dev/null || { tail -n 30 "$STATE/log/server.out" >&2; die "the server exited"; }
    sleep 0.25
  done
  tail -n 30 "$STATE/log/server.out" >&2
  die "the server does not answer"
}
stop_server() {
  if server_running; then
    kill "$(cat "$SERVER_PID")" 2>/dev/null || true
    for _ in $(seq 1 40); do server_running || break; sleep 0.1; done
  fi
  rm -f "$SERVER_PID"
}

write_env() {
  local tmp
  tmp=$(mktemp "$ENV_FILE.XXXXXX")
  cat >"$tmp" <<EOF
MATTERSYNC_IPA_URL=https://$HOST:$HTTPS_PORT
MATTERSYNC_IPA_CA_FILE=$STATE/ca.pem
MATTERSYNC_IPA_USER=mattersync-admin
MATTERSYNC_IPA_PASSWORD_FILE=$STATE/mattersync-admin.password
MATTERSYNC_IPA_UNPRIVILEGED_USER=nobody-special
MATTERSYNC_IPA_UNPRIVILEGED_PASSWORD_FILE=$STATE/nobody-special.password
MATTERSYNC_IPA_MANAGER_USER=neil
MATTERSYNC_IPA_MANAGER_PASSWORD_FILE=$STATE/neil.password
MATTERSYNC_IPA_LDAP_URL=ldap://$HOST:$LDAP_PORT
MATTERSYNC_IPA_LDAP_BASE_DN=$SUFFIX
MATTERSYNC_IPA_DM_PASSWORD_FILE=$STATE/dm.password
MATTERSYNC_IPA_SYSACCOUNT_DN=uid=mattersync,cn=sysaccounts,cn=etc,$SUFFIX
MATTERSYNC_IPA_SYSACCOUNT_PASSWORD_FILE=$STATE/sysaccount.password
MATTERSYNC_IPA_CONTROL_URL=https://$HOST:$HTTPS_PORT/ipa/_test
MATTERSYNC_IPA_INSTANCE=$INSTANCE
EOF
  chmod 0644 "$tmp"
  mv "$tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  need_root
  local start
  start=$(date +%s)
  mkdir -p "$STATE"
  chmod 0700 "$STATE"
  ensure_packages
  fetch_source
  prepare_tree
  install_plugin
  local s
  for s in dm admin mattersync-admin nobody-special neil sysaccount member; do secret "$s"; done
  write_ipa_conf
  ensure_tls
  if ! bootstrapped; then
    stop_server
    restore_snapshot || create_instance
  else
    start_instance
    if [ "$(cat "$STATE/seed.stamp" 2>/dev/null)" != "$(seed_stamp)" ]; then
      log "the seed changed: applying it again"
      py seed.py reset
      seed_stamp >"$STATE/seed.stamp"
    fi
  fi
  start_server
  write_env
  log "up in $(( $(date +%s) - start ))s: https://$HOST:$HTTPS_PORT/ipa, ldap://$HOST:$LDAP_PORT (env in $ENV_FILE)"
}

cmd_down() {
  need_root
  stop_server
  if instance_exists && instance_running; then dsctl "$INSTANCE" stop >&2 </dev/null; fi
  log "down"
}

cmd_reset() {
  need_root
  instance_running || die "$INSTANCE is not running (run: $0 up)"
  py seed.py reset
  log "reset done"
}

cmd_destroy() {
  need_root
  stop_server
  if instance_exists; then ensure_rundirs; dsctl "$INSTANCE" remove --do-it >&2 </dev/null; fi
  rm -rf "$STATE" "$ENV_FILE"
}

cmd_status() {
  if instance_running && server_running && server_answers; then
    echo "freeipa: running (https://$HOST:$HTTPS_PORT/ipa, ldap://$HOST:$LDAP_PORT)"
    return 0
  fi
  echo "freeipa: not running"
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
