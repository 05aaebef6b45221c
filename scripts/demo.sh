#!/usr/bin/env bash
# The main job end to end on local defaults: start (and on first use install) a local
# RAS-like 389 Directory Server and a local Mattermost, seed them, run a sync, show the result.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

log "servers (first run installs 389-ds and PostgreSQL and builds Mattermost: allow 15-25 min)"
scripts/servers.sh up
set -a
# shellcheck disable=SC1091
. .local/servers.env
set +a

log "building mattersync"
cargo build --release --quiet -p mattersync
ms="$root/target/release/mattersync"

demo="$root/.local/demo"
mkdir -p "$demo"
cat > "$demo/config.toml" <<TOML
# Written by scripts/demo.sh for the local test servers.
[directory]
kind = "ldap"
uri = "$MATTERSYNC_LDAPS_URL"
ca_file = "$MATTERSYNC_LDAP_CA_FILE"
bind_dn = "$MATTERSYNC_LDAP_BIND_DN"
bind_password_file = "$MATTERSYNC_LDAP_PASSWORD_FILE"
base_dn = "$MATTERSYNC_LDAP_BASE_DN"

[areas]
rl = "rocky-linux"
resf = "resf"

[mattermost]
url = "$MATTERSYNC_MM_URL"
token_file = "$MATTERSYNC_MM_TOKEN_FILE"
# The seeded accounts sign in with a password, not an auth service: match by username,
# explicitly (check warns about it).
match = { by = "username" }

[defaults]
auto_link = true

[[link]]
group = "mm_rl_infra"
channel = "rocky-linux/infra"
admins = "managers"

[[link]]
group = "mm_resf_board"
team = "resf"
mode = "add"

[guards]
max_removals = 50
max_removal_ratio = 0.2

[ledger]
path = "$demo/ledger.db"
TOML
export MATTERSYNC_CONFIG="$demo/config.toml"

log "mattersync check"
"$ms" check
log "mattersync links"
"$ms" links
log "mattersync plan"
"$ms" plan
log "mattersync apply --yes"
"$ms" apply --yes
log "mattersync plan (again: nothing left to do)"
"$ms" plan --detailed-exitcode
log "mattersync explain neil rocky-linux/infra"
"$ms" explain neil rocky-linux/infra
log "mattersync status"
"$ms" status
echo
echo "Config: $demo/config.toml — try: MATTERSYNC_CONFIG=$demo/config.toml $ms audit"
