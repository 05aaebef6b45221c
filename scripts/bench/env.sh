# Sourced by the benchmark scripts: where the benchmark's own servers live, apart from the
# shared test servers (Mattermost on 8065 with database `mattermost`, 389-ds instance
# `mattersync-test` on 3389) that other tests use at the same time.
#   Mattermost: 127.0.0.1:8066, database mattermost_bench, state in .local/bench/mattermost
#   389-ds:     instance mattersync-bench, ldap://127.0.0.1:3390, state in .local/bench/dirsrv
bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export MATTERSYNC_MM_PORT=${MATTERSYNC_BENCH_MM_PORT:-8066}
export MATTERSYNC_MM_DB=${MATTERSYNC_BENCH_MM_DB:-mattermost_bench}
export MATTERSYNC_MM_STATE_DIR=$bench_root/.local/bench/mattermost
export MATTERSYNC_MM_ENV_FILE=$bench_root/.local/bench/mattermost.env
export BENCH_DIR=$bench_root/.local/bench
