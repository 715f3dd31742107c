"""Interop peer built on the Python `websockets` library (asyncio API, >= 13).

  py_peer.py server [--protocols b]
      Echo server on 127.0.0.1 (OS-chosen port). Prints JSON lines on stdout:
        {"event":"listening","port":N}
        {"event":"request","path":..,"headers":{lower-cased name: value},"protocol":..}
        {"event":"closed","code":..,"reason":..}      (the close frame it received)
      Echoes every message with its type; a text message "close:CODE:REASON" makes
      it close the connection with that code and reason instead.

  py_peer.py client --url URL [--protocols a,b] [--header Name:Value]... --steps S1,S2,...
      Runs the steps in order and prints one JSON line per result (see tests/README.md).
"""
import argparse
import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

TEXT = "hello interop \u2713"
BIG = bytes((i * 7 + 3) % 251 for i in range(1 << 20))
DEFLATE_TEXT = "".join('{"id":%d,"name":"player%d","x":%d,"y":%d},' % (i, i, i * 37 % 1000, i * 91 % 1000)
                       for i in range(100))
DEFLATE_BINARY = bytes((i // 16) % 7 for i in range(100000))


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def run_server(args):
    protocols = [p for p in args.protocols.split(",") if p] if args.protocols else None

    async def handler(ws):
        out({
            "event": "request",
            "path": ws.request.path,
            "headers": {k.lower(): v for k, v in ws.request.headers.raw_items()},
            "protocol": ws.subprotocol,
            "extensions": ws.response.headers.get("Sec-WebSocket-Extensions"),
        })
        try:
            async for msg in ws:
                if isinstance(msg, str) and msg.startswith("close:"):
                    _, code, reason = msg.split(":", 2)
                    await ws.close(int(code), reason)
                    break
                await ws.send(msg)
        except ConnectionClosed:
            pass
        await ws.wait_closed()
        out({"event": "closed", "code": ws.close_code, "reason": ws.close_reason})

    async with serve(handler, "127.0.0.1", 0, subprotocols=protocols, max_size=None,
                     ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        out({"event": "listening", "port": port})
        await asyncio.Future()


async def run_client(args):
    protocols = [p for p in args.protocols.split(",") if p] if args.protocols else None
    headers = {}
    for h in args.header or []:
        name, value = h.split(":", 1)
        headers[name.strip()] = value.strip()
    async with connect(args.url, subprotocols=protocols, additional_headers=headers,
                       max_size=None, ping_interval=None, open_timeout=5) as ws:
        out({"event": "open", "protocol": ws.subprotocol,
             "extensions": ws.response.headers.get("Sec-WebSocket-Extensions")})
        for step in args.steps.split(","):
            if step == "text":
                await ws.send(TEXT)
                got = await asyncio.wait_for(ws.recv(), 10)
                out({"step": step, "type": "text" if isinstance(got, str) else "binary",
                     "equal": got == TEXT, "len": len(got)})
            elif step in ("binary", "big"):
                data = bytes(range(256)) if step == "binary" else BIG
                await ws.send(data)
                got = await asyncio.wait_for(ws.recv(), 30)
                out({"step": step, "type": "text" if isinstance(got, str) else "binary",
                     "equal": got == data, "len": len(got)})
            elif step == "deflate":
                # Compressible messages, text and binary, several in a row (a kept
                # window is used from the second on).
                ok = True
                for i in range(3):
                    for data in (DEFLATE_TEXT, DEFLATE_BINARY):
                        await ws.send(data)
                        got = await asyncio.wait_for(ws.recv(), 30)
                        ok = ok and got == data
                out({"step": step, "equal": ok})
            elif step == "ping":
                waiter = await ws.ping(b"hi")
                await asyncio.wait_for(waiter, 10)
                out({"step": step, "pong": True})
            elif step.startswith("close_client:") or step.startswith("close_server:"):
                kind, code, reason = step.split(":", 2)
                if kind == "close_client":
                    await ws.close(int(code), reason)
                else:
                    await ws.send("close:%s:%s" % (code, reason))
                    try:
                        while True:
                            await asyncio.wait_for(ws.recv(), 10)
                    except ConnectionClosed:
                        pass
                await asyncio.wait_for(ws.wait_closed(), 10)
                out({"step": "closed", "code": ws.close_code, "reason": ws.close_reason})
            else:
                raise SystemExit("unknown step " + step)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["server", "client"])
    p.add_argument("--url")
    p.add_argument("--protocols", default="")
    p.add_argument("--header", action="append")
    p.add_argument("--steps", default="")
    args = p.parse_args()
    try:
        asyncio.run(run_server(args) if args.mode == "server" else run_client(args))
    except Exception as e:  # reported to the Rust test, which fails on it
        out({"error": "%s: %s" % (type(e).__name__, e)})
        sys.exit(1)


if __name__ == "__main__":
    main()
