# -*- coding: utf-8 -*-
"""Runs wstest with every listening socket bound to loopback (Python 2.7, runs in venv27).

wstest's server modes (fuzzingserver, echoserver, ...) call Twisted's reactor.listenTCP /
reactor.listenSSL with interface '' (all interfaces). This wrapper imports wstest (which installs
the reactor), then replaces those two reactor methods with versions that force the interface to
$WSTEST_BIND (default 127.0.0.1) before running wstest's normal command-line entry point.
Usage: venv27/bin/python wstest_loopback.py <wstest arguments...>
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

if __name__ == '__main__':
    sys.argv[0] = 'wstest'
    sys.exit(wstest.run())
