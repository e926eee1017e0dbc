#!/usr/bin/python3
"""Integration: faults found by attacking mxguard (issue 12): log lines stay whole under
concurrency, damaged cdb files answer 451, RHSBL with TCPREMOTEHOST, non-regular certificate
files, TLS under an address-space limit, descriptors a child inherits."""
import os
import sys
import threading
import time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

OK = b'250 ok\r\n'


# -- log atomicity (item 3)

def hostile_session(port, errors, i):
    try:
        with Session(port, 20) as s:
            s.reply()
            s.cmd(b'HELO ' + b'"=\\' * 600)
            s.cmd(b'MAIL FROM:<' + b'"=' * 100 + b'@x.test>')
            for k in range(5):
                s.cmd(b'RCPT TO:<' + (b'=%d"' % k) * 60 + b'@elsewhere.test>')
            s.cmd(b'QUIT')
    except Exception as e:
        errors.append('session %d: %s' % (i, e))


@case
def test_log_lines_whole_under_concurrency(srv):
    """40 concurrent sessions with long client strings that escape to 4 bytes each: every
    log line parses as one pid= event= line"""
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'}, env={'LOGLEVEL': '4'})
    errors = []
    th = [threading.Thread(target=hostile_session, args=(srv.port, errors, i)) for i in range(40)]
    for t in th:
        t.start()
    for t in th:
        t.join(60)
    check(not errors, 'client errors: %r' % errors[:3])
    srv.wait_idle(10)
    lines = srv.log_lines()
    bad = []
    for l in lines:
        try:
            log_fields(l)
            check(l.count(b'pid=') == 1, 'two lines in one')
            check(len(l) < 4096, 'line of %d bytes' % len(l))
        except AssertionError as e:
            bad.append(str(e)[:200])
    check(not bad, '%d of %d log lines malformed, e.g. %r' % (len(bad), len(lines), bad[:2]))
    check(len(events(lines, 'reject')) == 200, 'expected 200 reject lines, got %d'
          % len(events(lines, 'reject')))
    check(len(events(lines, 'end')) == 40, 'expected 40 end lines')


if __name__ == '__main__':
    run('harden')
