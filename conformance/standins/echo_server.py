#!/usr/bin/env python3
"""Stand-in for `echo-server` (CLI.md): a Python `websockets` echo server.

Used only to prove the conformance machinery before our own binaries exist. Follows the
`echo-server` command-line contract: `--listen HOST:PORT [--tls-cert PEM --tls-key PEM]`,
prints `listening on HOST:PORT` once bound, logs to stderr, exits 0 on SIGINT/SIGTERM.
"""
import argparse
import asyncio
import logging
import signal
import ssl
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

MAX_SIZE = 64 * 1024 * 1024  # CLI.md: max message and frame size 64 MiB


def parse_listen(value):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % value)
    return host.strip("[]"), int(port)


async def echo(ws):
    try:
        async for message in ws:  # text stays str, binary stays bytes: same type echoed
            await ws.send(message)
    except ConnectionClosed:
        pass  # the fuzzer breaks connections on purpose; its report judges how


async def main(args):
    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    host, port = args.listen
    async with serve(echo, host, port, ssl=ctx, max_size=MAX_SIZE, max_queue=None,
                     compression=None, ping_interval=None, close_timeout=2) as server:
        for sock in server.sockets:
            addr = sock.getsockname()
            shown = "[%s]" % addr[0] if ":" in addr[0] else addr[0]
            print("listening on %s:%d" % (shown, addr[1]), flush=True)
        await stop
        server.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 9080))
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    a = p.parse_args()
    if bool(a.tls_cert) != bool(a.tls_key):
        p.error("--tls-cert and --tls-key go together")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main(a))
    sys.exit(0)
