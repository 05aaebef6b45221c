#!/usr/bin/env bash
# The Mattermost server mattersync's tests run against, on 127.0.0.1:8065, backed by the
# machine's PostgreSQL. State lives in <repo>/.local/mattermost/ (gitignored).
#
#   scripts/mattermost.sh up       install PostgreSQL if missing, start it, create the
#                                  database, build/get Mattermost (scripts/mm-build.sh), start
#                                  it, bootstrap admin + token + seed (scripts/mm_bootstrap.py),
#                                  write .local/mattermost.env. Idempotent; fast when done.
#   scripts/mattermost.sh down     stop Mattermost, then PostgreSQL
#   scripts/mattermost.sh restart  stop Mattermost and `up` again (e.g. after changing MM_* env)
#   scripts/mattermost.sh reset    stop Mattermost, drop and recreate its database and files, `up`
#   scripts/mattermost.sh status   show what runs; exit 0 only when Mattermost answers
#
# MATTERSYNC_MM_BUILD (primary) picks the pinned build (scripts/mm-build.sh; `secondary` is the
# older line of scripts/mattermost-secondary.sh), MATTERSYNC_MM_STOP_PG=false makes `down`
# leave PostgreSQL running.
# MATTERSYNC_MM_PORT (8065) and MATTERSYNC_MM_DB (mattermost: database and role name) allow a
# second instance, e.g. from another checkout; state lives in that checkout's .local/. A second
# instance from the same checkout also needs its own MATTERSYNC_MM_STATE_DIR (state: pid, config,
# token, socket; default .local/mattermost) and MATTERSYNC_MM_ENV_FILE (default
# .local/mattermost.env), e.g. the benchmark instance (scripts/bench/env.sh).
# MATTERSYNC_MM_PG_CLUSTER (main) puts the database on another PostgreSQL cluster of the same
# version, made beforehand with its own port, e.g. the one a test restarts (scripts/mm-restart.sh).
# MATTERSYNC_MM_QUICK_START=1 skips the bootstrap when it ran before (a test restarting it).
# Any MM_* setting below can be overridden from the caller's environment on (re)start, e.g.
#   MM_RATELIMITSETTINGS_ENABLE=true scripts/mattermost.sh restart
# Secrets (db.password, admin.password, token) are files of mode 0600, never arguments.
set -euo pipefail
umask 077

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
state=${MATTERSYNC_MM_STATE_DIR:-$root/.local/mattermost}
envfile=${MATTERSYNC_MM_ENV_FILE:-$root/.local/mattermost.env}
pidfile="$state/mattermost.pid"
logfile="$state/mattermost.log"
sock="$state/mattermost_local.socket"
host=127.0.0.1
port=${MATTERSYNC_MM_PORT:-8065}
url="http://$host:$port"
dbname=${MATTERSYNC_MM_DB:-mattermost}
dbuser=$dbname
pg_cluster=${MATTERSYNC_MM_PG_CLUSTER:-main}

log() { printf '%s mattermost.sh: %s\n' "$(date -u +%FT%T.%3NZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ "$dbname" =~ ^[a-z_][a-z0-9_]*$ ]] || die "MATTERSYNC_MM_DB must be a plain lower-case SQL identifier"
[[ "$port" =~ ^[0-9]+$ ]] || die "MATTERSYNC_MM_PORT must be a number"
[[ "$pg_cluster" =~ ^[a-z][a-z0-9]*$ ]] || die "MATTERSYNC_MM_PG_CLUSTER must be a plain cluster name"
case "$root" in *[[:space:]]*) die "the repository path must not contain white space: $root" ;; esac
[ "${#sock}" -lt 100 ] || die "local-mode socket path too long for a unix socket: $sock"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
as_postgres() { (cd / && as_root runuser -u postgres -- "$@"); }

# Run a command that leaves daemons behind (PostgreSQL, Mattermost) with every file
# descriptor above 2 closed, so that they hold neither our lock nor a caller's pipe.
close_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}
detached() { ( close_fds; "$@" ); }

gen_secret() { python3 -c 'import secrets; print(secrets.token_hex(20))'; }

# ---------------------------------------------------------------- PostgreSQL
pg_version=""
pg_port=""
pg_detect() {
  pg_version=""
  local v
  for v in $(ls /usr/lib/postgresql 2>/dev/null | sort -n); do
    [ -x "/usr/lib/postgresql/$v/bin/postgres" ] && pg_version=$v
  done
  [ -n "$pg_version" ]
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  local opts=(-o DPkg::Lock::Timeout=900 -o Acquire::Retries=3)
  local i
  log "apt-get update (waits for the apt lock)"
  for i in 1 2 3 4 5 6 7 8 9 10; do
    as_root apt-get "${opts[@]}" update -qq </dev/null >&2 && break
    [ "$i" = 10 ] && die "apt-get update failed"
    log "apt-get update failed (lock held?), retrying in 15s"; sleep 15
  done
  log "apt-get install $*"
  as_root apt-get "${opts[@]}" install -y -qq --no-install-recommends "$@" </dev/null >&2
}

pg_up() {
  # Two instances brought up at once (scripts/test.sh starts the secondary beside the
  # primary) must not both install PostgreSQL or create its cluster.
  local lock="${TMPDIR:-/tmp}/mattersync-pg-setup.lock"
  exec 7>"$lock"
  flock 7
  if ! pg_detect || ! command -v pg_ctlcluster >/dev/null; then
    log "PostgreSQL is not installed: installing it"
    apt_install postgresql postgresql-contrib
    pg_detect || die "PostgreSQL installation did not provide /usr/lib/postgresql/<version>/bin/postgres"
  fi
  if ! pg_lsclusters -h | awk -v v="$pg_version" -v c="$pg_cluster" '$1 == v && $2 == c { f = 1 } END { exit !f }'; then
    log "creating PostgreSQL cluster $pg_version/$pg_cluster"
    as_root pg_createcluster "$pg_version" "$pg_cluster" >&2
  fi
  local line
  line=$(pg_lsclusters -h | awk -v v="$pg_version" -v c="$pg_cluster" '$1 == v && $2 == c')
  pg_port=$(awk '{print $3}' <<<"$line")
  if [ "$(awk '{print $4}' <<<"$line")" != online ]; then
    log "starting PostgreSQL $pg_version/$pg_cluster on port $pg_port"
    detached as_root pg_ctlcluster "$pg_version" "$pg_cluster" start >&2
  fi
  local i
  for i in $(seq 1 60); do
    if pg_isready -q -h 127.0.0.1 -p "$pg_port"; then exec 7>&-; return 0; fi
    sleep 0.5
  done
  die "PostgreSQL does not accept connections on 127.0.0.1:$pg_port"
}

pg_down() {
  pg_detect || return 0
  if pg_lsclusters -h | awk -v v="$pg_version" -v c="$pg_cluster" '$1 == v && $2 == c && $4 == "online" { f = 1 } END { exit !f }'; then
    log "stopping PostgreSQL $pg_version/$pg_cluster"
    as_root pg_ctlcluster "$pg_version" "$pg_cluster" stop >&2
  fi
}

db_password() {
  if [ ! -s "$state/db.password" ]; then
    gen_secret >"$state/db.password"
    chmod 600 "$state/db.password"
  fi
  tr -d '\n' <"$state/db.password"
}

# Role and database; the password goes through psql's stdin, never its arguments.
db_ensure() {
  local pw err
  pw=$(db_password)
  if ! err=$(as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$pg_port" -d postgres 2>&1 >/dev/null <<SQL
SELECT format('CREATE ROLE %I LOGIN', '$dbuser') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$dbuser') \gexec
ALTER ROLE $dbuser WITH LOGIN PASSWORD '$pw';
SELECT format('CREATE DATABASE %I OWNER %I ENCODING ''UTF8'' TEMPLATE template0', '$dbname', '$dbuser')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$dbname') \gexec
SQL
  ); then
    printf '%s\n' "${err//$pw/********}" >&2
    die "could not create the role and database $dbname"
  fi
}

db_drop() {
  log "dropping database $dbname"
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$pg_port" -d postgres >/dev/null <<SQL
DROP DATABASE IF EXISTS $dbname WITH (FORCE);
SQL
}

# ---------------------------------------------------------------- Mattermost process
mm_pid() {
  # the pid of our running server, or nothing
  local pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
    */bin/mattermost) echo "$pid" ;;
  esac
}

ping_version() {
  # X-Version-Id of a healthy server, or fail
  curl -fsS -m 3 -o /dev/null -D - "$url/api/v4/system/ping" 2>/dev/null |
    awk 'tolower($1) == "x-version-id:" { sub(/\r$/, "", $2); print $2; found = 1 } END { exit !found }'
}

mm_stop() {
  local pid i
  pid=$(mm_pid)
  if [ -z "$pid" ]; then rm -f "$pidfile"; return 0; fi
  log "stopping Mattermost (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 120); do
    [ -d "/proc/$pid" ] || break
    sleep 0.5
  done
  if [ -d "/proc/$pid" ]; then
    log "Mattermost did not stop within 60s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$pidfile" "$sock"
}

mm_start() {
  local bindir=$1 pw
  pw=$(db_password)
  mkdir -p "$state/data" "$state/plugins" "$state/client-plugins" "$state/logs"
  rm -f "$sock"
  log "starting Mattermost ($bindir/bin/mattermost) on $url; log: $logfile"
  (
    cd "$state"
    export MM_CONFIG="$state/config.json"
    export MM_SQLSETTINGS_DRIVERNAME=postgres
    export MM_SQLSETTINGS_DATASOURCE="postgres://$dbuser:$pw@127.0.0.1:$pg_port/$dbname?sslmode=disable&connect_timeout=10"
    export MM_SERVICESETTINGS_LISTENADDRESS="$host:$port"
    export MM_SERVICESETTINGS_SITEURL="$url"
    export MM_SERVICESETTINGS_WEBSERVERMODE=disabled
    export MM_SERVICESETTINGS_ENABLELOCALMODE=true
    export MM_SERVICESETTINGS_LOCALMODESOCKETLOCATION="$sock"
    export MM_FILESETTINGS_DIRECTORY="$state/data/"
    export MM_PLUGINSETTINGS_DIRECTORY="$state/plugins"
    export MM_PLUGINSETTINGS_CLIENTDIRECTORY="$state/client-plugins"
    export MM_LOGSETTINGS_FILELOCATION="$state/logs"
    # defaults, overridable from the caller's environment
    : "${MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS:=true}"
    : "${MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION:=true}"
    : "${MM_SERVICESETTINGS_ENABLEAPITEAMDELETION:=true}"
    : "${MM_SERVICESETTINGS_ENABLEAPICHANNELDELETION:=true}"
    : "${MM_SERVICESETTINGS_ENABLECOMMANDS:=true}"
    : "${MM_SERVICESETTINGS_ALLOWEDUNTRUSTEDINTERNALCONNECTIONS:=127.0.0.1 localhost}"
    : "${MM_SERVICESETTINGS_ENABLESECURITYFIXALERT:=false}"
    : "${MM_TEAMSETTINGS_ENABLEOPENSERVER:=true}"
    : "${MM_TEAMSETTINGS_MAXUSERSPERTEAM:=100000}"
    : "${MM_RATELIMITSETTINGS_ENABLE:=false}"
    : "${MM_PLUGINSETTINGS_ENABLE:=false}"
    : "${MM_PLUGINSETTINGS_ENABLEMARKETPLACE:=false}"
    : "${MM_PLUGINSETTINGS_AUTOMATICPREPACKAGEDPLUGINS:=false}"
    : "${MM_LOGSETTINGS_ENABLEDIAGNOSTICS:=false}"
    : "${MM_LOGSETTINGS_ENABLEFILE:=false}"
    : "${MM_LOGSETTINGS_CONSOLEJSON:=false}"
    : "${MM_LOGSETTINGS_CONSOLELEVEL:=INFO}"
    : "${MM_NOTIFICATIONLOGSETTINGS_ENABLEFILE:=false}"
    : "${MM_EMAILSETTINGS_SENDEMAILNOTIFICATIONS:=false}"
    : "${MM_EMAILSETTINGS_REQUIREEMAILVERIFICATION:=false}"
    : "${MM_EMAILSETTINGS_ENABLEPREVIEWMODEBANNER:=false}"
    export "${!MM_@}"
    close_fds
    exec setsid nohup "$bindir/bin/mattermost" server </dev/null >>"$logfile" 2>&1
  ) &
  echo $! >"$pidfile"
}

mm_wait() {
  local pid=$1 deadline=$(( $(date +%s) + ${MM_START_TIMEOUT:-360} )) n=0
  while ! ping_version >/dev/null; do
    if [ ! -d "/proc/$pid" ]; then
      tail -n 40 "$logfile" >&2 || true
      rm -f "$pidfile"
      die "Mattermost exited during startup (log above, full log: $logfile)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 40 "$logfile" >&2 || true
      die "Mattermost did not answer $url/api/v4/system/ping within ${MM_START_TIMEOUT:-360}s"
    fi
    n=$((n + 1))
    [ $((n % 30)) = 0 ] && log "still waiting for Mattermost (first start runs the migrations)"
    sleep 1
  done
  local i
  for i in $(seq 1 50); do [ -S "$sock" ] && return 0; sleep 0.2; done
  die "Mattermost answers but its local-mode socket $sock is missing"
}

# ---------------------------------------------------------------- commands
cmd_up() {
  local t0 bindir pid exe version
  t0=$(date +%s%3N)
  mkdir -p "$state"
  chmod 700 "$root/.local" "$state" 2>/dev/null || true
  command -v curl >/dev/null || apt_install curl ca-certificates
  pg_up
  db_ensure
  bindir=$("$here/mm-build.sh")
  pid=$(mm_pid)
  if [ -n "$pid" ]; then
    exe=$(readlink "/proc/$pid/exe" || true)
    if [ "$exe" != "$bindir/bin/mattermost" ]; then
      log "the running Mattermost ($exe) is not the pinned build: restarting"
      mm_stop
      pid=""
    fi
  fi
  if [ -z "$pid" ]; then
    if ping_version >/dev/null; then
      die "something else already answers on $url (not our pid file $pidfile)"
    fi
    mm_start "$bindir"
    pid=$(cat "$pidfile")
  fi
  mm_wait "$pid"
  version=$(ping_version)
  log "Mattermost $version is up (pid $pid)"

  local seed="$here/seed.py"
  [ -f "$seed" ] || die "$seed is missing: it provides the teams, channels and users to create"
  if [ "${MATTERSYNC_MM_QUICK_START:-0}" = 1 ] && [ -s "$state/token" ] && [ -s "$state/bootstrap.json" ]; then
    log "quick start: bootstrapped before, not again"
  else
    python3 "$seed" json </dev/null |
      python3 "$here/mm_bootstrap.py" --url "$url" --socket "$sock" --state "$state"
  fi

  local tmp="$envfile.tmp"
  cat >"$tmp" <<ENV
MATTERSYNC_MM_URL=$url
MATTERSYNC_MM_TOKEN_FILE=$state/token
MATTERSYNC_MM_ADMIN_USER=mmadmin
MATTERSYNC_MM_ADMIN_PASSWORD_FILE=$state/admin.password
MATTERSYNC_MM_LOCAL_SOCKET=$sock
MATTERSYNC_MM_BIN_DIR=$bindir/bin
MATTERSYNC_MM_VERSION=$version
ENV
  chmod 644 "$tmp"
  mv "$tmp" "$envfile"
  local ms=$(( $(date +%s%3N) - t0 ))
  log "wrote $envfile; up in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s"
}

cmd_status() {
  local pid version rc=0
  if pg_detect; then
    pg_lsclusters -h | awk -v v="$pg_version" -v c="$pg_cluster" '$1 == v && $2 == c { print "postgresql: " $1 "/" $2 " port " $3 " " $4 }'
  else
    echo "postgresql: not installed"
  fi
  pid=$(mm_pid)
  if version=$(ping_version); then
    echo "mattermost: up at $url, pid ${pid:-unknown}, X-Version-Id $version"
  elif [ -n "$pid" ]; then
    echo "mattermost: pid $pid, not answering on $url"; rc=1
  else
    echo "mattermost: down"; rc=1
  fi
  if [ "$rc" = 0 ] && [ -s "$state/token" ]; then
    if curl -fsS -m 5 -o /dev/null -H @<(printf 'Authorization: Bearer %s\n' "$(tr -d '\n' <"$state/token")") "$url/api/v4/users/me"; then
      echo "token: valid ($state/token)"
    else
      echo "token: REJECTED ($state/token)"; rc=1
    fi
  fi
  [ -f "$envfile" ] && echo "env: $envfile"
  return "$rc"
}

cmd=${1:-}
case "$cmd" in
  up|down|restart|reset)
    # one state-changing command at a time
    mkdir -p "$state"
    exec 8>"$state/mattermost.sh.lock"
    flock 8
    ;;
esac
case "$cmd" in
  up) cmd_up ;;
  down)
    mm_stop
    # An instance sharing the machine's cluster with others (the secondary) leaves it running.
    if [ "${MATTERSYNC_MM_STOP_PG:-true}" = true ]; then pg_down; fi
    ;;
  restart) mm_stop; cmd_up ;;
  reset)
    mm_stop
    mkdir -p "$state"
    pg_up
    db_drop
    rm -rf "$state/data" "$state/plugins" "$state/client-plugins" "$state/logs" \
      "$state/config.json" "$state/token" "$state/bootstrap.json" "$envfile"
    cmd_up
    ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|restart|reset|status" >&2; exit 2 ;;
esac
