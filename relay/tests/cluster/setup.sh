#!/usr/bin/env bash
# Makes sure a Debian nats-server (with JetStream) is installed, for the
# cluster tests of the relay (relay/tests/cluster.rs) and the cluster bench.
#
#   bash relay/tests/cluster/setup.sh      # exit 0: ready (prints the nats-server path)
#
# When nats-server is missing it is installed with apt-get (non-interactive).
# If that fails: with CI=true it is an error (exit 1, "error: ..."),
# otherwise the tests are to be skipped (exit 3, "skip: ..."): a test that
# can skip must not skip in CI.
set -uo pipefail

fail_or_skip() {
    if [ "${CI:-}" = "true" ]; then
        echo "error: $*" >&2
        exit 1
    fi
    echo "skip: $*" >&2
    exit 3
}

find_nats() {
    command -v nats-server 2>/dev/null || { [ -x /usr/bin/nats-server ] && echo /usr/bin/nats-server; } || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; }
}

if [ -z "$(find_nats)" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        fail_or_skip "nats-server is not installed and apt-get is not available"
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends nats-server; } >/tmp/wsmp-nats-install.log 2>&1; then
        tail -n 20 /tmp/wsmp-nats-install.log >&2
        fail_or_skip "cannot install nats-server with apt-get (log: /tmp/wsmp-nats-install.log)"
    fi
    # The Debian package may start a system nats-server on 4222; the tests run their own.
    if command -v systemctl >/dev/null 2>&1; then
        systemctl stop nats-server >/dev/null 2>&1 || true
    fi
fi

NATS=$(find_nats)
[ -n "$NATS" ] && [ -x "$NATS" ] || fail_or_skip "nats-server binary not found after installation"
echo "$NATS"
