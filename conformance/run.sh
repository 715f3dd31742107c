#!/usr/bin/env bash
# Autobahn|Testsuite conformance gate for wsmp.
#
#   conformance/run.sh [--full] [--only NAME[,NAME...]]... [--update-expected] [--gate-compression]
#
# Runs each selected run of the RUNS table below against wstest and gates its report with
# conformance/gate.py. Exit 0 only when every selected run passed.
#
#   --only NAME        select runs (repeatable or a comma list). NAME is a run name or a set:
#                      wsmp (the 12 runs of our binaries, the default: 8 of groups 1-10 and
#                      4 of groups 12-13), pmd (the 4 runs of groups 12-13 over ws), pmd-wss
#                      (the same over wss, not in the default set), python (the stand-ins),
#                      reference (wstest's own echo server: a run that passes), all.
#                      Without --only, $CONFORMANCE_RUNS (same syntax) is used, else "wsmp".
#   --full             all 517 cases (default: every case except 12.* and 13.*, i.e. 301 cases;
#                      a run whose name ends in -pmd runs and gates groups 12 and 13 only)
#   --gate-compression with --full: also gate groups 12/13 (once permessage-deflate exists)
#   --update-expected  rewrite conformance/expected/<run>.json from this run's report
#   --list             print the runs table and exit
#
# Environment: CONFORMANCE_CACHE (default target/autobahn), CONFORMANCE_RUN_TIMEOUT (seconds per
# run; default 600, 2400 with --full), CONFORMANCE_READY_TIMEOUT (default 30),
# CONFORMANCE_PMD_MESSAGES (messages per 12.*/13.* case, default 30; the suite's own count is
# 1000, which takes far longer than the CI budget),
# CONFORMANCE_NETNS=1 (run everything inside a fresh network namespace, `unshare -n`, as well).
# Everything listens on 127.0.0.1 only; see conformance/README.md.
set -euo pipefail

# ================================================================================================
# The runs. One line per run: NAME | role | tls | command to start the implementation under test.
#   role server: the command is a WebSocket echo server; wstest -m fuzzingclient tests it.
#   role client: the command is an Autobahn client; wstest -m fuzzingserver tests it.
#   tls ws | wss.
# The command runs from the repository root, via bash. Placeholders:
#   {port}  the run's loopback port (server: where the implementation must listen;
#           client: where wstest's fuzzingserver listens)
#   {url}   ws(s)://127.0.0.1:{port}     {agent} the agent name (= run name)
#   {cert} {key}  server certificate chain and key (PEM), generated at run time
#   {ca}    the CA certificate (PEM) that signed {cert}
#   {cache} the cache directory (target/autobahn), which holds the stand-ins' venv py3/
# ================================================================================================
RUNS='
server-tokio-ws   | server | ws  | target/release/echo-server --adapter tokio --listen 127.0.0.1:{port}
server-tokio-wss  | server | wss | target/release/echo-server --adapter tokio --listen 127.0.0.1:{port} --tls-cert {cert} --tls-key {key}
server-std-ws     | server | ws  | target/release/echo-server --adapter std --listen 127.0.0.1:{port}
server-std-wss    | server | wss | target/release/echo-server --adapter std --listen 127.0.0.1:{port} --tls-cert {cert} --tls-key {key}
client-tokio-ws   | client | ws  | target/release/autobahn-client --adapter tokio --url {url} --agent {agent}
client-tokio-wss  | client | wss | target/release/autobahn-client --adapter tokio --url {url} --agent {agent} --ca {ca}
client-std-ws     | client | ws  | target/release/autobahn-client --adapter std --url {url} --agent {agent}
client-std-wss    | client | wss | target/release/autobahn-client --adapter std --url {url} --agent {agent} --ca {ca}
server-tokio-ws-pmd   | server | ws  | target/release/echo-server --adapter tokio --listen 127.0.0.1:{port}
server-std-ws-pmd     | server | ws  | target/release/echo-server --adapter std --listen 127.0.0.1:{port}
client-tokio-ws-pmd   | client | ws  | target/release/autobahn-client --adapter tokio --url {url} --agent {agent}
client-std-ws-pmd     | client | ws  | target/release/autobahn-client --adapter std --url {url} --agent {agent}
server-tokio-wss-pmd  | server | wss | target/release/echo-server --adapter tokio --listen 127.0.0.1:{port} --tls-cert {cert} --tls-key {key}
server-std-wss-pmd    | server | wss | target/release/echo-server --adapter std --listen 127.0.0.1:{port} --tls-cert {cert} --tls-key {key}
client-tokio-wss-pmd  | client | wss | target/release/autobahn-client --adapter tokio --url {url} --agent {agent} --ca {ca}
client-std-wss-pmd    | client | wss | target/release/autobahn-client --adapter std --url {url} --agent {agent} --ca {ca}
server-python-ws  | server | ws  | {cache}/py3/bin/python conformance/standins/echo_server.py --listen 127.0.0.1:{port}
server-python-wss | server | wss | {cache}/py3/bin/python conformance/standins/echo_server.py --listen 127.0.0.1:{port} --tls-cert {cert} --tls-key {key}
client-python-ws  | client | ws  | {cache}/py3/bin/python conformance/standins/autobahn_client.py --url {url} --agent {agent}
client-python-wss | client | wss | {cache}/py3/bin/python conformance/standins/autobahn_client.py --url {url} --agent {agent} --ca {ca}
server-autobahn-ws | server | ws | {cache}/venv27/bin/python conformance/wstest_loopback.py -m echoserver -w {url} -u 0
'
SET_pmd='server-tokio-ws-pmd server-std-ws-pmd client-tokio-ws-pmd client-std-ws-pmd'
SET_pmd_wss='server-tokio-wss-pmd server-std-wss-pmd client-tokio-wss-pmd client-std-wss-pmd'
SET_wsmp="server-tokio-ws server-tokio-wss server-std-ws server-std-wss client-tokio-ws client-tokio-wss client-std-ws client-std-wss $SET_pmd"
SET_python='server-python-ws server-python-wss client-python-ws client-python-wss'
SET_reference='server-autobahn-ws'
# ================================================================================================

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
CACHE="${CONFORMANCE_CACHE:-$ROOT/target/autobahn}"
READY_TIMEOUT="${CONFORMANCE_READY_TIMEOUT:-30}"
export WSTEST_PMD_MESSAGES="${CONFORMANCE_PMD_MESSAGES:-30}"
STOP_TIMEOUT=10

log() { printf '[conformance] %s\n' "$*" >&2; }
die() { printf '[conformance] ERROR: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }

# ---- arguments ---------------------------------------------------------------------------------
FULL=0; UPDATE=0; GATE_COMPRESSION=0; ONLY=(); ORIG_ARGS=("$@")
while (($#)); do
  case "$1" in
    --full) FULL=1 ;;
    --only) (($# >= 2)) || die "--only needs a run name"; ONLY+=("$2"); shift ;;
    --only=*) ONLY+=("${1#--only=}") ;;
    --update-expected) UPDATE=1 ;;
    --gate-compression) GATE_COMPRESSION=1 ;;
    --list) printf '%s\n' "$RUNS" | sed '/^$/d'; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done
((GATE_COMPRESSION == 0 || FULL == 1)) || die "--gate-compression needs --full"
RUN_TIMEOUT="${CONFORMANCE_RUN_TIMEOUT:-$((FULL ? 2400 : 600))}"

table_line() { # NAME -> the table line's fields, trimmed, separated by \x1f
  printf '%s\n' "$RUNS" | awk -F'|' -v n="$1" '
    function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
    NF >= 4 && trim($1) == n { c = $4; for (i = 5; i <= NF; i++) c = c "|" $i;
      printf "%s\x1f%s\x1f%s\x1f%s\n", trim($1), trim($2), trim($3), trim(c); exit }'
}

# ---- selection -----------------------------------------------------------------------------------
if ((${#ONLY[@]} == 0)); then ONLY=("${CONFORMANCE_RUNS:-wsmp}"); fi
SELECTED=()
for item in "${ONLY[@]}"; do
  for name in ${item//,/ }; do
    case "$name" in
      wsmp) names=($SET_wsmp) ;;
      pmd) names=($SET_pmd) ;;
      pmd-wss) names=($SET_pmd_wss) ;;
      python) names=($SET_python) ;;
      reference) names=($SET_reference) ;;
      all) names=($SET_wsmp $SET_pmd_wss $SET_python $SET_reference) ;;
      *) names=("$name") ;;
    esac
    for n in "${names[@]}"; do
      [[ -n "$(table_line "$n")" ]] || die "no run named '$n' (see --list)"
      [[ " ${SELECTED[*]-} " == *" $n "* ]] || SELECTED+=("$n")
    done
  done
done

# ---- tools and setup (before any network namespace: setup needs the package index) ------------
for tool in ss setsid openssl python3 awk; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required and was not found"
done
if [[ -z "${CONFORMANCE_SKIP_SETUP:-}" ]]; then
  need_standins=()
  for n in "${SELECTED[@]}"; do
    if [[ "$(table_line "$n")" == *"{cache}/py3"* ]]; then need_standins=(--stand-ins); fi
  done
  CONFORMANCE_CACHE="$CACHE" "$HERE/setup.sh" "${need_standins[@]}" || die "setup failed"
fi
WSTEST_PY="$CACHE/venv27/bin/python"
[[ -x "$WSTEST_PY" ]] || die "wstest is not installed in $CACHE/venv27 (run conformance/setup.sh)"

if [[ "${CONFORMANCE_NETNS:-0}" == 1 && -z "${CONFORMANCE_IN_NETNS:-}" ]]; then
  command -v unshare >/dev/null 2>&1 || die "CONFORMANCE_NETNS=1 needs unshare"
  log "re-running inside a new network namespace (unshare -n, only lo up)"
  exec unshare -n -- env CONFORMANCE_IN_NETNS=1 CONFORMANCE_SKIP_SETUP=1 \
    bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "${ORIG_ARGS[@]}"
fi

# ---- process bookkeeping: every child in its own process group, all killed on exit -----------
PGIDS=()
TMPDIR_RUN="$(mktemp -d "${TMPDIR:-/tmp}/wsmp-conformance.XXXXXX")"
cleanup() {
  local pg
  for pg in "${PGIDS[@]-}"; do [[ -n "$pg" ]] && kill -TERM -- "-$pg" 2>/dev/null || true; done
  sleep 0.2
  for pg in "${PGIDS[@]-}"; do [[ -n "$pg" ]] && kill -KILL -- "-$pg" 2>/dev/null || true; done
  rm -rf "$TMPDIR_RUN"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

start_bg() { # LOGFILE CMD... ; sets BG_PID (= its process group id)
  local logfile="$1"; shift
  setsid "$@" </dev/null >"$logfile" 2>&1 &
  BG_PID=$!
  PGIDS+=("$BG_PID")
}

# Wait for PID to exit within SECS. Sets WAIT_RC; returns 1 on timeout.
wait_exit() {
  local pid="$1" secs="$2" deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    # a zombie child still answers kill -0: reap it when it is one
    if [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == Z* ]]; then break; fi
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
  WAIT_RC=0; wait "$pid" 2>/dev/null || WAIT_RC=$?
  return 0
}

# Stop a process group: SIGTERM, bounded wait, SIGKILL. Sets WAIT_RC to the leader's exit status.
stop_group() {
  local pg="$1"
  kill -TERM -- "-$pg" 2>/dev/null || true
  if ! wait_exit "$pg" "$STOP_TIMEOUT"; then
    log "process $pg ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL"
    kill -KILL -- "-$pg" 2>/dev/null || true
    wait_exit "$pg" 5 || true
    WAIT_RC=137
  fi
  kill -KILL -- "-$pg" 2>/dev/null || true # leftovers of the group
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Wait until something listens on 127.0.0.1:PORT (checked with ss: no connection is made),
# while PID is alive.
wait_listening() {
  local port="$1" pid="$2" what="$3" deadline=$((SECONDS + READY_TIMEOUT))
  while :; do
    if ss -Hltn "( sport = :$port )" 2>/dev/null | grep -q .; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null || [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == Z* ]]; then
      FAIL_REASON="$what exited before listening on 127.0.0.1:$port"; return 1
    fi
    if ((SECONDS >= deadline)); then
      FAIL_REASON="$what did not listen on 127.0.0.1:$port within ${READY_TIMEOUT}s"; return 1
    fi
    sleep 0.1
  done
}

# Fail when any process of the given process groups listens on a non-loopback address.
check_loopback() { # LOGFILE PGID...
  local logfile="$1"; shift
  local pids=" " pg p line addr bad=0
  for pg in "$@"; do
    for p in $(ps -o pid= -g "$pg" 2>/dev/null); do pids+="$p "; done
  done
  {
    echo "# listening sockets of the run's processes (pids:$pids) at $(date +%T)"
    while IFS= read -r line; do
      for p in $(grep -o 'pid=[0-9]*' <<<"$line" | cut -d= -f2); do
        if [[ "$pids" == *" $p "* ]]; then
          echo "$line"
          addr="$(awk '{print $5}' <<<"$line")"
          case "$addr" in 127.*:*|\[::1\]:*|::1:*) ;; *) bad=1; echo "NOT LOOPBACK: $addr" ;; esac
          break
        fi
      done
    done < <(ss -Hltunp 2>/dev/null)
  } >>"$logfile"
  if ((bad)); then FAIL_REASON="a process listened on a non-loopback address (see $logfile)"; return 1; fi
  return 0
}

TLS_DIR=""
make_certs() { # a throw-away CA and a server certificate for 127.0.0.1 / ::1 / localhost
  TLS_DIR="$TMPDIR_RUN/tls"; mkdir -p "$TLS_DIR"
  (
    cd "$TLS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
      -subj "/CN=wsmp conformance CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -keyout key.pem -out server.csr -subj "/CN=127.0.0.1"
    printf '%s\n' "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" > ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem \
      -days 2 -extfile ext.cnf
  ) >"$TMPDIR_RUN/openssl.log" 2>&1 || die "openssl could not make certificates: $(cat "$TMPDIR_RUN/openssl.log")"
}

cases_json() { # RUN_NAME
  if [[ "$1" == *-pmd ]]; then echo '"cases": ["12.*", "13.*"], "exclude-cases": []'
  elif ((FULL)); then echo '"cases": ["*"], "exclude-cases": []'
  else echo '"cases": ["*"], "exclude-cases": ["12.*", "13.*"]'; fi
}

q() { printf '%q' "$1"; } # shell-quote a substituted value

# ---- one run ------------------------------------------------------------------------------------
# run_one NAME ROLE TLS COMMAND; sets FAIL_REASON; returns 0 when the run produced a report
run_one() {
  local name="$1" role="$2" tls="$3" cmd="$4"
  local dir="$CACHE/runs/$name" port url impl_pid wstest_pid rc
  FAIL_REASON=""
  rm -rf "$dir"; mkdir -p "$dir"
  port="$(free_port)"
  url="$tls://127.0.0.1:$port"
  [[ "$tls" == ws || "$tls" == wss ]] || { FAIL_REASON="tls must be ws or wss, not '$tls'"; return 1; }
  if [[ "$tls" == wss && -z "$TLS_DIR" ]]; then make_certs; fi
  cmd="${cmd//\{port\}/$port}"
  cmd="${cmd//\{url\}/$(q "$url")}"
  cmd="${cmd//\{agent\}/$(q "$name")}"
  cmd="${cmd//\{cert\}/$(q "$TLS_DIR/cert.pem")}"
  cmd="${cmd//\{key\}/$(q "$TLS_DIR/key.pem")}"
  cmd="${cmd//\{ca\}/$(q "$TLS_DIR/ca.pem")}"
  cmd="${cmd//\{cache\}/$(q "$CACHE")}"
  local exe="${cmd%% *}"
  if [[ "$exe" == */* && ! -x "$exe" ]]; then
    FAIL_REASON="not built: $exe does not exist or is not executable (cargo build --release -p wsmp-conformance)"
    return 1
  fi
  printf '%s\n' "$cmd" >"$dir/command"
  log "$name: $role, $url"
  log "$name: command: $cmd"

  local tls_args=()
  if [[ "$role" == server ]]; then
    # implementation first, then wstest's fuzzing client against it
    start_bg "$dir/impl.log" bash -c "exec $cmd"; impl_pid=$BG_PID
    wait_listening "$port" "$impl_pid" "the implementation" || return 1
    check_loopback "$dir/listeners.log" "$impl_pid" || return 1
    printf '{"outdir": "%s", "servers": [{"agent": "%s", "url": "%s"}], %s, "exclude-agent-cases": {}}\n' \
      "$dir/report" "$name" "$url" "$(cases_json "$name")" >"$dir/spec.json"
    start_bg "$dir/wstest.log" "$WSTEST_PY" "$HERE/wstest_loopback.py" -m fuzzingclient -s "$dir/spec.json"
    wstest_pid=$BG_PID
    sleep 1; check_loopback "$dir/listeners.log" "$impl_pid" "$wstest_pid" || return 1
    if ! wait_exit "$wstest_pid" "$RUN_TIMEOUT"; then
      FAIL_REASON="wstest did not finish within ${RUN_TIMEOUT}s (CONFORMANCE_RUN_TIMEOUT)"; return 1
    fi
    if ! kill -0 "$impl_pid" 2>/dev/null || [[ "$(ps -o stat= -p "$impl_pid" 2>/dev/null)" == Z* ]]; then
      wait_exit "$impl_pid" 1 || true
      FAIL_REASON="the implementation died during the run (exit $WAIT_RC; see $dir/impl.log)"; return 1
    fi
    stop_group "$impl_pid"
    if ((WAIT_RC != 0)); then
      FAIL_REASON="the implementation exited $WAIT_RC on SIGTERM (CLI.md: exit 0)"; return 1
    fi
  else
    # wstest's fuzzing server first, then the implementation as its client
    # wstest 25.10.1 does not hand -k/-c to the fuzzing server: its key/cert go in the spec
    local tls_spec=""
    if [[ "$tls" == wss ]]; then
      tls_spec="\"key\": \"$TLS_DIR/key.pem\", \"cert\": \"$TLS_DIR/cert.pem\", "
      tls_args=(-k "$TLS_DIR/key.pem" -c "$TLS_DIR/cert.pem")
    fi
    printf '{"url": "%s", %s"outdir": "%s", %s, "exclude-agent-cases": {}}\n' \
      "$url" "$tls_spec" "$dir/report" "$(cases_json "$name")" >"$dir/spec.json"
    start_bg "$dir/wstest.log" "$WSTEST_PY" "$HERE/wstest_loopback.py" -m fuzzingserver \
      -s "$dir/spec.json" -u 0 "${tls_args[@]}"
    wstest_pid=$BG_PID
    wait_listening "$port" "$wstest_pid" "wstest fuzzingserver" || return 1
    start_bg "$dir/impl.log" bash -c "exec $cmd"; impl_pid=$BG_PID
    sleep 1; check_loopback "$dir/listeners.log" "$wstest_pid" "$impl_pid" || return 1
    if ! wait_exit "$impl_pid" "$RUN_TIMEOUT"; then
      FAIL_REASON="the client did not finish within ${RUN_TIMEOUT}s (CONFORMANCE_RUN_TIMEOUT)"; return 1
    fi
    rc=$WAIT_RC
    stop_group "$wstest_pid"
    if ((rc != 0)); then FAIL_REASON="the client exited $rc: it could not run (see $dir/impl.log)"; return 1; fi
  fi
  return 0
}

# ---- main ---------------------------------------------------------------------------------------
log "runs: ${SELECTED[*]}"
log "cases: $( ((FULL)) && echo 'all (--full)' || echo 'all but 12.* and 13.*') (runs *-pmd: 12.* and 13.*); time limit ${RUN_TIMEOUT}s per run"
RESULTS=()
failed=0
for name in "${SELECTED[@]}"; do
  IFS=$'\x1f' read -r _ role tls cmd <<<"$(table_line "$name")"
  t0=$SECONDS
  printf '\n===== %s =====\n' "$name"
  status=PASS
  if run_one "$name" "$role" "$tls" "$cmd"; then
    gate_args=("$CACHE/runs/$name/report" --run "$name" --agent "$name")
    if [[ "$name" == *-pmd ]]; then gate_args+=(--compression-only)
    elif ((FULL)); then gate_args+=(--full); fi
    if ((GATE_COMPRESSION)); then gate_args+=(--gate-compression); fi
    if ((UPDATE)); then gate_args+=(--update-expected); fi
    grc=0; python3 "$HERE/gate.py" "${gate_args[@]}" || grc=$?
    case "$grc" in
      0) ;;
      1) status="FAIL (gate: cases not OK, see above)" ;;
      *) status="FAIL (no usable report)" ;;
    esac
  else
    status="FAIL ($FAIL_REASON)"
    printf 'RUN FAILED: %s\n' "$FAIL_REASON"
    for f in wstest.log impl.log; do
      if [[ -s "$CACHE/runs/$name/$f" ]]; then echo "--- last lines of $CACHE/runs/$name/$f"; tail -n 15 "$CACHE/runs/$name/$f"; fi
    done
  fi
  # stop whatever is left of this run
  for pg in "${PGIDS[@]-}"; do [[ -n "$pg" ]] && kill -KILL -- "-$pg" 2>/dev/null || true; done
  PGIDS=()
  [[ "$status" == PASS ]] || failed=$((failed + 1))
  RESULTS+=("$(printf '%-20s %5ss  %s' "$name" "$((SECONDS - t0))" "$status")")
done

printf '\n===== conformance summary =====\n'
printf '%s\n' "${RESULTS[@]}"
printf 'logs and reports: %s/runs/<name>/ (report/index.json, report/*.html)\n' "$CACHE"
if ((failed)); then
  printf 'CONFORMANCE FAILED: %d of %d run(s)\n' "$failed" "${#SELECTED[@]}"
  exit 1
fi
printf 'CONFORMANCE PASSED: %d run(s)\n' "${#SELECTED[@]}"
