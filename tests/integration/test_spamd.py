#!/usr/bin/python3
"""Integration: spamd before the 250 (content.c). A real spamd (Debian spamd, the shipped
rules, --local: no network tests) is started once for this file on a loopback port. GTUBE is
refused with 554 5.7.1 at the reject threshold, or tagged at the tag threshold: the
X-Spam-* fields come right after our Received line and the message follows byte for byte.
A message over SPAMMAXSIZE passes unscanned (logged); spamd absent is a 451 (or accepted
with SPAMDFAILOPEN); nothing is queued after a 4xx/5xx."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403
from scanners import SPAMD, spamd_ping, start_spamd, stop_spamd  # noqa: F401

GTUBE = b'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'
def crlf(msg):
    return b(msg).replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')


SPAM = b'From: a@x.test\nTo: u@example.test\nSubject: buy now\n\n' + GTUBE + b'\n'
HAM = b'From: a@x.test\nTo: u@example.test\nSubject: lunch\n\nShall we meet at noon?\n'


def deliver(srv, msg):
    with srv.session(timeout=30) as s:
        eq(s.reply(), banner(), 'banner')
        return send_message(s, body=crlf(msg))


def content_events(srv):
    return events([l for l in srv.log_lines() if l.startswith(b'pid=')], 'content')


@case
def test_gtube_rejected(srv):
    srv.configure(env={'SPAMD': SPAMD['addr'], 'SPAMREJECT': '5'})
    match(rb'554 5\.7\.1 message looks like spam \(score 10\d\d\.\d\)\r\n', deliver(srv, SPAM), 'reply')
    srv.nothing_stored(runs=1)
    ev = content_events(srv)
    check(ev and ev[0]['spamd'] == b'ok' and ev[0]['score'].startswith(b'10') and 'spamd_ms' in ev[0],
          'log: %r' % ev)


@case
def test_gtube_tagged(srv):
    srv.configure(env={'SPAMD': SPAMD['addr'], 'SPAMTAG': '5', 'SPAMREJECT': '2000'})
    queued(deliver(srv, SPAM))
    rec, rest = split_received(srv.stored(1)[0]['msg'])
    check(rec.startswith(b'Received: from '), 'Received first: %r' % rec)
    m = match(rb'X-Spam-Flag: YES\nX-Spam-Score: (10\d\d\.\d)\nX-Spam-Status: Yes, score=\1 '
              rb'tag=5\.0(\n\ttests=[A-Z0-9_,]*GTUBE[A-Z0-9_,]*)?\n(.*)', rest, 'tagged message')
    eq(m.group(3), SPAM, 'message after the added fields')
    # spamd saw the client's Received line (given to it, not added to the message)
    check(m.group(2) and b'NO_RECEIVED' not in m.group(2) and b'GTUBE' in m.group(2),
          'tests: %r' % m.group(2))


@case
def test_ham_not_tagged(srv):
    srv.configure(env={'SPAMD': SPAMD['addr'], 'SPAMTAG': '5', 'SPAMREJECT': '10'})
    queued(deliver(srv, HAM))
    eq(split_received(srv.stored(1)[0]['msg'])[1], HAM, 'message')
    ev = content_events(srv)
    check(ev and ev[0]['spamd'] == b'ok' and ev[0]['verdict'] == b'accept', 'log: %r' % ev)


@case
def test_two_messages_one_session(srv):
    # nothing of the first message's verdict or spool leaks into the second
    srv.configure(env={'SPAMD': SPAMD['addr'], 'SPAMTAG': '5'})
    with srv.session(timeout=30) as s:
        eq(s.reply(), banner(), 'banner')
        queued(send_message(s, body=crlf(SPAM)))
        queued(send_message(s, body=crlf(HAM)))
    m = srv.stored(2)
    check(b'X-Spam-Flag: YES' in m[0]['msg'], 'first tagged: %r' % m[0]['msg'][:300])
    eq(split_received(m[1]['msg'])[1], HAM, 'second message')


@case
def test_databytes_refusal_then_next_message(srv):
    # a refusal by an earlier DATA_END check (databytes) with the message held for tagging:
    # nothing queued, and the next message of the session is whole
    srv.configure(env={'SPAMD': SPAMD['addr'], 'SPAMTAG': '5', 'DATABYTES': '2000'})
    with srv.session(timeout=30) as s:
        eq(s.reply(), banner(), 'banner')
        eq(send_message(s, body=crlf(HAM + b'y' * 5000 + b'\n')),
           b'552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n', 'first')
        queued(send_message(s, body=crlf(HAM)))
    m = srv.stored(1)
    eq(split_received(m[0]['msg'])[1], HAM, 'second message')


@case
def test_size_cap_unscanned(srv):
    big = SPAM + b'padding line to pass the size cap\n' * 100
    srv.configure(env={'SPAMD': SPAMD['addr'], 'SPAMTAG': '5', 'SPAMREJECT': '5', 'SPAMMAXSIZE': '1000'})
    queued(deliver(srv, big))
    eq(split_received(srv.stored(1)[0]['msg'])[1], big, 'message (held bytes released in order)')
    ev = content_events(srv)
    check(ev and ev[0]['spamd'] == b'toobig', 'log: %r' % ev)


@case
def test_spamd_absent(srv):
    srv.configure(env={'SPAMD': '127.0.0.1:1', 'SPAMREJECT': '5'})
    eq(deliver(srv, SPAM), b'451 4.3.0 temporary content check failure\r\n', 'reply')
    srv.nothing_stored(runs=1)
    srv.configure(env={'SPAMD': '127.0.0.1:1', 'SPAMTAG': '5', 'SPAMDFAILOPEN': '1'})
    queued(deliver(srv, HAM))
    eq(split_received(srv.stored(1)[0]['msg'])[1], HAM, 'message')
    ev = content_events(srv)
    check(ev and ev[0]['spamd'] == b'failopen', 'log: %r' % ev)


@case
def test_spamd_hangs_or_garbage(srv):
    # a spamd that takes the message and never answers, or answers nonsense: 451 in time
    import threading
    for mode in ('hang', 'garbage'):
        ls = socket.socket()
        ls.bind(('127.0.0.1', 0))
        ls.listen(4)
        conns = []

        def serve():
            try:
                c, _ = ls.accept()
            except OSError:
                return
            conns.append(c)
            c.settimeout(10)
            try:
                while c.recv(65536):
                    if mode == 'garbage':
                        c.sendall(b'HTTP/1.0 200 OK\r\n\r\nnope')
                        # no close with unread bytes: the RST could beat the garbage
                        c.shutdown(socket.SHUT_WR)
                        while c.recv(65536):
                            pass
                        c.close()
                        return
            except OSError:
                pass
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            srv.configure(env={'SPAMD': '127.0.0.1:%d' % ls.getsockname()[1], 'SPAMREJECT': '5',
                               'SPAMDTIMEOUT': '1'})
            t0 = time.time()
            eq(deliver(srv, HAM), b'451 4.3.0 temporary content check failure\r\n', 'reply (%s)' % mode)
            check(time.time() - t0 < 5, '%s took %.1fs' % (mode, time.time() - t0))
            srv.nothing_stored(runs=1)
            check((b'spamd_error=timeout' if mode == 'hang' else b'spamd_error=garbage') in srv.log(),
                  'log: %r' % srv.log())
        finally:
            ls.close()
            for c in conns:
                c.close()


if __name__ == '__main__':
    if not shutil.which('spamd'):
        print('FAIL spamd.start: spamd is not installed (install-deps: spamd spamassassin)')
        sys.exit(0)
    try:
        start_spamd()
    except Exception as e:
        print('FAIL spamd.start: %s' % e)
        stop_spamd()
        sys.exit(0)
    try:
        run('spamd')
    finally:
        stop_spamd()
