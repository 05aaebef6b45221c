#!/usr/bin/env bash
# The PostgreSQL cluster the PostgreSQL ledger's tests run against: a cluster of its own
# ("ledger", 127.0.0.1:5433) so that tests may restart it without touching Mattermost's,
# with TLS from a test CA (certificate for 127.0.0.1 and localhost).
#
#   scripts/ledger-pg.sh up       install PostgreSQL if missing, create and start the cluster,
#                                 the role and a fresh test database; write .local/ledger-pg.env
#   scripts/ledger-pg.sh down     stop the cluster
#   scripts/ledger-pg.sh restart  restart the cluster (tests of a PostgreSQL restart use it)
#   scripts/ledger-pg.sh reset    drop and recreate the test database, then `up`
#   scripts/ledger-pg.sh status   exit 0 when the cluster accepts connections
#
# Secrets (the role's password) are files of mode 0600, never arguments.
set -euo pipefail
umask 077

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# A second cluster for the test that restarts PostgreSQL (so that no other test sees it):
#   MATTERSYNC_LEDGER_PG_CLUSTER=ledger2 MATTERSYNC_LEDGER_PG_PORT=5434 scripts/ledger-pg.sh up
# writes its details as MATTERSYNC_LEDGER2_PG_* to .local/ledger2-pg.env.
cluster=${MATTERSYNC_LEDGER_PG_CLUSTER:-ledger}
[[ "$cluster" =~ ^[a-z][a-z0-9]*$ ]] || { echo "bad cluster name" >&2; exit 2; }
state=$root/.local/$cluster-pg
envfile=$root/.local/$cluster-pg.env
prefix=MATTERSYNC_$(tr a-z A-Z <<<"$cluster")_PG
port=${MATTERSYNC_LEDGER_PG_PORT:-5433}
role=mattersync
db=mattersync_test

log() { printf '%s ledger-pg.sh: %s\n' "$(date -u +%FT%T.%3NZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
as_postgres() { (cd / && runuser -u postgres -- "$@"); }
close_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}
detached() { ( close_fds; "$@" ); }

pg_version() {
  local v best=""
  for v in $(ls /usr/lib/postgresql 2>/dev/null | sort -n); do
    [ -x "/usr/lib/postgresql/$v/bin/postgres" ] && best=$v
  done
  echo "$best"
}

install_pg() {
  if [ -z "$(pg_version)" ] || ! command -v pg_createcluster >/dev/null; then
    log "installing PostgreSQL"
    apt-get -o DPkg::Lock::Timeout=600 install -y -q postgresql openssl >/dev/null </dev/null
  fi
  command -v openssl >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y -q openssl >/dev/null </dev/null
}

# A test CA and a server certificate for 127.0.0.1 and localhost, made once.
certs() {
  mkdir -p "$state"
  [ -s "$state/server.crt" ] && return 0
  log "making the test CA and server certificate"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mattersync ledger test CA" \
    -keyout "$state/ca.key" -out "$state/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$state/server.key" -out "$state/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$state/san.ext"
  openssl x509 -req -in "$state/server.csr" -CA "$state/ca.crt" -CAkey "$state/ca.key" \
    -CAcreateserial -days 3650 -extfile "$state/san.ext" -out "$state/server.crt" 2>/dev/null
  chmod 644 "$state/ca.crt" "$state/server.crt"
}

password() {
  if [ ! -s "$state/password" ]; then
    python3 -c 'import secrets; print(secrets.token_hex(20), end="")' >"$state/password"
  fi
  cat "$state/password"
}

online() { pg_lsclusters -h | awk -v c="$cluster" '$2 == c && $4 == "online" { f = 1 } END { exit !f }'; }

up() {
  install_pg
  certs
  local v
  v=$(pg_version)
  [ -n "$v" ] || die "no PostgreSQL server binaries"
  if ! pg_lsclusters -h | awk -v c="$cluster" '$2 == c { f = 1 } END { exit !f }'; then
    log "creating cluster $v/$cluster on port $port"
    pg_createcluster "$v" "$cluster" -p "$port" >/dev/null
  fi
  local conf=/etc/postgresql/$v/$cluster
  # The server reads its key as the postgres user.
  install -o postgres -g postgres -m 600 "$state/server.key" "/var/lib/postgresql/$v/$cluster.key"
  install -o postgres -g postgres -m 644 "$state/server.crt" "/var/lib/postgresql/$v/$cluster.crt"
  cat >"$conf/conf.d/mattersync.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
ssl = on
ssl_cert_file = '/var/lib/postgresql/$v/$cluster.crt'
ssl_key_file = '/var/lib/postgresql/$v/$cluster.key'
max_connections = 200
CONF
  chmod 644 "$conf/conf.d/mattersync.conf"
  if ! online; then
    log "starting cluster $v/$cluster"
    detached pg_ctlcluster "$v" "$cluster" start >&2
  else
    # The certificate may be new (another checkout's state): a reload takes it.
    pg_ctlcluster "$v" "$cluster" reload >&2
  fi
  local i
  for i in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 0.5
  done
  pg_isready -q -h 127.0.0.1 -p "$port" || die "cluster $cluster does not accept connections on 127.0.0.1:$port"
  local pw
  pw=$(password)
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres >/dev/null <<SQL
SELECT format('CREATE ROLE %I LOGIN', '$role') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$role') \gexec
ALTER ROLE $role WITH LOGIN PASSWORD '$pw';
SELECT format('CREATE DATABASE %I OWNER %I ENCODING ''UTF8'' TEMPLATE template0', '$db', '$role')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$db') \gexec
SQL
  cat >"$envfile" <<ENV
${prefix}_URL=postgres://$role@127.0.0.1:$port/$db?sslmode=disable
${prefix}_TLS_URL=postgres://$role@127.0.0.1:$port/$db
${prefix}_PASSWORD_FILE=$state/password
${prefix}_CA_FILE=$state/ca.crt
${prefix}_PORT=$port
ENV
  log "ready on 127.0.0.1:$port (database $db)"
}

down() {
  local v
  v=$(pg_version)
  [ -n "$v" ] || return 0
  if online; then
    log "stopping cluster $v/$cluster"
    pg_ctlcluster "$v" "$cluster" stop -m fast >&2
  fi
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  restart)
    v=$(pg_version)
    detached pg_ctlcluster "$v" "$cluster" restart -m fast >&2
    ;;
  reset)
    if online; then
      as_postgres psql -X -q -p "$port" -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    fi
    up
    ;;
  status) pg_isready -q -h 127.0.0.1 -p "$port" ;;
  *) echo "usage: $0 up|down|restart|reset|status" >&2; exit 2 ;;
esac
