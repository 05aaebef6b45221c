#!/usr/bin/env bash
# Build the Mattermost server (Team Edition) and mmctl from Mattermost's Go module at the
# revision pinned in versions.env, using the wrapper module pinned in scripts/mmbuild/
# (go.mod + go.sum: the exact module graph and its hashes). The result is cached by
# revision under ${MATTERSYNC_CACHE:-$HOME/.cache/mattersync}; a cached build returns at once.
# Prints the directory holding bin/mattermost, bin/mmctl, i18n/ and templates/ on stdout.
#
#   scripts/mm-build.sh            build (or reuse) with the committed pins (-mod=readonly)
#   scripts/mm-build.sh --resolve  re-resolve the wrapper module from versions.env (after a
#                                  version bump), build, and rewrite scripts/mmbuild/go.{mod,sum}
#
# MATTERSYNC_MM_BUILD picks the build: `primary` (default: MM_SERVER_*, scripts/mmbuild/) or
# `secondary` (the older line the compatibility subset runs against: MM_SECONDARY_SERVER_*,
# scripts/mmbuild-secondary/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
log() { printf '%s mm-build: %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

resolve=false
case "${1:-}" in
  "") ;;
  --resolve) resolve=true ;;
  *) die "usage: $0 [--resolve]" ;;
esac

V8=github.com/mattermost/mattermost/server/v8
PUB=github.com/mattermost/mattermost/server/public
case "${MATTERSYNC_MM_BUILD:-primary}" in
  primary) pins="$here/mmbuild" ;;
  secondary)
    pins="$here/mmbuild-secondary"
    MM_SERVER_V8=$MM_SECONDARY_SERVER_V8
    MM_SERVER_PUBLIC=$MM_SECONDARY_SERVER_PUBLIC
    ;;
  *) die "MATTERSYNC_MM_BUILD must be primary or secondary" ;;
esac
cache=${MATTERSYNC_CACHE:-$HOME/.cache/mattersync}
out="$cache/mattermost-$MM_SERVER_V8"
mkdir -p "$cache"

pins_ok() {
  [ -f "$pins/go.mod" ] && [ -f "$pins/go.sum" ] &&
    grep -q "$V8 $MM_SERVER_V8\$" "$pins/go.mod" &&
    grep -q "$PUB => $PUB $MM_SERVER_PUBLIC\$" "$pins/go.mod"
}
pins_hash() { cat "$pins/go.mod" "$pins/go.sum" | sha256sum | cut -c1-16; }
complete() {
  [ -x "$out/bin/mattermost" ] && [ -x "$out/bin/mmctl" ] && [ -d "$out/i18n" ] &&
    [ -d "$out/templates" ] && [ -f "$out/PINS" ] && [ "$(cat "$out/PINS")" = "$(pins_hash)" ]
}

if ! $resolve; then
  pins_ok || die "$pins/go.mod does not pin server/v8 $MM_SERVER_V8 and server/public $MM_SERVER_PUBLIC; run '$0 --resolve' and commit it"
  if complete; then echo "$out"; exit 0; fi
fi

# One build at a time per cache (parallel `up`s wait for each other).
exec 9>"$cache/mm-build.lock"
flock 9
if ! $resolve && complete; then echo "$out"; exit 0; fi

export GOTOOLCHAIN=local CGO_ENABLED=0
# The Go checksum database is not reachable from these machines; the committed go.sum pins
# every module's hash instead.
export GOSUMDB=off GONOSUMDB= GONOSUMCHECK= GOFLAGS=-buildvcs=false
command -v go >/dev/null || die "go is not installed"
log "$(go version); server/v8 $MM_SERVER_V8, server/public $MM_SERVER_PUBLIC"
start=$(date +%s)

work="$cache/build-$MM_SERVER_V8"
rm -rf "$work"
mkdir -p "$work"
cd "$work"
if $resolve; then
  log "resolving the wrapper module afresh"
  go mod init mattersync.local/mmbuild 2>/dev/null
  go mod edit -require="$V8@$MM_SERVER_V8" -require="$PUB@$MM_SERVER_PUBLIC" \
              -replace="$PUB=$PUB@$MM_SERVER_PUBLIC"
  go mod download "$V8@$MM_SERVER_V8" "$PUB@$MM_SERVER_PUBLIC" >&2
  srcmod=$(go mod download -json "$V8@$MM_SERVER_V8" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  # Replace and exclude directives of a dependency are ignored by Go: copy the server's own
  # (e.g. its tablewriter => v0.0.5 pin, without which html2text does not compile), except
  # replacements by local paths and of server/public (pinned above to the same commit).
  # The go directive follows the server's, so any Go >= that version accepts the wrapper.
  python3 - "$srcmod" go.mod <<'PY'
import json, subprocess, sys
src = json.loads(subprocess.run(["go", "mod", "edit", "-json", sys.argv[1]], check=True,
                                capture_output=True, text=True).stdout)
args = ["go", "mod", "edit", "-go=" + src["Go"], "-toolchain=none"]
for r in src.get("Replace") or []:
    new = r["New"]
    if not new.get("Version") or r["Old"]["Path"].startswith("github.com/mattermost/mattermost/"):
        continue
    old = r["Old"]["Path"] + ("@" + r["Old"]["Version"] if r["Old"].get("Version") else "")
    args.append("-replace=%s=%s@%s" % (old, new["Path"], new["Version"]))
for e in src.get("Exclude") or []:
    args.append("-exclude=%s@%s" % (e["Path"], e["Version"]))
print("wrapper go.mod: " + " ".join(args[3:]), file=sys.stderr)
subprocess.run(args + [sys.argv[2]], check=True)
PY
  modflag=-mod=mod
else
  cp "$pins/go.mod" "$pins/go.sum" .
  modflag=-mod=readonly
fi

tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/bin"
commit=${MM_SERVER_V8##*-}
stamp=${MM_SERVER_V8%-*}; stamp=${stamp##*-}
model=$PUB/model
ldflags="-s -w -X $model.BuildNumber=$stamp -X $model.BuildHash=$commit -X $model.BuildEnterpriseReady=false"
ldflags="$ldflags -X $model.BuildDate=${stamp:0:4}-${stamp:4:2}-${stamp:6:2}"
log "compiling mattermost (a cold build takes several minutes)"
go build $modflag -trimpath -ldflags "$ldflags" -o "$tmp/bin/mattermost" "$V8/cmd/mattermost" >&2
log "compiling mmctl"
go build $modflag -trimpath -ldflags "$ldflags" -o "$tmp/bin/mmctl" "$V8/cmd/mmctl" >&2
moddir=$(go list $modflag -m -f '{{.Dir}}' "$V8")
[ -d "$moddir/i18n" ] && [ -d "$moddir/templates" ] || die "no i18n/ or templates/ in $moddir"
cp -r "$moddir/i18n" "$moddir/templates" "$tmp/"
[ -d "$moddir/fonts" ] && cp -r "$moddir/fonts" "$tmp/"
chmod -R u+w "$tmp"

if $resolve; then
  mkdir -p "$pins"
  cp go.mod go.sum "$pins/"
  log "wrote $pins/go.mod and go.sum: commit them"
fi
pins_hash >"$tmp/PINS"
rm -rf "$out"
mv "$tmp" "$out"
rm -rf "$work"
log "built $out in $(( $(date +%s) - start ))s"
echo "$out"
