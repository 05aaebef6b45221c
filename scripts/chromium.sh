#!/usr/bin/env bash
# Headless Chromium from Debian's packages, for the status-page test
# (crates/mattersync/tests/real_serve_status_page.rs). Idempotent: prints the browser's path.
#   scripts/chromium.sh          install if missing, print the path
set -euo pipefail
log() { printf '%s chromium.sh: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

find_browser() {
  local b
  for b in chromium chromium-browser; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
  done
  return 1
}

if path=$(find_browser); then
  echo "$path"
  exit 0
fi
[ "$(id -u)" = 0 ] || { log "chromium is missing and installing it needs root"; exit 1; }
export DEBIAN_FRONTEND=noninteractive
log "installing chromium (Debian package)"
# `update` takes the lists lock without waiting for it: retry while another apt run holds it.
for i in $(seq 1 30); do
  if apt-get -o DPkg::Lock::Timeout=600 update -q >&2 </dev/null \
     && apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
          chromium fonts-dejavu-core >&2 </dev/null; then
    break
  fi
  log "apt-get failed (attempt $i); retrying in 10 s"
  sleep 10
done
path=$(find_browser) || { log "chromium did not install"; exit 1; }
echo "$path"
