#!/usr/bin/env bash
# Starts or stops an nginx on 127.0.0.1 (ephemeral port) as a WebSocket
# reverse proxy in front of a relay port, for tests. Everything it writes stays
# in WORKDIR (config, pid, logs, temp files).
#
#   nginx.sh start xff   RELAY_PORT WORKDIR   # HTTP proxy adding X-Forwarded-For
#   nginx.sh start proxy RELAY_PORT WORKDIR   # TCP (stream) proxy with `proxy_protocol on`
#   nginx.sh start chain RELAY_PORT WORKDIR   # the same, but it also reads a PROXY header
#                                             # from its clients (a load balancer in front,
#                                             # trusted from 127.0.0.1: realip) and passes
#                                             # that client address on in its own header
#   nginx.sh stop WORKDIR
#
# `start` prints `nginx listening on 127.0.0.1:PORT` once nginx accepts
# connections, and exits 0 (nginx keeps running as a daemon until `stop`).
# Run setup.sh first.
set -euo pipefail

STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

write_config() {
    local mode=$1 relay_port=$2 work=$3 port=$4
    mkdir -p "$work/tmp"
    {
        [ "$mode" != xff ] && echo "load_module $STREAM_MODULE;"
        cat <<CONF
daemon on;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log info;
events { worker_connections 1024; }
CONF
        if [ "$mode" = xff ]; then
            cat <<CONF
http {
    access_log $work/access.log;
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      close;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://127.0.0.1:$relay_port;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_read_timeout 3600s;
            proxy_buffering off;
        }
    }
}
CONF
        elif [ "$mode" = proxy ]; then
            cat <<CONF
stream {
    server {
        listen 127.0.0.1:$port;
        proxy_pass 127.0.0.1:$relay_port;
        proxy_protocol on;
    }
}
CONF
        else
            cat <<CONF
stream {
    server {
        listen 127.0.0.1:$port proxy_protocol;
        set_real_ip_from 127.0.0.1;
        proxy_pass 127.0.0.1:$relay_port;
        proxy_protocol on;
    }
}
CONF
        fi
    } >"$work/nginx.conf"
}

wait_listening() {
    local port=$1
    for _ in $(seq 1 100); do
        if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1', $port)))" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

case "${1:-}" in
start)
    mode=${2:?mode: xff, proxy or chain}
    relay_port=${3:?relay port}
    work=${4:?work directory}
    case "$mode" in xff | proxy | chain) ;; *) echo "error: mode must be xff, proxy or chain" >&2; exit 2 ;; esac
    mkdir -p "$work"
    work=$(cd "$work" && pwd)
    # The port is picked free, then bound by nginx: retry if another process took it in between.
    for _ in 1 2 3; do
        port=$(free_port)
        write_config "$mode" "$relay_port" "$work" "$port"
        if "$NGINX" -p "$work" -c "$work/nginx.conf" -e "$work/error.log" 2>>"$work/start.log"; then
            if wait_listening "$port"; then
                echo "nginx listening on 127.0.0.1:$port"
                exit 0
            fi
        fi
        "$NGINX" -p "$work" -c "$work/nginx.conf" -e "$work/error.log" -s stop 2>/dev/null || true
    done
    echo "error: nginx did not start (see $work/error.log, $work/start.log)" >&2
    exit 1
    ;;
stop)
    work=${2:?work directory}
    if [ -f "$work/nginx.pid" ]; then
        "$NGINX" -p "$work" -c "$work/nginx.conf" -e "$work/error.log" -s quit 2>/dev/null \
            || kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
        for _ in $(seq 1 100); do
            [ -f "$work/nginx.pid" ] || break
            sleep 0.05
        done
    fi
    ;;
*)
    echo "usage: nginx.sh start xff|proxy|chain RELAY_PORT WORKDIR | nginx.sh stop WORKDIR" >&2
    exit 2
    ;;
esac
