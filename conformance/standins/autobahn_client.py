#!/usr/bin/env python3
"""Stand-in for `autobahn-client` (CLI.md): a Python `websockets` Autobahn fuzzingserver client.

Used only to prove the conformance machinery before our own binaries exist. Follows the
`autobahn-client` contract: `--url URL --agent NAME [--ca PEM]`; runs `/getCaseCount`, every
`/runCase?case=i&agent=NAME` (echoing every message), then `/updateReports?agent=NAME`.
Exit 0 when the run completed (the verdict is in the report), 2 when it could not run.
"""
import argparse
import asyncio
import logging
import ssl
import sys
import urllib.parse

import websockets
from websockets.asyncio.client import connect

CASE_TIMEOUT = 120.0  # seconds per case (9.* moves up to 16 MiB messages)
REPORT_TIMEOUT = 600.0  # /updateReports writes every report before it closes


def opts(args):
    o = dict(max_size=None, max_queue=None, compression=None, ping_interval=None,
             open_timeout=10, close_timeout=5)
    if args.url.startswith("wss://"):
        ctx = ssl.create_default_context(cafile=args.ca) if args.ca else ssl.create_default_context()
        o["ssl"] = ctx
    return o


async def get_case_count(args):
    async with connect(args.url.rstrip("/") + "/getCaseCount", **opts(args)) as ws:
        return int(await asyncio.wait_for(ws.recv(), 10))


async def run_case(args, i):
    q = urllib.parse.urlencode({"case": i, "agent": args.agent})
    try:
        async with connect("%s/runCase?%s" % (args.url.rstrip("/"), q), **opts(args)) as ws:
            async for message in ws:
                await ws.send(message)
    except websockets.exceptions.WebSocketException as e:
        logging.info("case %d: %s", i, e)  # the fuzzer judges it; go on
    except OSError as e:
        logging.warning("case %d: %s", i, e)


async def update_reports(args):
    q = urllib.parse.urlencode({"agent": args.agent})
    async with connect("%s/updateReports?%s" % (args.url.rstrip("/"), q), **opts(args)) as ws:
        await asyncio.wait_for(ws.wait_closed(), REPORT_TIMEOUT)


async def main(args):
    n = await get_case_count(args)
    print("cases %d" % n, flush=True)
    for i in range(1, n + 1):
        try:
            await asyncio.wait_for(run_case(args, i), CASE_TIMEOUT)
        except asyncio.TimeoutError:
            logging.warning("case %d: timed out after %.0f s", i, CASE_TIMEOUT)
    await update_reports(args)
    print("done", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--agent", required=True)
    p.add_argument("--ca")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        asyncio.run(main(a))
    except Exception as e:  # could not run: say why, exit non-zero
        print("autobahn_client: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(2)
