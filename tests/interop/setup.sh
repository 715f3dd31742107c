#!/usr/bin/env bash
# Sets up the interop peers: a Python venv with `websockets` and a Node folder with `ws`,
# under <workspace>/target/interop. Idempotent: a marker file per peer records success.
#
# Exit status: 0 = both ready; 1 = at least one could not be installed (the reason is in
# target/interop/<peer>.skip and on stderr). The Rust tests read the markers:
#   target/interop/py.ok   / target/interop/py.skip
#   target/interop/node.ok / target/interop/node.skip
set -u
here="$(cd "$(dirname "$0")" && pwd)"
root="${WSMP_INTEROP_DIR:-$(cd "$here/../.." && pwd)/target/interop}"
mkdir -p "$root"
# Serialise concurrent runs (several test binaries may call this at once).
exec 9>"$root/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

status=0

setup_py() {
  local venv="$root/py"
  if [ -f "$root/py.ok" ] && "$venv/bin/python" -c 'import websockets' 2>/dev/null; then
    return 0
  fi
  rm -f "$root/py.ok" "$root/py.skip"
  local py
  py="$(command -v python3 || true)"
  if [ -z "$py" ]; then echo "python3 not found" >"$root/py.skip"; return 1; fi
  if [ ! -x "$venv/bin/python" ]; then
    if ! "$py" -m venv "$venv" >"$root/py.log" 2>&1; then
      echo "python3 -m venv failed (see $root/py.log)" >"$root/py.skip"; return 1
    fi
  fi
  if ! timeout 300 "$venv/bin/python" -m pip install --disable-pip-version-check -q --retries 1 --timeout 15 \
      'websockets>=12' >>"$root/py.log" 2>&1; then
    echo "pip install websockets failed, registry unreachable? (see $root/py.log)" >"$root/py.skip"
    return 1
  fi
  "$venv/bin/python" -c 'import websockets; print(websockets.__version__)' >"$root/py.ok"
}

setup_node() {
  local dir="$root/node"
  if [ -f "$root/node.ok" ] && [ -f "$dir/node_modules/ws/package.json" ]; then
    return 0
  fi
  rm -f "$root/node.ok" "$root/node.skip"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node or npm not found" >"$root/node.skip"; return 1
  fi
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name":"wsmp-interop","private":true}' >"$dir/package.json"
  if ! (cd "$dir" && timeout 300 npm install --no-audit --no-fund --silent --fetch-retries=1 --fetch-timeout=30000 ws@8) >"$root/node.log" 2>&1; then
    echo "npm install ws failed, registry unreachable? (see $root/node.log)" >"$root/node.skip"
    return 1
  fi
  node -e 'console.log(require(process.argv[1]).version)' "$dir/node_modules/ws/package.json" >"$root/node.ok"
}

setup_py || { status=1; echo "python interop: $(cat "$root/py.skip")" >&2; }
setup_node || { status=1; echo "node interop: $(cat "$root/node.skip")" >&2; }
exit $status
