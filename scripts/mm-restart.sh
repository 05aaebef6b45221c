#!/usr/bin/env bash
# The Mattermost that tests restart for real (crates/mattersync/tests/real_restarts.rs): a
# second instance of the pinned build on 127.0.0.1:8075, with its own database on a
# PostgreSQL cluster of its own ("mmrestart", 127.0.0.1:5437), so that killing the process or
# restarting its database disturbs no other test. State in .local/mm-restart/, connection
# details (the same MATTERSYNC_MM_* names as the shared instance's) in .local/mm-restart.env.
#
#   scripts/mm-restart.sh up        create/start the cluster and Mattermost, bootstrap, write
#                                   the env file (idempotent; what a test runs to start it again)
#   scripts/mm-restart.sh start     start Mattermost again after a test stopped it (as `up`,
#                                   without the bootstrap, which ran before)
#   scripts/mm-restart.sh down      stop Mattermost, then the cluster
#   scripts/mm-restart.sh pg-stop   stop the cluster (fast shutdown: sessions are cut)
#   scripts/mm-restart.sh pg-start  start the cluster again
#   scripts/mm-restart.sh status    exit 0 when Mattermost answers
#
# Needs PostgreSQL and the Mattermost build that scripts/mattermost.sh installs and makes for
# the shared instance (scripts/test.sh starts this after that one).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cluster=mmrestart
pg_port=5437

export MATTERSYNC_MM_PORT=8075
export MATTERSYNC_MM_DB=mattermost_restart
export MATTERSYNC_MM_STATE_DIR=$root/.local/mm-restart
export MATTERSYNC_MM_ENV_FILE=$root/.local/mm-restart.env
export MATTERSYNC_MM_PG_CLUSTER=$cluster
# Without the ledger's TLS client certificate: Mattermost connects with sslmode=disable.
ledger_pg() { MATTERSYNC_LEDGER_PG_CLUSTER=$cluster MATTERSYNC_LEDGER_PG_PORT=$pg_port "$here/ledger-pg.sh" "$@"; }

pg_version() {
  local v best=""
  for v in $(ls /usr/lib/postgresql 2>/dev/null | sort -n); do
    [ -x "/usr/lib/postgresql/$v/bin/postgres" ] && best=$v
  done
  echo "$best"
}

case "${1:-}" in
  up)
    t0=$(date +%s%3N)
    # The cluster (made like the ledger's), then Mattermost on it.
    ledger_pg up
    "$here/mattermost.sh" up
    ms=$(( $(date +%s%3N) - t0 ))
    printf '%s mm-restart.sh: up in %d.%03ds\n' "$(date -u +%FT%T.%3NZ)" $((ms / 1000)) $((ms % 1000)) >&2
    ;;
  start)
    MATTERSYNC_MM_QUICK_START=1 "$here/mattermost.sh" up
    ;;
  down)
    "$here/mattermost.sh" down
    ;;
  pg-stop)
    pg_ctlcluster "$(pg_version)" "$cluster" stop -m fast >&2
    ;;
  pg-start)
    ledger_pg up
    ;;
  status)
    "$here/mattermost.sh" status
    ;;
  *)
    echo "usage: $0 up|start|down|pg-stop|pg-start|status" >&2
    exit 2
    ;;
esac
