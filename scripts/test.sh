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
set -a
# shellcheck disable=SC1091
. .local/servers.env
set +a
log "running tests"
# The tests that need the servers are #[ignore]d, so that a plain `cargo test` lists them as
# ignored instead of passing them; here the servers are up, so they run too.
cargo test --workspace --no-fail-fast -- --include-ignored \
  --test-threads="${MATTERSYNC_TEST_THREADS:-4}" "$@"
