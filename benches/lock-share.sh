#!/usr/bin/env bash
# Share of wsmp-relay's CPU spent in code that takes a lock shared by rooms (issue 10 item 2,
# issue 11 item 5). Starts the release relay with 2 tokio workers, drives a relay_load scenario
# through it, records the relay with `perf record --call-graph dwarf` during the traffic and
# counts the samples whose call stack holds a function that takes a process-wide lock (room
# registry, admission registry, id registry, per-address counters) — an upper bound of the
# time spent holding them — beside the samples inside a room's own host lock and those waiting
# on a contended mutex. Loopback only, bounded in time. See benches/README.md.
set -euo pipefail
usage() {
    cat <<'USAGE'
usage: benches/lock-share.sh [--scenario tick-many|joins] [--seconds S] [--no-build]
  --scenario tick-many  200 rooms × 8 at 30 Hz, recorded after the joins (default)
  --scenario joins      2,000 clients joining 250 rooms × 8 (32 handshakes at once), then idle;
                        recorded from the start
  --seconds S           recorded seconds (default 4)
  --no-build            use target/release/{wsmp-relay,relay_load} as built
Needs perf (Debian package linux-perf) and python3.
USAGE
}
SCENARIO=tick-many
SECONDS_REC=4
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --scenario) SCENARIO="$2"; shift 2 ;;
        --seconds) SECONDS_REC="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 1; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
if [ "$BUILD" = 1 ]; then
    cargo build --release -p wsmp-relay -p wsmp-benches --bins >&2
fi
OUT="$(mktemp -d)"
trap 'kill -KILL "${RELAY_PID:-}" 2>/dev/null || true; rm -rf "$OUT"' EXIT

case "$SCENARIO" in
    tick-many) args=(--rooms 200 --per-room 8 --rate 30 --duration "$((SECONDS_REC + 8))" --warmup 1) ;;
    joins) args=(--rooms 250 --per-room 8 --settle 0.5 --duration 1 --warmup 0) ;;
    *) usage >&2; exit 2 ;;
esac

env WSMP_RELAY_MAX_CONNS_PER_IP=1000000 WSMP_RELAY_MAX_PENDING_PER_IP=1000000 TOKIO_WORKER_THREADS=2 \
    target/release/wsmp-relay --listen 127.0.0.1:0 >"$OUT/relay.out" 2>"$OUT/relay.err" &
RELAY_PID=$!
PORT=""
for _ in $(seq 1 100); do # at most 10 s
    PORT="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$OUT/relay.out")"
    [ -n "$PORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] || { echo "relay did not start: $(cat "$OUT/relay.err")" >&2; exit 1; }

record() {
    echo "recording the relay for ${SECONDS_REC}s ($SCENARIO, load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    perf record -q -F 999 --call-graph dwarf,16384 -p "$RELAY_PID" -o "$OUT/perf.data" -- sleep "$SECONDS_REC" >&2
}
load() {
    timeout 120 taskset -c 1 target/release/relay_load --url "ws://127.0.0.1:$PORT" "${args[@]}" \
        --server-pid "$RELAY_PID" >"$OUT/load.out" 2>&1
}
if [ "$SCENARIO" = joins ]; then
    # perf first: the joins take well under a second.
    record &
    PERF_PID=$!
    sleep 1
    load || { echo "relay_load failed:" >&2; cat "$OUT/load.out" >&2; exit 1; }
    wait "$PERF_PID"
else
    load &
    LOAD_PID=$!
    sleep 6 # past the joins and the warmup
    record
    wait "$LOAD_PID" || { echo "relay_load failed:" >&2; cat "$OUT/load.out" >&2; exit 1; }
fi
kill -INT "$RELAY_PID"
wait "$RELAY_PID" || true
grep -E "joined in|deliveries/s|server CPU" "$OUT/load.out" >&2 || true
perf script -i "$OUT/perf.data" -F comm,tid,ip,sym 2>/dev/null >"$OUT/perf.txt"

python3 - "$OUT/perf.txt" <<'EOF'
import collections, re, sys

samples = [s for s in open(sys.argv[1]).read().split("\n\n") if s.strip()]
# Functions that take a lock shared by every room (adapters/tokio/src/rooms.rs registry,
# adapters/tokio/src/engine.rs IdRegistry and PendingPerIp, relay/src/admission.rs,
# relay/src/metrics.rs refusal maps).
wide = re.compile(r"wsmp_relay::admission|IdRegistry|lock_ids|PendingPerIp"
                  r"|wsmp_tokio::rooms::[^\n]*(registry|retire_if_empty|::left)"
                  r"|wsmp_relay::metrics[^\n]*(refus|token)")
# A room's own host lock (adapters/tokio/src/engine.rs HostCell, Locked).
room = re.compile(r"wsmp_tokio::engine::HostCell[^\n]*::(lock|with)|wsmp_tokio::engine::Locked")
contended = re.compile(r"Mutex>::lock_contended")
n = len(samples)
if n == 0:
    sys.exit("no samples recorded")
hits = collections.Counter()
w = r = c = 0
for s in samples:
    m = wide.search(s)
    if m:
        w += 1
        hits[m.group(0)] += 1
    r += bool(room.search(s))
    c += bool(contended.search(s))
print(f"samples: {n}")
print(f"with a function taking a process-wide lock on the stack: {w} ({100 * w / n:.2f} %) {dict(hits)}")
print(f"inside a room's host lock: {r} ({100 * r / n:.1f} %)")
print(f"waiting on a contended mutex: {c} ({100 * c / n:.2f} %)")
EOF
