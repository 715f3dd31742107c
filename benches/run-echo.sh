#!/usr/bin/env bash
# End-to-end echo benchmark: wsmp's echo servers against rival WebSocket crates.
# Builds release binaries, starts each server on 127.0.0.1 port 0 (a fresh process per
# scenario), drives it with the neutral `loadgen` / `idle_conns` tools and prints markdown
# tables. Loopback only; every run is bounded in time. See benches/README.md.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: benches/run-echo.sh [--quick] [--duration S] [--warmup S] [--skip-idle]
                           [--idle-conns N] [--servers NAME,NAME] [--baseline NAME]
                           [--threads N] [--no-build] [--out DIR]
  --quick        smoke test: 1 s + 0.5 s warmup per scenario, 1000 idle connections
  --duration S   measured seconds per scenario (default 5)
  --warmup S     warmup seconds per scenario (default 1)
  --skip-idle    skip scenario (d), idle memory
  --idle-conns N connections for scenario (d) (default 10000)
  --servers LIST only these servers (comma-separated names from the list below)
  --baseline N   server the ratio column compares with (default tokio-tungstenite)
  --threads N    loadgen worker threads (default 1)
  --no-build     use the binaries already built
  --out DIR      where logs and results go (default target/wsmp-bench/<timestamp>)
USAGE
}

# ---------------------------------------------------------------------------------------------
# Servers: "name|build command|binary". Each binary must follow the `echo` contract of
# shared/design/CLI.md (--listen HOST:PORT, prints `listening on HOST:PORT`, exit 0 on SIGINT).
# The binary is copied right after its build, so examples of the same name in different
# packages (both wsmp adapters have `examples/echo`) do not overwrite each other.
SERVERS=(
    "tokio-tungstenite|cargo build --release -p wsmp-benches --bins|target/release/echo_tokio_tungstenite"
    "fastwebsockets|cargo build --release -p wsmp-benches --bins|target/release/echo_fastwebsockets"
    "tungstenite-blocking|cargo build --release -p wsmp-benches --bins|target/release/echo_tungstenite_blocking"
    "wsmp-tokio|cargo build --release -p wsmp-tokio --example echo|target/release/examples/echo"
    "wsmp-std|cargo build --release -p wsmp-std --example echo|target/release/examples/echo"
)

# Scenarios: "id|label|connections|size|in-flight".
SCENARIOS=(
    "a|64 conn x 16 B, 1 in flight|64|16|1"
    "b|64 conn x 16 B, 64 in flight|64|16|64"
    "c|4 conn x 64 KiB, 1 in flight|4|65536|1"
)
# ---------------------------------------------------------------------------------------------

DURATION=5
WARMUP=1
SKIP_IDLE=0
IDLE_CONNS=10000
ONLY=""
BASELINE="tokio-tungstenite"
THREADS=1
BUILD=1
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) DURATION=1; WARMUP=0.5; IDLE_CONNS=1000 ;;
        --duration) DURATION="${2:?}"; shift ;;
        --warmup) WARMUP="${2:?}"; shift ;;
        --skip-idle) SKIP_IDLE=1 ;;
        --idle-conns) IDLE_CONNS="${2:?}"; shift ;;
        --servers) ONLY="${2:?}"; shift ;;
        --baseline) BASELINE="${2:?}"; shift ;;
        --threads) THREADS="${2:?}"; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT="${2:?}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run-echo.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-target/wsmp-bench/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT/bin" "$OUT/logs"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
log() { echo "[run-echo] $*" >&2; }

# 10,000 idle connections need as many descriptors in the server and in the client.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "RLIMIT_NOFILE soft=$(ulimit -n); results in $OUT"
LOAD_BEFORE="$(cut -d' ' -f1 /proc/loadavg)"
if awk -v l="$LOAD_BEFORE" 'BEGIN { exit !(l > 0.5) }'; then
    log "WARNING: load average is $LOAD_BEFORE: other work on this machine will skew the numbers"
fi

selected() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

# Build the tools, then each server, copying its binary away at once.
if [ "$BUILD" = 1 ]; then
    log "building loadgen and idle_conns (release)"
    cargo build --release -p wsmp-benches --bins >&2
fi
cp target/release/loadgen target/release/idle_conns "$OUT/bin/"
NAMES=()
for entry in "${SERVERS[@]}"; do
    IFS='|' read -r name build bin <<<"$entry"
    selected "$name" || continue
    if [ "$BUILD" = 1 ]; then
        log "building $name: $build"
        bash -c "$build" >&2
    fi
    [ -x "$bin" ] || { log "ERROR: $name: $bin is missing"; exit 1; }
    cp "$bin" "$OUT/bin/server-$name"
    NAMES+=("$name")
done
[ "${#NAMES[@]}" -gt 0 ] || { log "ERROR: no server selected"; exit 2; }

SERVER_PID=""
SERVER_PORT=""
# Starts server $1 with logs named after scenario $2; sets SERVER_PID and SERVER_PORT.
start_server() {
    local name="$1" tag="$2" i
    local so="$OUT/logs/$name-$tag.stdout" se="$OUT/logs/$name-$tag.stderr"
    "$OUT/bin/server-$name" --listen 127.0.0.1:0 >"$so" 2>"$se" &
    SERVER_PID=$!
    SERVER_PORT=""
    for i in $(seq 1 100); do # at most 10 s
        SERVER_PORT="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$so" | head -n1)"
        [ -n "$SERVER_PORT" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "ERROR: $name did not print 'listening on 127.0.0.1:PORT' (see $se)"
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    return 1
}

# Stops the server with SIGINT (bounded wait, then SIGKILL); sets SERVER_RC to its exit status.
SERVER_RC=""
stop_server() {
    local i
    kill -INT "$SERVER_PID" 2>/dev/null || true
    for i in $(seq 1 50); do # at most 5 s
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_RC="killed"
        return
    fi
    SERVER_RC=0
    wait "$SERVER_PID" || SERVER_RC=$?
}

FAILED=0
record_failure() { # name scenario reason
    FAILED=1
    local reason="${3//\"/\'}"
    echo "{\"server\":\"$1\",\"scenario\":\"$2\",\"failed\":\"$reason\"}" >>"$RESULTS"
    log "FAILED: $1 scenario $2: $3"
}

LIMIT=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 40 }')
for name in "${NAMES[@]}"; do
    for sc in "${SCENARIOS[@]}"; do
        IFS='|' read -r id label conns size k <<<"$sc"
        log "$name: scenario $id ($label), ${WARMUP}s warmup + ${DURATION}s"
        start_server "$name" "$id" || { record_failure "$name" "$id" "server did not start"; continue; }
        out="$OUT/logs/$name-$id.loadgen"
        if timeout "$LIMIT" "$OUT/bin/loadgen" --url "ws://127.0.0.1:$SERVER_PORT" \
            --connections "$conns" --size "$size" --in-flight "$k" --duration "$DURATION" \
            --warmup "$WARMUP" --server-pid "$SERVER_PID" --threads "$THREADS" --json \
            >"$out" 2>"$out.err"; then
            echo "{\"server\":\"$name\",\"scenario\":\"$id\",$(tail -n1 "$out" | cut -c2-)" >>"$RESULTS"
        else
            record_failure "$name" "$id" "loadgen: $(head -n1 "$out.err")"
        fi
        stop_server
        [ "$SERVER_RC" = 0 ] || record_failure "$name" "$id-exit" "server exit status $SERVER_RC after SIGINT"
    done
    if [ "$SKIP_IDLE" = 0 ]; then
        log "$name: scenario d (idle memory, $IDLE_CONNS connections)"
        start_server "$name" d || { record_failure "$name" d "server did not start"; continue; }
        out="$OUT/logs/$name-d.idle"
        if timeout 300 "$OUT/bin/idle_conns" --url "ws://127.0.0.1:$SERVER_PORT" \
            --connections "$IDLE_CONNS" --server-pid "$SERVER_PID" --json >"$out" 2>"$out.err"; then
            echo "{\"server\":\"$name\",\"scenario\":\"d\",$(tail -n1 "$out" | cut -c2-)" >>"$RESULTS"
        else
            record_failure "$name" d "idle_conns: $(head -n1 "$out.err")"
        fi
        stop_server
        [ "$SERVER_RC" = 0 ] || record_failure "$name" "d-exit" "server exit status $SERVER_RC after SIGINT"
    fi
done

# ---------------------------------------------------------------------------------------------
# Tables. Results are flat one-line JSON objects; `get FIELD` reads one from stdin.
get() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\)\"\{0,1\}[,}].*/\1/p" | head -n1; }
row() { grep -F "\"server\":\"$1\",\"scenario\":\"$2\"," "$RESULTS" | head -n1 || true; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "" || v == "null") print "—"; else printf f, v }'; }

{
    echo
    echo "Echo throughput: ${WARMUP} s warmup + ${DURATION} s per scenario, loadgen threads=$THREADS, $(nproc) CPUs."
    echo "\"other CPU %\" is CPU used by the rest of the machine during the window (100 % = one core): high values skew that row."
    echo
    echo "| server | scenario | msgs/s | MB/s | p50 µs | p99 µs | server CPU µs/msg | loadgen CPU % | other CPU % | vs $BASELINE |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for sc in "${SCENARIOS[@]}"; do
        IFS='|' read -r id label _ <<<"$sc"
        base="$(row "$BASELINE" "$id" | get msgs_per_sec)"
        for name in "${NAMES[@]}"; do
            r="$(row "$name" "$id")"
            if [ -z "$r" ] || [ -n "$(echo "$r" | get failed)" ]; then
                echo "| $name | ($id) $label | FAILED: $(echo "$r" | get failed) | | | | | | | |"
                continue
            fi
            mps="$(echo "$r" | get msgs_per_sec)"
            ratio="—"
            if [ -n "$base" ] && [ "$base" != "null" ]; then
                ratio="$(awk -v a="$mps" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "—" }')"
            fi
            echo "| $name | ($id) $label | $(fmt "$mps" %.0f) | $(fmt "$(echo "$r" | get mb_per_sec)" %.2f) | $(fmt "$(echo "$r" | get p50_us)" %.0f) | $(fmt "$(echo "$r" | get p99_us)" %.0f) | $(fmt "$(echo "$r" | get server_cpu_us_per_msg)" %.2f) | $(fmt "$(echo "$r" | get loadgen_cpu_pct)" %.0f) | $(fmt "$(echo "$r" | get other_cpu_pct)" %.0f) | $ratio |"
        done
    done
    if [ "$SKIP_IDLE" = 0 ]; then
        echo
        echo "Idle memory: server VmRSS growth with $IDLE_CONNS open, idle connections"
        echo
        echo "| server | connections | RSS before KiB | RSS after KiB | bytes / connection | vs $BASELINE |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: |"
        base="$(row "$BASELINE" d | get rss_bytes_per_conn)"
        for name in "${NAMES[@]}"; do
            r="$(row "$name" d)"
            if [ -z "$r" ] || [ -n "$(echo "$r" | get failed)" ]; then
                echo "| $name | FAILED: $(echo "$r" | get failed) | | | | |"
                continue
            fi
            per="$(echo "$r" | get rss_bytes_per_conn)"
            ratio="—"
            if [ -n "$base" ] && [ "$base" != "null" ]; then
                ratio="$(awk -v a="$per" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "—" }')"
            fi
            echo "| $name | $(echo "$r" | get connections) | $(echo "$r" | get rss_before_kib) | $(echo "$r" | get rss_after_kib) | $(fmt "$per" %.0f) | $ratio |"
        done
    fi
    echo
} | tee "$OUT/table.md"

if [ "$FAILED" != 0 ]; then
    log "some runs FAILED (see $RESULTS and $OUT/logs)"
    exit 1
fi
