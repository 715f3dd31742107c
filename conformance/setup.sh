#!/usr/bin/env bash
# Installs Autobahn|Testsuite (wstest, Python 2.7) into a cache directory, idempotently.
#
#   conformance/setup.sh [--stand-ins]
#
# Cache: $CONFORMANCE_CACHE, default <repo>/target/autobahn/
#   bootstrap/  Python 3 venv holding virtualenv<20.22 (the last line that can still make 2.7 venvs)
#   venv27/     Python 2.7 venv holding wstest (pins: conformance/autobahn-requirements.txt)
#   py3/        with --stand-ins: Python 3 venv for the stand-in implementations
#               (pins: conformance/standin-requirements.txt)
# A venv is reused when its stamp matches the pins and a smoke test passes; otherwise it is rebuilt.
# Python 2.7.18 is found via $CONFORMANCE_PYTHON2, then pyenv (PYENV_VERSION=2.7.18), then python2.7.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CACHE="${CONFORMANCE_CACHE:-$ROOT/target/autobahn}"
REQ27="$HERE/autobahn-requirements.txt"
REQ3="$HERE/standin-requirements.txt"
PY3="${CONFORMANCE_PYTHON3:-python3}"

want_standins=0
for a in "$@"; do
  case "$a" in
    --stand-ins) want_standins=1 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown argument: $a" >&2; exit 2 ;;
  esac
done

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$CACHE"
# One setup at a time per cache (run.sh may be started twice in parallel).
exec 9>"$CACHE/.setup.lock"
flock -w 600 9 || die "could not lock $CACHE/.setup.lock within 600 s"

find_python2() {
  local cand=""
  if [[ -n "${CONFORMANCE_PYTHON2:-}" ]]; then
    cand="$CONFORMANCE_PYTHON2"
  elif command -v pyenv >/dev/null 2>&1 && cand="$(PYENV_VERSION=2.7.18 pyenv which python 2>/dev/null)"; then
    :
  elif command -v python2.7 >/dev/null 2>&1; then
    cand="$(command -v python2.7)"
  else
    cand=""
  fi
  [[ -n "$cand" && -x "$cand" ]] || return 1
  local v
  v="$("$cand" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)" || return 1
  [[ "$v" == "2.7.18" ]] || { log "found $cand but it is Python $v, not 2.7.18"; return 1; }
  printf '%s\n' "$cand"
}

stamp_of() { # stamp = hash of pins + interpreter
  { cat "$1"; printf '%s\n' "$2"; } | sha256sum | cut -d' ' -f1
}

# ---- wstest (Python 2.7) -------------------------------------------------------------------
PY2="$(find_python2)" || die "Python 2.7.18 is required for Autobahn|Testsuite and was not found.
  Looked at: \$CONFORMANCE_PYTHON2, 'PYENV_VERSION=2.7.18 pyenv which python', python2.7 on PATH.
  Install it (e.g. 'pyenv install 2.7.18') or point CONFORMANCE_PYTHON2 at a 2.7.18 interpreter."

V27="$CACHE/venv27"
STAMP27="$(stamp_of "$REQ27" "$PY2")"
wstest_ok() {
  [[ -f "$V27/.stamp" && "$(cat "$V27/.stamp")" == "$STAMP27" ]] || return 1
  "$V27/bin/python" -c 'import autobahntestsuite, autobahn, twisted, OpenSSL' >/dev/null 2>&1 || return 1
  "$V27/bin/wstest" --help >/dev/null 2>&1 || return 1
}

if wstest_ok; then
  log "wstest already installed in $V27"
else
  t0=$SECONDS
  log "installing Autobahn|Testsuite into $V27 (Python 2.7.18 at $PY2)"
  BOOT="$CACHE/bootstrap"
  if ! "$BOOT/bin/python" -c 'import virtualenv, sys; v=tuple(int(x) for x in virtualenv.__version__.split(".")[:2]); sys.exit(0 if v < (20, 22) else 1)' >/dev/null 2>&1; then
    rm -rf "$BOOT"
    "$PY3" -m venv "$BOOT" || die "could not create a Python 3 venv with '$PY3 -m venv'"
    "$BOOT/bin/python" -m pip install -q 'virtualenv<20.22' || die "pip could not install virtualenv<20.22"
  fi
  rm -rf "$V27"
  "$BOOT/bin/python" -m virtualenv -q -p "$PY2" "$V27" || die "virtualenv could not create a Python 2.7 venv"
  "$V27/bin/python" -m pip install -q --disable-pip-version-check --no-python-version-warning -r "$REQ27" \
    || die "pip could not install the pins of $REQ27 into $V27"
  printf '%s\n' "$STAMP27" > "$V27/.stamp"
  wstest_ok || { rm -f "$V27/.stamp"; die "wstest installed but does not run: try '$V27/bin/wstest --help'"; }
  log "wstest installed in $((SECONDS - t0)) s"
fi

# ---- stand-in implementations (Python 3 websockets) ----------------------------------------
if (( want_standins )); then
  V3="$CACHE/py3"
  STAMP3="$(stamp_of "$REQ3" "$(command -v "$PY3")")"
  if [[ -f "$V3/.stamp" && "$(cat "$V3/.stamp")" == "$STAMP3" ]] && "$V3/bin/python" -c 'import websockets' >/dev/null 2>&1; then
    log "stand-in venv already installed in $V3"
  else
    log "installing stand-in venv into $V3"
    rm -rf "$V3"
    "$PY3" -m venv "$V3" || die "could not create a Python 3 venv with '$PY3 -m venv'"
    "$V3/bin/python" -m pip install -q -r "$REQ3" || die "pip could not install $REQ3"
    printf '%s\n' "$STAMP3" > "$V3/.stamp"
  fi
fi
