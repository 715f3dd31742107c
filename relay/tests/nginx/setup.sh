#!/usr/bin/env bash
# Makes sure a Debian nginx with the stream module (PROXY protocol to the
# upstream) is installed, for the reverse-proxy tests of the relay.
#
#   bash relay/tests/nginx/setup.sh      # exit 0: ready (prints the nginx path)
#
# When nginx is missing it is installed with apt-get (non-interactive). If that
# fails: with CI=true it is an error (exit 1, "error: ..."), otherwise the
# tests are to be skipped (exit 3, "skip: ..."): a test that can skip must not
# skip in CI.
set -uo pipefail

fail_or_skip() {
    if [ "${CI:-}" = "true" ]; then
        echo "error: $*" >&2
        exit 1
    fi
    echo "skip: $*" >&2
    exit 3
}

STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so

have_nginx() {
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]
}

if ! have_nginx || [ ! -f "$STREAM_MODULE" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        fail_or_skip "nginx is not installed and apt-get is not available"
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx libnginx-mod-stream; } >/tmp/wsmp-nginx-install.log 2>&1; then
        tail -n 20 /tmp/wsmp-nginx-install.log >&2
        fail_or_skip "cannot install nginx with apt-get (log: /tmp/wsmp-nginx-install.log)"
    fi
    # The Debian package starts a system nginx on port 80; the tests run their own.
    if command -v systemctl >/dev/null 2>&1; then
        systemctl stop nginx >/dev/null 2>&1 || true
    fi
    if [ -f /run/nginx.pid ]; then
        kill "$(cat /run/nginx.pid)" 2>/dev/null || true
    fi
fi

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || fail_or_skip "nginx binary not found after installation"
[ -f "$STREAM_MODULE" ] || fail_or_skip "nginx stream module missing ($STREAM_MODULE)"
echo "$NGINX"
