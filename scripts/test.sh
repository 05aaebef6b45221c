#!/usr/bin/env bash
# The whole test suite: unit tests, golden plans, and integration tests against a real
# 389 Directory Server, a real Mattermost and a live FreeIPA JSON-RPC server (FreeIPA's own
# server framework), which this script installs and starts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '%s test: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }

# Compile the tests while the servers come up.
log "building tests"
cargo test --workspace --no-run --quiet > .local-build.log 2>&1 &
build=$!
mkdir -p .local
# The secondary Mattermost (the older line of the compatibility subset below): built (once,
# cached) and started beside the other servers, on its own port, database and state. The
# primary build comes first (one Go build at a time; a cached one returns at once), so the
# primary server is not kept waiting for the secondary's.
{ scripts/mm-build.sh > /dev/null && scripts/mattermost-secondary.sh up; } \
  > .local/mattermost-secondary-up.log 2>&1 &
mm_secondary=$!
scripts/servers.sh up
# The Mattermost (on a PostgreSQL cluster of its own) that real_restarts.rs stops and
# starts, coming up while the rest is prepared.
scripts/mm-restart.sh up > .local/mm-restart-up.log 2>&1 &
mm_restart=$!
# Back to the seed: tests add (and clean up) their own entries, but a run that was killed
# may have left some behind in the shared directory (and in the FreeIPA test server's).
scripts/freeipa.sh reset &
ipa_reset=$!
scripts/dirsrv.sh reset
wait "$ipa_reset"
# The directory instance that real_serve_restart.rs stops and starts (so that no other test
# sees its outage), and the browser of real_serve_status_page.rs.
DIRSRV_INSTANCE=mattersync-restart DIRSRV_PORT=3391 DIRSRV_SECURE_PORT=3638 scripts/dirsrv.sh up
# The ledger's PostgreSQL cluster that real_serve_failover.rs restarts.
MATTERSYNC_LEDGER_PG_CLUSTER=ledger2 MATTERSYNC_LEDGER_PG_PORT=5434 scripts/ledger-pg.sh up
cat .local/ledger2-pg.env >> .local/servers.env
scripts/chromium.sh >/dev/null
if ! wait "$mm_restart"; then
  cat .local/mm-restart-up.log >&2
  exit 1
fi
tail -n 1 .local/mm-restart-up.log >&2
if ! wait "$build"; then
  cat .local-build.log >&2
  rm -f .local-build.log
  exit 1
fi
rm -f .local-build.log
if ! wait "$mm_secondary"; then
  cat .local/mattermost-secondary-up.log >&2
  log "the secondary Mattermost did not come up"
  exit 1
fi
tail -n 1 .local/mattermost-secondary-up.log >&2
# The tests read the servers from an env file: the secondary pass gets the same one with the
# secondary Mattermost in place of the primary.
{ grep -v '^MATTERSYNC_MM_' .local/servers.env; cat .local/mattermost-secondary.env; } \
  > .local/servers-secondary.env
set -a
# shellcheck disable=SC1091
. .local/servers.env
set +a
threads=${MATTERSYNC_TEST_THREADS:-4}
log "running tests (Mattermost $MATTERSYNC_MM_VERSION)"
# The tests that need the servers are #[ignore]d, so that a plain `cargo test` lists them as
# ignored instead of passing them; here the servers are up, so they run too.
rc=0
cargo test --workspace --no-fail-fast -- --include-ignored --test-threads="$threads" "$@" || rc=$?

# The compatibility subset (README, "Compatibility") against the secondary Mattermost: the
# REST client's own real-server tests (real_mattermost), every sync path of the CLI
# (real_sync: sync, add, exclusive, re-add, channel admins from managers, a private channel,
# nested groups, guards, the intent journal), account matching with `check`
# (real_matching), serve's change-driven path (real_serve), the slash command with its
# dialogs and permission model (real_serve_slash) and the alerts' posts, buttons and
# confirmation dialog (real_serve_alerts).
secondary_version=$(sed -n 's/^MATTERSYNC_MM_VERSION=//p' .local/mattermost-secondary.env)
log "running the compatibility subset against the secondary Mattermost $secondary_version"
# One invocation over the workspace: the same build as the main pass, nothing recompiled.
MATTERSYNC_SERVERS_ENV="$root/.local/servers-secondary.env" \
  cargo test --workspace --test real_mattermost --test real_sync --test real_matching \
  --test real_serve --test real_serve_slash --test real_serve_alerts --no-fail-fast -- --include-ignored \
  --test-threads="$threads" || rc=$?
exit "$rc"
