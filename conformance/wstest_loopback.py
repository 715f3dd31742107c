# -*- coding: utf-8 -*-
"""Runs wstest with every listening socket bound to loopback (Python 2.7, runs in venv27).

wstest's server modes (fuzzingserver, echoserver, ...) call Twisted's reactor.listenTCP /
reactor.listenSSL with interface '' (all interfaces). This wrapper imports wstest (which installs
the reactor), then replaces those two reactor methods with versions that force the interface to
$WSTEST_BIND (default 127.0.0.1) before running wstest's normal command-line entry point.
Usage: venv27/bin/python wstest_loopback.py <wstest arguments...>

$WSTEST_PMD_MESSAGES (optional, 1..1000): how many messages each permessage-deflate case (12.*,
13.*) sends instead of the suite's 1000. The cases are otherwise unchanged (same sizes, data,
fragmentation, negotiation and verdict logic); run.sh sets it for the CI gate, whose time budget
the full count does not fit (see README.md).
"""
import os
import sys

from autobahntestsuite import wstest  # installs the reactor (choosereactor)
from twisted.internet import reactor

BIND = os.environ.get("WSTEST_BIND", "127.0.0.1")
if BIND not in ("127.0.0.1", "::1"):
    sys.stderr.write("wstest_loopback: WSTEST_BIND must be 127.0.0.1 or ::1\n")
    sys.exit(2)

_listenTCP = reactor.listenTCP
_listenSSL = reactor.listenSSL


def listenTCP(port, factory, backlog=50, interface=''):
    sys.stderr.write("wstest_loopback: listenTCP %s:%s\n" % (BIND, port))
    return _listenTCP(port, factory, backlog, BIND)


def listenSSL(port, factory, contextFactory, backlog=50, interface=''):
    sys.stderr.write("wstest_loopback: listenSSL %s:%s\n" % (BIND, port))
    return _listenSSL(port, factory, contextFactory, backlog, BIND)


reactor.listenTCP = listenTCP
reactor.listenSSL = listenSSL

PMD_MESSAGES = os.environ.get("WSTEST_PMD_MESSAGES")
if PMD_MESSAGES:
    from autobahntestsuite.case import case12_x_x
    count = int(PMD_MESSAGES)
    if not 1 <= count <= 1000:
        sys.stderr.write("wstest_loopback: WSTEST_PMD_MESSAGES must be 1..1000\n")
        sys.exit(2)
    for C in case12_x_x.Case12_X_X + case12_x_x.Case13_X_X:
        C.COUNT = count
        C.DESCRIPTION = C.DESCRIPTION.replace("Send 1000 ", "Send %d " % count)
    sys.stderr.write("wstest_loopback: permessage-deflate cases send %d messages each\n" % count)

if __name__ == '__main__':
    sys.argv[0] = 'wstest'
    sys.exit(wstest.run())
