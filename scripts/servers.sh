#!/usr/bin/env bash
# Brings the local test servers (389-ds, Mattermost, the ledger's PostgreSQL) up or down, and writes the
# connection details the tests and the demo read to .local/servers.env.
#   scripts/servers.sh up | down | reset | status
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-up}
log() { printf '%s servers: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

case "$cmd" in
  up|reset)
    start=$(date +%s)
    "$root/scripts/dirsrv.sh" "$cmd"
    "$root/scripts/mattermost.sh" "$cmd"
    # After Mattermost's: that one installs PostgreSQL on a fresh machine.
    "$root/scripts/ledger-pg.sh" "$cmd"
    cat "$root/.local/dirsrv.env" "$root/.local/mattermost.env" "$root/.local/ledger-pg.env" > "$root/.local/servers.env"
    log "ready in $(( $(date +%s) - start ))s; connection details in .local/servers.env"
    ;;
  down)
    "$root/scripts/ledger-pg.sh" down || true
    "$root/scripts/mattermost.sh" down || true
    "$root/scripts/dirsrv.sh" down || true
    ;;
  status)
    "$root/scripts/dirsrv.sh" status || true
    "$root/scripts/mattermost.sh" status || true
    "$root/scripts/ledger-pg.sh" status && echo "ledger-pg: up" || echo "ledger-pg: down"
    ;;
  *)
    echo "usage: $0 up|down|reset|status" >&2
    exit 2
    ;;
esac
