#!/usr/bin/env bash
# Brings the local test servers (389-ds, Mattermost, the ledger's PostgreSQL, and the FreeIPA
# JSON-RPC server with a 389-ds of its own) up or down, and writes the connection details
# the tests and the demo read to .local/servers.env. The FreeIPA server comes up in
# parallel with the others.
#   scripts/servers.sh up | down | reset | status
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-up}
log() { printf '%s servers: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

case "$cmd" in
  up|reset)
    start=$(date +%s)
    mkdir -p "$root/.local"
    "$root/scripts/freeipa.sh" "$cmd" >"$root/.local/freeipa-up.log" 2>&1 &
    ipa=$!
    "$root/scripts/dirsrv.sh" "$cmd"
    "$root/scripts/mattermost.sh" "$cmd"
    # After Mattermost's: that one installs PostgreSQL on a fresh machine.
    "$root/scripts/ledger-pg.sh" "$cmd"
    if ! wait "$ipa"; then
      cat "$root/.local/freeipa-up.log" >&2
      log "the FreeIPA test server did not come up"
      exit 1
    fi
    tail -n 1 "$root/.local/freeipa-up.log" >&2
    cat "$root/.local/dirsrv.env" "$root/.local/mattermost.env" "$root/.local/ledger-pg.env" \
      "$root/.local/freeipa.env" > "$root/.local/servers.env"
    log "ready in $(( $(date +%s) - start ))s; connection details in .local/servers.env"
    ;;
  down)
    "$root/scripts/freeipa.sh" down || true
    "$root/scripts/ledger-pg.sh" down || true
    "$root/scripts/mattermost.sh" down || true
    "$root/scripts/dirsrv.sh" down || true
    ;;
  status)
    "$root/scripts/dirsrv.sh" status || true
    "$root/scripts/mattermost.sh" status || true
    "$root/scripts/ledger-pg.sh" status && echo "ledger-pg: up" || echo "ledger-pg: down"
    "$root/scripts/freeipa.sh" status || true
    ;;
  *)
    echo "usage: $0 up|down|reset|status" >&2
    exit 2
    ;;
esac
