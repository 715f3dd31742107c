#!/usr/bin/env bash
# Cluster load measurement (issue 15): N `wsmp-relay --cluster` nodes and one nats-server
# (JetStream, Debian's package, installed by relay/tests/cluster/setup.sh) on 127.0.0.1, driven
# by `relay_load` with the clients of every room spread round-robin over the nodes; then the
# same load on one wsmp-relay without --cluster. Every delivery is validated by relay_load
# (exactly once, in per-sender order, intact, only at its receivers; any fault = exit 1).
# Prints a markdown table; results.jsonl, each node's /stats and logs under the output dir.
# Loopback only, every step bounded in time. See docs/cluster.md ("Measurements").
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: benches/run-cluster.sh [--rooms R] [--per-room N] [--rate HZ] [--size B]
                              [--traffic broadcast|mixed] [--duration S] [--warmup S]
                              [--nodes K] [--threads T] [--only cluster|single]
                              [--no-build] [--out DIR]
  --rooms R        rooms (default 20)
  --per-room N     clients per room (default 100: 2,000 clients)
  --rate HZ        sends per client per second (default 30)
  --size B         packet size in bytes (default 64)
  --traffic T      broadcast (default) or mixed (one / all / all-but-one targets)
  --duration S     measured seconds (default 20)
  --warmup S       warmup seconds (default 2)
  --nodes K        relay nodes of the cluster (default 3)
  --threads T      relay_load worker threads (default 1)
  --only WHAT      run only the cluster or only the single-node measurement
  --no-build       use the release binaries already built
  --out DIR        output directory (default target/wsmp-bench/cluster-<timestamp>)
USAGE
}

ROOMS=20
PER_ROOM=100
RATE=30
SIZE=64
TRAFFIC=broadcast
DURATION=20
WARMUP=2
NODES=3
THREADS=1
ONLY=""
BUILD=1
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rooms) ROOMS="${2:?}"; shift ;;
        --per-room) PER_ROOM="${2:?}"; shift ;;
        --rate) RATE="${2:?}"; shift ;;
        --size) SIZE="${2:?}"; shift ;;
        --traffic) TRAFFIC="${2:?}"; shift ;;
        --duration) DURATION="${2:?}"; shift ;;
        --warmup) WARMUP="${2:?}"; shift ;;
        --nodes) NODES="${2:?}"; shift ;;
        --threads) THREADS="${2:?}"; shift ;;
        --only) ONLY="${2:?}"; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT="${2:?}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run-cluster.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
awk -v d="$DURATION" 'BEGIN { exit !(d > 0 && d <= 300) }' || { echo "--duration must be in (0, 300]" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-target/wsmp-bench/cluster-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT/logs"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
log() { echo "[run-cluster] $*" >&2; }

CLIENTS=$((ROOMS * PER_ROOM))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((CLIENTS + 256)) ]; then
    log "ERROR: $CLIENTS clients need RLIMIT_NOFILE >= $((CLIENTS + 256)) (hard limit is $(ulimit -Hn))"
    exit 1
fi

NATS_BIN="$(bash relay/tests/cluster/setup.sh)" || { log "ERROR: nats-server is not available"; exit 1; }
if [ "$BUILD" = 1 ]; then
    log "building wsmp-relay and relay_load (release)"
    CARGO_INCREMENTAL=0 cargo build --release -p wsmp-relay -p wsmp-benches --bin relay_load >&2
fi
RELAY=target/release/wsmp-relay
LOADGEN=target/release/relay_load
[ -x "$RELAY" ] && [ -x "$LOADGEN" ] || { log "ERROR: release binaries missing (drop --no-build)"; exit 1; }

# Processes this script started (stopped on exit, by pid).
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# Waits (at most 20 s) for a line matching sed expression $2 in file $1; prints the match.
wait_line() {
    local f="$1" expr="$2" pid="$3" i v
    for i in $(seq 1 200); do
        v="$(sed -n "$expr" "$f" 2>/dev/null | head -n1)"
        [ -n "$v" ] && { echo "$v"; return 0; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

NATS_PID=""
NATS_PORT=""
start_nats() {
    rm -rf "$OUT/js"
    "$NATS_BIN" -a 127.0.0.1 -p -1 -js -sd "$OUT/js" >"$OUT/logs/nats.log" 2>&1 &
    NATS_PID=$!
    PIDS+=("$NATS_PID")
    NATS_PORT="$(wait_line "$OUT/logs/nats.log" 's/.*Listening for client connections on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$NATS_PID")" \
        || { log "ERROR: nats-server did not start (see $OUT/logs/nats.log)"; exit 1; }
    wait_line "$OUT/logs/nats.log" '/Server is ready/p' "$NATS_PID" >/dev/null \
        || { log "ERROR: nats-server not ready"; exit 1; }
}

# Starts a relay ($1 = tag, rest = extra flags); sets NODE_PID, NODE_PORT, NODE_ADMIN.
NODE_PID=""; NODE_PORT=""; NODE_ADMIN=""
start_relay() {
    local tag="$1"; shift
    # Every load client is 127.0.0.x: lift the per-address limits.
    RUST_LOG="info,async_nats=warn" "$RELAY" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --room-max-peers "$PER_ROOM" --max-peers $((CLIENTS + 64)) \
        --max-conns-per-ip 1000000 --max-pending-per-ip 1000000 "$@" \
        >"$OUT/logs/$tag.stdout" 2>"$OUT/logs/$tag.stderr" &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    NODE_PORT="$(wait_line "$OUT/logs/$tag.stdout" 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$NODE_PID")" \
        || { log "ERROR: $tag did not start (see $OUT/logs/$tag.stderr)"; exit 1; }
    NODE_ADMIN="$(wait_line "$OUT/logs/$tag.stdout" 's/^admin listening on \(127\.0\.0\.1:[0-9][0-9]*\)$/\1/p' "$NODE_PID")" \
        || { log "ERROR: $tag has no admin port"; exit 1; }
}

LIMIT=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 60 + 30 + 60 }')
FAILED=0
# Runs relay_load: $1 = setup name, $2 = URL list, $3 = PID list.
run_load() {
    local name="$1" urls="$2" pids="$3" out="$OUT/logs/$1.load" load0 load1
    load0="$(cut -d' ' -f1-3 /proc/loadavg)"
    log "$name: $ROOMS rooms x $PER_ROOM clients, $SIZE B $TRAFFIC at $RATE Hz, ${WARMUP}s + ${DURATION}s (loadavg $load0)"
    if timeout "$LIMIT" "$LOADGEN" --url "$urls" --rooms "$ROOMS" --per-room "$PER_ROOM" \
        --rate "$RATE" --size "$SIZE" --traffic "$TRAFFIC" --duration "$DURATION" --warmup "$WARMUP" \
        --drain 30 --join-timeout 60 --threads "$THREADS" --server-pid "$pids" --json \
        >"$out" 2>"$out.err"; then
        load1="$(cut -d' ' -f1-3 /proc/loadavg)"
        echo "{\"setup\":\"$name\",\"loadavg_before\":\"$load0\",\"loadavg_after\":\"$load1\",$(tail -n1 "$out" | cut -c2-)" >>"$RESULTS"
    else
        FAILED=1
        local why
        why="$(grep -m1 FAILED "$out.err" || tail -n1 "$out.err")"
        echo "{\"setup\":\"$name\",\"loadavg_before\":\"$load0\",\"failed\":\"${why//\"/\'}\"}" >>"$RESULTS"
        log "FAILED: $name: $why"
    fi
}

stats() { # admin address, file
    curl -s --max-time 5 "http://$1/stats" >"$2" 2>/dev/null || echo "{}" >"$2"
}

stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
}

if [ "$ONLY" != single ]; then
    start_nats
    URLS=(); NPIDS=(); ADMINS=()
    for i in $(seq 1 "$NODES"); do
        start_relay "node$i" --cluster "nats://127.0.0.1:$NATS_PORT" --node-name "node$i"
        URLS+=("ws://127.0.0.1:$NODE_PORT"); NPIDS+=("$NODE_PID"); ADMINS+=("$NODE_ADMIN")
    done
    sleep 2 # heartbeats: every node has seen the others
    run_load "cluster-$NODES" "$(IFS=,; echo "${URLS[*]}")" "$(IFS=,; echo "${NPIDS[*]},$NATS_PID")"
    for i in $(seq 1 "$NODES"); do stats "${ADMINS[$((i - 1))]}" "$OUT/node$i.stats.json"; done
    stop_all
fi
if [ "$ONLY" != cluster ]; then
    start_relay single
    run_load single "ws://127.0.0.1:$NODE_PORT" "$NODE_PID"
    stats "$NODE_ADMIN" "$OUT/single.stats.json"
    stop_all
fi

# ---------------------------------------------------------------------------------------------
get() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\)\"\{0,1\}[,}].*/\1/p" | head -n1; }
ms() { awk -v v="$1" 'BEGIN { if (v == "" || v == "null") print "—"; else printf "%.2f", v / 1000 }'; }
{
    echo
    echo "Cluster benchmark: $ROOMS rooms × $PER_ROOM clients ($CLIENTS), $SIZE B $TRAFFIC at $RATE Hz, ${WARMUP} s warmup + ${DURATION} s, $(nproc) CPUs, nothing pinned."
    echo "Every delivery validated by relay_load (exactly once, per-sender order, intact): a row with figures had 0 lost, 0 duplicated."
    echo "\"server CPU %\": relay node(s) + nats-server (100 % = one core); \"each\": CPU seconds of node1..nodeK[, nats] in the window."
    echo
    echo "| setup | deliveries/s | offered/s | p50 ms | p99 ms | cross-node p50 ms | cross-node p99 ms | server CPU % | each (s) | µs/delivery | loadgen CPU % | send lag p99 ms | other CPU % | loadavg before | loadavg after |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |"
    while read -r r; do
        name="$(echo "$r" | get setup)"
        if [ -n "$(echo "$r" | get failed)" ]; then
            echo "| $name | FAILED: $(echo "$r" | get failed) | | | | | | | | | | | | $(echo "$r" | get loadavg_before) | |"
            continue
        fi
        each="$(echo "$r" | sed -n 's/.*"server_cpu_s_each":\[\([^]]*\)\].*/\1/p' | tr ',' '/')"
        cross50="$(echo "$r" | get cross_p50_us)"; cross99="$(echo "$r" | get cross_p99_us)"
        [ "$(echo "$r" | get cross_deliveries)" = 0 ] && { cross50=null; cross99=null; }
        printf '| %s | %.0f | %.0f | %s | %s | %s | %s | %.0f | %s | %.2f | %.0f | %s | %.0f | %s | %s |\n' \
            "$name" "$(echo "$r" | get deliveries_per_sec)" "$(echo "$r" | get offered_deliveries_per_sec)" \
            "$(ms "$(echo "$r" | get p50_us)")" "$(ms "$(echo "$r" | get p99_us)")" \
            "$(ms "$cross50")" "$(ms "$cross99")" \
            "$(echo "$r" | get server_cpu_pct)" "$each" "$(echo "$r" | get server_cpu_us_per_delivery)" \
            "$(echo "$r" | get loadgen_cpu_pct)" "$(ms "$(echo "$r" | get send_lag_p99_us)")" \
            "$(echo "$r" | get other_cpu_pct)" "$(echo "$r" | get loadavg_before)" "$(echo "$r" | get loadavg_after)"
    done <"$RESULTS"
    for f in "$OUT"/node*.stats.json; do
        [ -f "$f" ] || continue
        echo
        echo "$(basename "$f" .stats.json) cluster figures: $(sed -n 's/.*"cluster":\({[^}]*}\).*/\1/p' "$f")"
    done
    echo
} | tee "$OUT/table.md"

if [ "$FAILED" != 0 ]; then
    log "a run FAILED (see $RESULTS and $OUT/logs)"
    exit 1
fi
