#!/usr/bin/env bash
# The benchmark's own Mattermost (127.0.0.1:8066, database mattermost_bench; see env.sh), its
# data loaded by Mattermost's bulk import and kept as PostgreSQL template databases:
#
#   scripts/bench/mm.sh up                 start it (scripts/mattermost.sh with env.sh)
#   scripts/bench/mm.sh down               stop it (PostgreSQL, shared with the test server, stays up)
#   scripts/bench/mm.sh load SIZE DIR      make templates mmbench_<size>_cold (accounts, teams,
#                                          channels; no memberships) and mmbench_<size>_warm
#                                          (plus every desired membership) from the generator's
#                                          DIR/mattermost*.jsonl; skipped when they exist for
#                                          the same files (sha256 in the database comment)
#   scripts/bench/mm.sh restore TEMPLATE   stop Mattermost, replace mattermost_bench with a copy
#                                          of TEMPLATE, start it again (a few seconds)
#   scripts/bench/mm.sh snapshot TEMPLATE  the reverse: keep the current database as TEMPLATE
#
# Why bulk import: an unlicensed server refuses to create (POST /users) or re-activate
# accounts once 250 are active (app/limits.go, isAtUserLimit, called from createUserOrGuest
# and UpdateActive). The bulk importer creates accounts through the user service without that
# check (app/import_functions.go importUser), so it is how the benchmark gets 1k-50k accounts.
# Accounts are SSO accounts (auth_service gitlab, auth_data = uid), as RAS users are, which also
# spares a bcrypt hash per account. The benchmark database runs with synchronous_commit = off
# (set on that database only) to keep load and write phases short on a 2-core machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
source "$here/env.sh"
root=$bench_root
state=$MATTERSYNC_MM_STATE_DIR
db=$MATTERSYNC_MM_DB

log() { printf '%s bench/mm.sh: %s\n' "$(date -u +%FT%T.%3NZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

psql_pg() { (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"); }
db_exists() { [ "$(psql_pg -Atc "SELECT 1 FROM pg_database WHERE datname = '$1'")" = 1 ]; }
db_comment() { psql_pg -Atc "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '$1'"; }

mm_up() { "$root/scripts/mattermost.sh" up >>"$BENCH_DIR/mattermost-up.log" 2>&1 || { tail -20 "$BENCH_DIR/mattermost-up.log" >&2; die "mattermost.sh up failed"; }; }
mm_stop() {
  local pid i
  pid=$(cat "$state/mattermost.pid" 2>/dev/null || true)
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
  case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in */bin/mattermost) ;; *) return 0 ;; esac
  kill -TERM "$pid"
  for i in $(seq 1 120); do [ -d "/proc/$pid" ] || break; sleep 0.25; done
  [ -d "/proc/$pid" ] && { kill -KILL "$pid"; sleep 1; }
  rm -f "$state/mattermost.pid" "$state/mattermost_local.socket"
}

cmd_up() {
  mkdir -p "$BENCH_DIR"
  mm_up
  if [ "$(psql_pg -Atc "SELECT coalesce((SELECT setconfig::text FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = '$db' AND s.setrole = 0), '')")" != '{synchronous_commit=off}' ]; then
    psql_pg -c "ALTER DATABASE $db SET synchronous_commit = off"
    mm_stop; mm_up
  fi
  # the freshly bootstrapped database, the starting point of every load
  if ! db_exists mmbench_base; then
    mm_stop
    psql_pg -c "CREATE DATABASE mmbench_base TEMPLATE $db OWNER $db"
    mm_up
  fi
}

restore() {  # restore TEMPLATE
  db_exists "$1" || die "no template database $1"
  mm_stop
  psql_pg -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db TEMPLATE $1 OWNER $db"
  psql_pg -c "ALTER DATABASE $db SET synchronous_commit = off"
  mm_up
}

snapshot() {  # snapshot TEMPLATE [COMMENT]
  mm_stop
  psql_pg -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1 TEMPLATE $db OWNER $db"
  [ -n "${2:-}" ] && psql_pg -c "COMMENT ON DATABASE $1 IS '$2'"
  mm_up
}

mmctl() { MMCTL_LOCAL_SOCKET_PATH=$state/mattermost_local.socket "$(dirname "$(readlink "/proc/$(cat "$state/mattermost.pid")/exe")")/mmctl" --local "$@"; }

import() {  # import JSONL: bulk import through the local-mode socket, wait for the job
  local jsonl=$1 zip job status t0
  t0=$(date +%s)
  zip=$BENCH_DIR/import-$$.zip
  python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED); z.write(sys.argv[2], "import.jsonl"); z.close()' "$zip" "$jsonl"
  job=$(mmctl import process --bypass-upload "$zip" --json | python3 -c 'import json,sys; j=json.load(sys.stdin); print((j[0] if isinstance(j, list) else j)["id"])')
  log "import job $job: $(basename "$jsonl") ($(wc -l <"$jsonl") lines)"
  while :; do
    status=$(mmctl import job show "$job" --json | python3 -c 'import json,sys; j=json.load(sys.stdin); j=j[0] if isinstance(j, list) else j; print(j["status"], j.get("data", {}).get("error", "").replace(" ", "_"))')
    case "$status" in
      success*) break ;;
      error*|cancel*) die "import job $job: $status" ;;
    esac
    sleep 2
  done
  rm -f "$zip"
  log "imported $(basename "$jsonl") in $(( $(date +%s) - t0 ))s"
}

cmd_load() {
  local size=$1 dir=$2 hash lower
  lower=$(tr 'A-Z' 'a-z' <<<"$size")
  hash=$(cat "$dir/mattermost.jsonl" "$dir/mattermost_members.jsonl" | sha256sum | cut -d' ' -f1)
  cmd_up
  if db_exists "mmbench_${lower}_warm" && [ "$(db_comment "mmbench_${lower}_warm")" = "$hash" ] \
     && db_exists "mmbench_${lower}_cold" && [ "$(db_comment "mmbench_${lower}_cold")" = "$hash" ]; then
    log "templates mmbench_${lower}_cold/_warm are current"
    return 0
  fi
  restore mmbench_base
  import "$dir/mattermost.jsonl"
  snapshot "mmbench_${lower}_cold" "$hash"
  import "$dir/mattermost_members.jsonl"
  snapshot "mmbench_${lower}_warm" "$hash"
}

case "${1:-}" in
  up) cmd_up ;;
  down) mm_stop ;;
  load) [ $# = 3 ] || die "usage: $0 load SIZE DIR"; cmd_load "$2" "$3" ;;
  restore) [ $# = 2 ] || die "usage: $0 restore TEMPLATE"; restore "$2" ;;
  snapshot) [ $# = 2 ] || die "usage: $0 snapshot TEMPLATE"; snapshot "$2" ;;
  *) echo "usage: $0 up | down | load SIZE DIR | restore TEMPLATE | snapshot TEMPLATE" >&2; exit 2 ;;
esac
