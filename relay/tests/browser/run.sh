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
# and target/relay-demo-b.png (page B). A second relay with --jwt-key-file
# (a generated HS256 secret) checks the page's player-token field: a valid
# token in ?token= joins without the auth exchange, a wrong-room one is refused.
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
jwt_pid=""
stop_relay() {
    local pid=$1
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        # SIGINT: close at once (SIGTERM would drain for --drain-timeout).
        kill -INT "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
}
cleanup() {
    stop_relay "$relay_pid"
    stop_relay "$jwt_pid"
    rm -rf "$work"
}
trap cleanup EXIT

# start_relay NAME ARGS...: starts a relay, sets $addr to its HOST:PORT, $pid to its pid.
start_relay() {
    local name=$1
    shift
    "$bin" --listen 127.0.0.1:0 "$@" >"$work/$name.stdout" 2>"$work/$name.stderr" &
    pid=$!
    addr=""
    for _ in $(seq 100); do
        addr="$(sed -n 's/^listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$work/$name.stdout" | head -n1)"
        [ -n "$addr" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$addr" ]; then
        log "relay $name did not print 'listening on'; stderr:"
        cat "$work/$name.stderr" >&2
        exit 1
    fi
    log "relay $name ($pid) listening on $addr"
}

start_relay main
relay_pid=$pid
main_addr=$addr
# HS256 secret for the player-token check (>= 32 bytes, one line).
head -c 36 /dev/urandom | base64 >"$work/jwt.key"
start_relay jwt --jwt-key-file "$work/jwt.key"
jwt_pid=$pid
jwt_addr=$addr

# ---- the test ----------------------------------------------------------------
status=0
PLAYWRIGHT_CORE="$pw_dir/node_modules/playwright-core" \
    CHROMIUM="$CHROMIUM" \
    RELAY_URL="http://$main_addr" \
    RELAY_JWT_URL="http://$jwt_addr" \
    JWT_KEY_FILE="$work/jwt.key" \
    SCREENSHOT="$target_dir/relay-demo.png" \
    SCREENSHOT_B="$target_dir/relay-demo-b.png" \
    TMPDIR="$work" \
    timeout --kill-after=5 "${BROWSER_TEST_TIMEOUT:-90}" node "$here/demo.test.js" || status=$?

for name in main jwt; do
    [ "$name" = main ] && pid=$relay_pid || pid=$jwt_pid
    if ! kill -0 "$pid" 2>/dev/null; then
        log "the relay $name died during the test; stderr:"
        cat "$work/$name.stderr" >&2
        status=1
    fi
done
if [ "$status" != 0 ]; then
    log "FAILED (exit $status); relay stderr tails:"
    tail -n 20 "$work/main.stderr" "$work/jwt.stderr" >&2 || true
    exit "$status"
fi
log "OK"
