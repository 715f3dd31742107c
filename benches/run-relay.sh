#!/usr/bin/env bash
# End-to-end relay benchmark: wsmp-relay (this tree), wsmp-relay built from a git revision
# (v0.1.0 by default) and a minimal tokio-tungstenite relay, driven by the neutral `relay_load`
# tool (raw TCP, Godot 4 client bytes, every delivery validated). A fresh server process per
# scenario; relay pinned to CPU 0 and load generator to CPU 1 unless --no-pin. Prints markdown
# tables; results.jsonl and logs under target/wsmp-bench/. Loopback only, bounded in time.
# See benches/README.md ("Relay benchmark").
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: benches/run-relay.sh [--quick] [--duration S] [--warmup S] [--servers NAME,NAME]
                            [--scenarios ID,ID] [--baseline NAME] [--git REV]... [--scaling]
                            [--coalesce S]... [--no-pin] [--nice N] [--no-build] [--out DIR]
  --quick          smoke run: 0.5 s warmup + 1 s per scenario
  --duration S     measured seconds per scenario (default 5)
  --warmup S       warmup seconds per scenario (default 1)
  --servers LIST   only these servers (names from the list below, comma-separated)
  --scenarios LIST only these scenarios (tick, tick-many, saturation, mixed, idle)
  --baseline NAME  server the ratio columns compare with (default wsmp-relay@v0.1.0)
  --git REV        also run wsmp-relay built from git revision REV (as wsmp-relay@REV);
                   repeatable
  --coalesce S     also run this tree's wsmp-relay with --coalesce-window S (as
                   wsmp-relay~cwS, through WSMP_RELAY_COALESCE_WINDOW); repeatable
  --scaling        also run tick-many and saturation with the relay unpinned and
                   TOKIO_WORKER_THREADS=1 and 2 (the scaling figure)
  --no-pin         do not pin the relay and the load generator to CPUs
  --nice N         run relay and load generator at niceness N (e.g. -10 as root, so other
                   work on a shared machine takes less of their CPUs; same for every server)
  --no-build       use the binaries already built
  --out DIR        where logs and results go (default target/wsmp-bench/relay-<timestamp>)
USAGE
}

# ---------------------------------------------------------------------------------------------
# Servers: "name|build command|binary". Each follows the server contract of
# shared/design/CLI.md (--listen HOST:PORT, prints `listening on HOST:PORT`, exit 0 on SIGINT).
# `build_git REV` builds wsmp-relay from a git revision in its own directory (see below).
V010=991a9001fc21f376a67f9c6a74369dc807324d04
SERVERS=(
    "wsmp-relay|cargo build --release -p wsmp-relay|target/release/wsmp-relay"
    # v0.1.0 is commit 991a900 (the v0.1 milestone's last commit on main); a clean clone has
    # no tags, so the commit is named, not the tag.
    "wsmp-relay@v0.1.0|build_git $V010|@git:$V010"
    "tokio-tungstenite|cargo build --release -p wsmp-benches --bins|target/release/relay_tokio_tungstenite"
)

# Scenarios: "id|label|relay_load arguments" (exact definitions in benches/README.md).
SCENARIOS=(
    "tick|1 room × 32, 64 B broadcast, 30 Hz|--rooms 1 --per-room 32 --rate 30"
    "tick-many|200 rooms × 8, 64 B broadcast, 30 Hz|--rooms 200 --per-room 8 --rate 30"
    "saturation|1 room × 16, 64 B broadcast, 8 in flight|--rooms 1 --per-room 16 --window 8"
    "mixed|50 rooms × 8, 64 B mixed targets, 30 Hz|--rooms 50 --per-room 8 --rate 30 --traffic mixed"
    "idle|250 rooms × 8 = 2000 clients held idle|--rooms 250 --per-room 8 --settle 1"
)
# Scenarios repeated for the scaling figure (--scaling).
SCALING_SCENARIOS="tick-many saturation"
# ---------------------------------------------------------------------------------------------

ARGV=("$@")
# Extra environment of a server (NAME=VALUE), by server name (--coalesce).
declare -A SERVER_ENV=()
DURATION=5
WARMUP=1
ONLY=""
ONLY_SC=""
BASELINE="wsmp-relay@v0.1.0"
SCALING=0
PIN=1
NICE=0
BUILD=1
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) DURATION=1; WARMUP=0.5 ;;
        --duration) DURATION="${2:?}"; shift ;;
        --warmup) WARMUP="${2:?}"; shift ;;
        --servers) ONLY="${2:?}"; shift ;;
        --scenarios) ONLY_SC="${2:?}"; shift ;;
        --baseline) BASELINE="${2:?}"; shift ;;
        --git) SERVERS+=("wsmp-relay@${2:?}|build_git ${2:?}|@git:${2:?}"); shift ;;
        --coalesce)
            SERVERS+=("wsmp-relay~cw${2:?}|true|target/release/wsmp-relay")
            SERVER_ENV["wsmp-relay~cw${2:?}"]="WSMP_RELAY_COALESCE_WINDOW=${2:?}"
            shift ;;
        --scaling) SCALING=1 ;;
        --no-pin) PIN=0 ;;
        --nice) NICE="${2:?}"; shift ;;
        --no-build) BUILD=0 ;;
        --out) OUT="${2:?}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run-relay.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# --nice: with the kernel's autogroup scheduling (sched_autogroup_enabled=1) CPU time is shared
# between sessions first, and a process's niceness only counts inside its session. So the
# script re-runs itself in a session of its own (setsid) and gives that session's autogroup the
# niceness; the plain `nice` below covers kernels without autogroup.
if [ "$NICE" != 0 ] && [ -z "${WSMP_BENCH_OWN_SESSION:-}" ]; then
    exec env WSMP_BENCH_OWN_SESSION=1 setsid --wait "$0" "${ARGV[@]}"
fi
if [ "$NICE" != 0 ] && [ -w "/proc/$$/autogroup" ]; then
    echo "$NICE" >"/proc/$$/autogroup" || echo "[run-relay] WARNING: cannot set the autogroup niceness" >&2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-target/wsmp-bench/relay-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT/bin" "$OUT/logs"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
log() { echo "[run-relay] $*" >&2; }

# 2,000 clients need as many descriptors in the relay and in the load generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "RLIMIT_NOFILE soft=$(ulimit -n); results in $OUT"
if [ "$(ulimit -n)" -lt 4200 ]; then
    log "ERROR: the idle scenario needs RLIMIT_NOFILE >= 4200 (hard limit is $(ulimit -Hn))"
    exit 1
fi
if [ "$PIN" = 1 ] && [ "$(nproc)" -lt 2 ]; then
    log "only $(nproc) CPU: not pinning"
    PIN=0
fi
command -v taskset >/dev/null || { [ "$PIN" = 0 ] || { log "ERROR: taskset (util-linux) missing; use --no-pin"; exit 1; }; }
LOAD_BEFORE="$(cut -d' ' -f1 /proc/loadavg)"
if awk -v l="$LOAD_BEFORE" 'BEGIN { exit !(l > 0.5) }'; then
    log "WARNING: load average is $LOAD_BEFORE: other work on this machine will skew the numbers"
fi

selected() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
scenario_selected() { [ -z "$ONLY_SC" ] || [[ ",$ONLY_SC," == *",$1,"* ]]; }

# Builds wsmp-relay from git revision $1 into target/wsmp-bench/git-<commit>/ (source tree from
# `git archive`, its own target directory); reuses an earlier build of the same commit.
build_git() {
    local rev="$1" commit dir
    commit="$(git rev-parse --verify "$rev^{commit}")" || { log "ERROR: unknown revision $rev"; return 1; }
    dir="$ROOT/target/wsmp-bench/git-$commit"
    if [ -x "$dir/target/release/wsmp-relay" ]; then
        log "reusing the build of $rev ($commit) in $dir"
        return 0
    fi
    rm -rf "$dir/src"
    mkdir -p "$dir/src"
    git archive "$commit" | tar -x -C "$dir/src"
    log "building wsmp-relay at $rev ($commit) in $dir (first time only)"
    (cd "$dir/src" && CARGO_TARGET_DIR="$dir/target" cargo build --release -p wsmp-relay >&2)
}
git_bin() { # REV -> path of its built binary
    local commit
    commit="$(git rev-parse --verify "$1^{commit}")" || return 1
    echo "$ROOT/target/wsmp-bench/git-$commit/target/release/wsmp-relay"
}

if [ "$BUILD" = 1 ]; then
    log "building relay_load (release)"
    cargo build --release -p wsmp-benches --bins >&2
fi
cp target/release/relay_load "$OUT/bin/"
NAMES=()
for entry in "${SERVERS[@]}"; do
    IFS='|' read -r name build bin <<<"$entry"
    selected "$name" || continue
    if [ "$BUILD" = 1 ]; then
        log "building $name: $build"
        eval "$build" >&2
    fi
    case "$bin" in @git:*) bin="$(git_bin "${bin#@git:}")" ;; esac
    [ -x "$bin" ] || { log "ERROR: $name: $bin is missing (build it, or drop --no-build)"; exit 1; }
    cp "$bin" "$OUT/bin/server-$name"
    NAMES+=("$name")
done
[ "${#NAMES[@]}" -gt 0 ] || { log "ERROR: no server selected"; exit 2; }

SERVER_PID=""
SERVER_PORT=""
# Starts server $1 for run tag $2 with CPU placement $3 (pinned | w1 | w2); sets SERVER_PID
# and SERVER_PORT.
start_server() {
    local name="$1" tag="$2" config="$3" i
    local so="$OUT/logs/$name-$tag.stdout" se="$OUT/logs/$name-$tag.stderr"
    # Every load client comes from 127.0.0.1: lift the relay's per-address limits (read from
    # the environment by wsmp-relay ≥ 0.2; ignored by the other servers).
    local -a cmd=(env WSMP_RELAY_MAX_CONNS_PER_IP=1000000 WSMP_RELAY_MAX_PENDING_PER_IP=1000000
        ${SERVER_ENV[$name]:-} "$OUT/bin/server-$name" --listen 127.0.0.1:0)
    case "$config" in
        pinned) [ "$PIN" = 1 ] && cmd=(taskset -c 0 "${cmd[@]}") ;;
        w1) cmd=(env TOKIO_WORKER_THREADS=1 "${cmd[@]}") ;;
        w2) cmd=(env TOKIO_WORKER_THREADS=2 "${cmd[@]}") ;;
    esac
    [ "$NICE" = 0 ] || cmd=(nice -n "$NICE" "${cmd[@]}")
    "${cmd[@]}" >"$so" 2>"$se" &
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

# Stops the server with SIGINT (bounded wait, then SIGKILL); sets SERVER_RC.
SERVER_RC=""
stop_server() {
    local i
    kill -INT "$SERVER_PID" 2>/dev/null || true
    for i in $(seq 1 100); do # at most 10 s
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
record_failure() { # name scenario config reason
    FAILED=1
    local reason="${4//\"/\'}"
    echo "{\"server\":\"$1\",\"scenario\":\"$2\",\"config\":\"$3\",\"failed\":\"$reason\"}" >>"$RESULTS"
    log "FAILED: $1 $2 ($3): $4"
}

LIMIT=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 120 }')
# Runs scenario $2 against server $1 with CPU placement $3.
run_one() {
    local name="$1" id="$2" config="$3" label args tag out load
    for sc in "${SCENARIOS[@]}"; do
        IFS='|' read -r sid label args <<<"$sc"
        [ "$sid" = "$id" ] && break
    done
    tag="$id-$config"
    log "$name: $id ($label), $config, ${WARMUP}s warmup + ${DURATION}s"
    start_server "$name" "$tag" "$config" || { record_failure "$name" "$id" "$config" "server did not start"; return; }
    local -a lg=("$OUT/bin/relay_load")
    [ "$PIN" = 1 ] && lg=(taskset -c 1 "${lg[@]}")
    [ "$NICE" = 0 ] || lg=(nice -n "$NICE" "${lg[@]}")
    out="$OUT/logs/$name-$tag.load"
    load="$(cut -d' ' -f1 /proc/loadavg)"
    # shellcheck disable=SC2086 # $args is a word list by design
    if timeout "$LIMIT" "${lg[@]}" --url "ws://127.0.0.1:$SERVER_PORT" $args \
        --duration "$DURATION" --warmup "$WARMUP" --server-pid "$SERVER_PID" --json \
        >"$out" 2>"$out.err"; then
        echo "{\"server\":\"$name\",\"scenario\":\"$id\",\"config\":\"$config\",\"loadavg\":$load,$(tail -n1 "$out" | cut -c2-)" >>"$RESULTS"
    else
        record_failure "$name" "$id" "$config" "relay_load: $(grep -m1 FAILED "$out.err" || head -n1 "$out.err")"
    fi
    stop_server
    [ "$SERVER_RC" = 0 ] || record_failure "$name" "$id-exit" "$config" "server exit status $SERVER_RC after SIGINT"
}

for sc in "${SCENARIOS[@]}"; do
    IFS='|' read -r id _ <<<"$sc"
    scenario_selected "$id" || continue
    for name in "${NAMES[@]}"; do
        run_one "$name" "$id" pinned
    done
done
if [ "$SCALING" = 1 ]; then
    for id in $SCALING_SCENARIOS; do
        scenario_selected "$id" || continue
        for name in "${NAMES[@]}"; do
            run_one "$name" "$id" w1
            run_one "$name" "$id" w2
        done
    done
fi

# ---------------------------------------------------------------------------------------------
# Tables. Results are flat one-line JSON objects; `get FIELD` reads one from stdin.
get() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\)\"\{0,1\}[,}].*/\1/p" | head -n1; }
row() { grep -F "\"server\":\"$1\",\"scenario\":\"$2\",\"config\":\"$3\"," "$RESULTS" | head -n1 || true; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "" || v == "null") print "—"; else printf f, v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || a == "null" || b == "" || b == "null" || b + 0 == 0) print "—"; else printf "%.2f×", a / b }'; }
ms() { awk -v v="$1" 'BEGIN { if (v == "" || v == "null") print "—"; else printf "%.2f", v / 1000 }'; }

placement="relay pinned to CPU 0 (taskset), relay_load to CPU 1"
[ "$PIN" = 1 ] || placement="nothing pinned"
[ "$NICE" = 0 ] || placement="$placement, both at niceness $NICE"
{
    echo
    echo "Relay benchmark: ${WARMUP} s warmup + ${DURATION} s per scenario, $(nproc) CPUs, $placement."
    echo "Every delivery validated (exactly once, per-sender order, intact, only at its receivers)."
    echo "\"other CPU %\": CPU used by the rest of the machine during the window (100 % = one core); \"load\": 1-min load average at the start of the run."
    echo
    echo "| scenario | server | deliveries/s | p50 ms | p99 ms | server µs/delivery | server CPU % | RSS B/client | loadgen CPU % | send lag p99 ms | other CPU % | load | deliveries/s vs $BASELINE | µs/delivery vs $BASELINE | RSS vs $BASELINE |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for sc in "${SCENARIOS[@]}"; do
        IFS='|' read -r id label _ <<<"$sc"
        scenario_selected "$id" || continue
        b="$(row "$BASELINE" "$id" pinned)"
        b_dps="$(echo "$b" | get deliveries_per_sec)"
        b_cpu="$(echo "$b" | get server_cpu_us_per_delivery)"
        b_rss="$(echo "$b" | get rss_bytes_per_client)"
        for name in "${NAMES[@]}"; do
            r="$(row "$name" "$id" pinned)"
            if [ -z "$r" ] || [ -n "$(echo "$r" | get failed)" ]; then
                echo "| $id: $label | $name | FAILED: $(echo "$r" | get failed) | | | | | | | | | | | | |"
                continue
            fi
            dps="$(echo "$r" | get deliveries_per_sec)"
            cpu="$(echo "$r" | get server_cpu_us_per_delivery)"
            rss="$(echo "$r" | get rss_bytes_per_client)"
            p50="$(echo "$r" | get p50_us)"
            p99="$(echo "$r" | get p99_us)"
            lag="$(echo "$r" | get send_lag_p99_us)"
            if [ "$id" = idle ]; then
                dps=null; cpu=null; b_dps=null; b_cpu=null; p50=null; p99=null; lag=null
            fi
            [ "$(echo "$r" | get mode)" = rate ] || lag=null
            echo "| $id: $label | $name | $(fmt "$dps" %.0f) | $(ms "$p50") | $(ms "$p99") | $(fmt "$cpu" %.2f) | $(fmt "$(echo "$r" | get server_cpu_pct)" %.0f) | $(fmt "$rss" %.0f) | $(fmt "$(echo "$r" | get loadgen_cpu_pct)" %.0f) | $(ms "$lag") | $(fmt "$(echo "$r" | get other_cpu_pct)" %.0f) | $(echo "$r" | get loadavg) | $(ratio "$dps" "$b_dps") | $(ratio "$cpu" "$b_cpu") | $(ratio "$rss" "$b_rss") |"
        done
    done
    if [ "$SCALING" = 1 ]; then
        echo
        echo "Scaling: relay unpinned with TOKIO_WORKER_THREADS=N; relay_load $([ "$PIN" = 1 ] && echo "pinned to CPU 1" || echo "unpinned")."
        echo
        echo "| scenario | server | workers | deliveries/s | p50 ms | p99 ms | server µs/delivery | server CPU % | loadgen CPU % | other CPU % | load | deliveries/s 2 vs 1 worker |"
        echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for id in $SCALING_SCENARIOS; do
            scenario_selected "$id" || continue
            for name in "${NAMES[@]}"; do
                one="$(row "$name" "$id" w1 | get deliveries_per_sec)"
                for config in w1 w2; do
                    r="$(row "$name" "$id" "$config")"
                    if [ -z "$r" ] || [ -n "$(echo "$r" | get failed)" ]; then
                        echo "| $id | $name | ${config#w} | FAILED: $(echo "$r" | get failed) | | | | | | | | |"
                        continue
                    fi
                    dps="$(echo "$r" | get deliveries_per_sec)"
                    sc_ratio="—"
                    [ "$config" = w2 ] && sc_ratio="$(ratio "$dps" "$one")"
                    echo "| $id | $name | ${config#w} | $(fmt "$dps" %.0f) | $(ms "$(echo "$r" | get p50_us)") | $(ms "$(echo "$r" | get p99_us)") | $(fmt "$(echo "$r" | get server_cpu_us_per_delivery)" %.2f) | $(fmt "$(echo "$r" | get server_cpu_pct)" %.0f) | $(fmt "$(echo "$r" | get loadgen_cpu_pct)" %.0f) | $(fmt "$(echo "$r" | get other_cpu_pct)" %.0f) | $(echo "$r" | get loadavg) | $sc_ratio |"
                done
            done
        done
    fi
    echo
} | tee "$OUT/table.md"

if [ "$FAILED" != 0 ]; then
    log "some runs FAILED (see $RESULTS and $OUT/logs)"
    exit 1
fi
