#!/usr/bin/env bash
# The second test Mattermost: the older line that the compatibility subset of the real-server
# tests runs against (README, "Compatibility"; scripts/test.sh runs it). The same script as the
# primary (scripts/mattermost.sh), with the secondary build (MM_SECONDARY_* in versions.env,
# scripts/mmbuild-secondary/) on its own port, database, state directory and env file:
#   127.0.0.1:8067, database mattermost_secondary, .local/mattermost-secondary/,
#   .local/mattermost-secondary.env
#   scripts/mattermost-secondary.sh up | down | restart | reset | status
# Each setting can be overridden from the caller's environment (e.g. another port).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
export MATTERSYNC_MM_BUILD=secondary MATTERSYNC_MM_STOP_PG=false
export MATTERSYNC_MM_PORT=${MATTERSYNC_MM_SECONDARY_PORT:-8067}
export MATTERSYNC_MM_DB=${MATTERSYNC_MM_SECONDARY_DB:-mattermost_secondary}
export MATTERSYNC_MM_STATE_DIR=${MATTERSYNC_MM_SECONDARY_STATE_DIR:-$root/.local/mattermost-secondary}
export MATTERSYNC_MM_ENV_FILE=${MATTERSYNC_MM_SECONDARY_ENV_FILE:-$root/.local/mattermost-secondary.env}
exec "$here/mattermost.sh" "$@"
