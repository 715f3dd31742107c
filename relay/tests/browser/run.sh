#!/usr/bin/env bash
# Headless Chromium end-to-end test of the wsmp-relay demo page (relay/web/).
#
#   bash relay/tests/browser/run.sh
#
# Installs what it needs itself: Debian's chromium (apt-get, only when
# /usr/bin/chromium is missing) and playwright-core from npm into
# target/browser-test/ (cached; never downloads a browser). Builds and starts
# the relay on 127.0.0.1 port 0, then runs demo.test.js, which drives three
# pages (separate browser contexts) through join, peer list, broadcast and
# single-peer chat, and leave, with permessage-deflate negotiated (checked
# from each page: ws.extensions). Screenshot: target/relay-demo.png (page A)
# and target/relay-demo-b.png (page B).
#
# Environment:
#   WSMP_RELAY_BIN   use this relay binary instead of building one
#   CARGO_PROFILE    cargo profile to build (default: dev)
#   CHROMIUM         browser binary (default: /usr/bin/chromium)
#   BROWSER_TEST_TIMEOUT  seconds for the browser part (default: 90)
#
# Exit status: 0 when every check passed, non-zero otherwise.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$target_dir"
log() { printf '[browser-test] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root to run: $*"; return 1
    fi
}

# ---- chromium (Debian package) ---------------------------------------------
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    log "installing Debian chromium"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
[ -x "$CHROMIUM" ] || { log "no chromium at $CHROMIUM"; exit 1; }

# ---- playwright-core (npm, cached under target/) ---------------------------
PW_VERSION="1.65.1"
pw_dir="$target_dir/browser-test/node"
if [ "$(cat "$pw_dir/.installed" 2>/dev/null || true)" != "$PW_VERSION" ]; then
    log "installing playwright-core@$PW_VERSION into $pw_dir"
    mkdir -p "$pw_dir"
    # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core never downloads one, but be explicit.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$pw_dir" --no-audit --no-fund \
        --no-package-lock --loglevel=error "playwright-core@$PW_VERSION" >&2
    echo "$PW_VERSION" >"$pw_dir/.installed"
fi

# ---- the relay ---------------------------------------------------------------
if [ -n "${WSMP_RELAY_BIN:-}" ]; then
    bin="$WSMP_RELAY_BIN"
else
    profile="${CARGO_PROFILE:-dev}"
    log "building wsmp-relay ($profile)"
    cargo build --quiet --profile "$profile" -p wsmp-relay --bin wsmp-relay
    case "$profile" in dev) sub=debug ;; *) sub="$profile" ;; esac
    bin="$target_dir/$sub/wsmp-relay"
fi
[ -x "$bin" ] || { log "no relay binary at $bin"; exit 1; }

work="$(mktemp -d "$target_dir/browser-test/run.XXXXXX")"
relay_pid=""
cleanup() {
    if [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; then
        kill -TERM "$relay_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$relay_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$relay_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" --listen 127.0.0.1:0 >"$work/stdout" 2>"$work/stderr" &
relay_pid=$!
addr=""
for _ in $(seq 100); do
    addr="$(sed -n 's/^listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$work/stdout" | head -n1)"
    [ -n "$addr" ] && break
    kill -0 "$relay_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$addr" ]; then
    log "relay did not print 'listening on'; stderr:"
    cat "$work/stderr" >&2
    exit 1
fi
log "relay $relay_pid listening on $addr"

# ---- the test ----------------------------------------------------------------
status=0
PLAYWRIGHT_CORE="$pw_dir/node_modules/playwright-core" \
    CHROMIUM="$CHROMIUM" \
    RELAY_URL="http://$addr" \
    SCREENSHOT="$target_dir/relay-demo.png" \
    SCREENSHOT_B="$target_dir/relay-demo-b.png" \
    TMPDIR="$work" \
    timeout --kill-after=5 "${BROWSER_TEST_TIMEOUT:-90}" node "$here/demo.test.js" || status=$?

if ! kill -0 "$relay_pid" 2>/dev/null; then
    log "the relay died during the test; stderr:"
    cat "$work/stderr" >&2
    status=1
fi
if [ "$status" != 0 ]; then
    log "FAILED (exit $status); relay stderr tail:"
    tail -n 20 "$work/stderr" >&2 || true
    exit "$status"
fi
log "OK"
