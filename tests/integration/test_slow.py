#!/usr/bin/python3
"""Integration: slow clients cannot hold a connection slot (issue 12 item 1). A command line must
be complete within timeoutsmtpd as a whole, not per byte; DATA must keep DATAMINRATE bytes/s on
average after DATAGRACE seconds; an AUTH exchange as a whole has timeoutsmtpd. Under
`tcpserver -c 3`, three clients dripping one byte at a time are dropped at the deadline and a
fourth client waiting in the backlog is then served."""
import base64
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

OK = b'250 ok\r\n'
GO = b'354 go ahead\r\n'
TIMEOUT = b'451 timeout (#4.4.2)\r\n'


def dripper(port, before, drip, every, stop, result, i):
    """connect, send `before` (whole commands, each answered), then `drip` one byte every
    `every` s until the server closes or stop is set; result[i] = what the server sent last"""
    try:
        s = Session(port, 15)
        s.reply()
        for c in before:
            s.cmd(c)
        s.sock.settimeout(every)
        k = 0
        got = b''
        while not stop.is_set():
            try:
                s.sock.sendall(drip[k % len(drip):k % len(drip) + 1])
            except OSError:
                break
            k += 1
            try:
                d = s.sock.recv(4096)
                if not d:
                    break
                got += d
            except socket.timeout:
                pass
            except OSError:  # a byte in flight when the server closed: RST
                got += b'<reset>'
                break
        result[i] = got
        s.close()
    except Exception as e:  # reported by the caller
        result[i] = 'error: %s' % e


def limited_server(srv, conc):
    """a second tcpserver with -c conc on the same run script (same env, same log)"""
    sk = socket.socket()
    sk.bind(('127.0.0.1', 0))
    port = sk.getsockname()[1]
    sk.close()
    log = open(os.path.join(srv.dir, 'tcpserver-c.log'), 'ab')
    p = subprocess.Popen(['tcpserver', '-v', '-R', '-H', '-l', LOCALNAME, '-c', str(conc),
                          '127.0.0.1', str(port), '/bin/sh', srv.runscript],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                         cwd=srv.dir)
    log.close()
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            socket.create_connection(('127.0.0.1', port), 1).close()
            break
        except OSError:
            time.sleep(0.02)
    time.sleep(0.3)  # the probe connection's session ends (EOF)
    return p, port


def fourth_client_served(srv, before, drip, env, want_reason, limit):
    srv.configure(control={'me': ME, 'timeoutsmtpd': '2'}, env=env)
    p, port = limited_server(srv, 3)
    stop = threading.Event()
    res = [None] * 3
    th = [threading.Thread(target=dripper, args=(port, before, drip, 0.3, stop, res, i))
          for i in range(3)]
    try:
        for t in th:
            t.start()
        time.sleep(0.5)
        t0 = time.time()
        c = socket.create_connection(('127.0.0.1', port), 5)
        c.settimeout(limit)
        try:
            got = c.recv(100)
        except socket.timeout:
            got = b''
        took = time.time() - t0
        c.close()
        check(got == banner(), 'fourth client not served within %.1f s (got %r)' % (limit, got))
        stop.set()
        for t in th:
            t.join(10)
        for r in res:
            check(isinstance(r, bytes) and (r.endswith(TIMEOUT) or r.endswith(b'<reset>')),
                  'a slow client was not dropped: %r' % (r,))
    finally:
        stop.set()
        p.terminate()
        p.wait()
    lines = srv.log_lines()
    ends = [dict(log_fields(l)) for l in lines if b' event=end ' in l]
    check(sum(1 for e in ends if e['status'] == want_reason) == 3,
          'three sessions ended with status=%s: %r' % (want_reason, lines[-6:]))
    return took


@case
def test_dripped_command_lines_under_c3(srv):
    took = fourth_client_served(srv, [], b'NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP', {},
                                b'slowclient', 6)
    check(took < 4, 'fourth client waited %.1f s with timeoutsmtpd 2' % took)


@case
def test_dripped_data_under_c3(srv):
    before = ['MAIL FROM:<a@x.test>', 'RCPT TO:<u@example.test>', 'DATA']
    took = fourth_client_served(srv, before, b'Subject: x\r\n\r\nslow body\r\n',
                                {'DATAGRACE': '1', 'DATAMINRATE': '100'}, b'slowdata', 6)
    check(took < 4, 'fourth client waited %.1f s' % took)
    runs = srv.nothing_stored(3)
    check(all(r['exit'] == 54 for r in runs), 'qmail-queue saw no envelope: %r' % runs)


@case
def test_slow_but_real_link_is_served(srv):
    """a link at 1 000 bytes/s, pausing up to a second between lines, gets its mail through"""
    srv.configure(control={'me': ME, 'timeoutsmtpd': '2'},
                  env={'DATAGRACE': '1', 'DATAMINRATE': '100'})
    with srv.session(10) as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@example.test>', OK)
        s.expect('DATA', GO)
        body = b'Subject: t\r\n\r\n' + b''.join(b'line %03d %s\r\n' % (i, b'x' * 90)
                                              for i in range(25))
        for i in range(0, len(body), 100):
            s.send(body[i:i + 100])
            time.sleep(0.1 if i % 1000 else 0.9)
        s.send(b'.\r\n')
        queued(s.reply())
    srv.stored(1)


@case
def test_default_rate_allows_a_pause(srv):
    """with the defaults (grace 300 s) a client pausing within timeoutsmtpd is fine"""
    srv.configure(control={'me': ME, 'timeoutsmtpd': '2'})
    with srv.session(10) as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@example.test>', OK)
        s.expect('DATA', GO)
        for i in range(3):
            s.send(b'x')
            time.sleep(1.2)
        s.send(b'\r\n.\r\n')
        queued(s.reply())
    srv.stored(1)


@case
def test_bad_rate_setting_is_logged(srv):
    srv.configure(env={'DATAMINRATE': 'fast'})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        queued(send_message(s))
    lines = srv.log_lines()
    check(any(b'event=error reason=setting name=DATAMINRATE value=fast' in l for l in lines),
          'no log line for the bad setting: %r' % lines)


@case
def test_auth_exchange_is_total(srv):
    """AUTH LOGIN: two answers each within timeoutsmtpd, but not the exchange as a whole"""
    db = os.path.join(srv.dir, 'pw')
    with open(db, 'w') as f:
        f.write('alice:secret\n')
    argv = [SMTPD, 'mx.test', os.path.join(MXG_SRC, 'tests', 'checkpw'), '/bin/true']
    srv.configure(control={'me': ME, 'timeoutsmtpd': '2'},
                  env={'CHECKPW_DB': db, 'AUTHDELAY': '0', 'FORCETLS': '0'},
                  shell=['exec ' + ' '.join(shlex.quote(a) for a in argv)])
    with srv.session(10) as s:
        eq(s.reply(), banner(), 'banner')
        s.cmd('EHLO x')
        eq(s.cmd('AUTH LOGIN')[:4], b'334 ', 'first prompt')
        time.sleep(1.3)
        eq(s.cmd(base64.b64encode(b'alice'))[:4], b'334 ', 'second prompt')
        t0 = time.time()
        s.closed_after(TIMEOUT, 3, 'AUTH exchange past timeoutsmtpd')
        check(time.time() - t0 < 1.5, 'closed %.1f s after the second prompt, not at the '
              'exchange deadline' % (time.time() - t0))
    ends = events(srv.log_lines(), 'end')
    eq(ends[0]['status'], b'slowclient', 'end status')


@case
def test_silent_client_is_still_timeout(srv):
    srv.configure(control={'me': ME, 'timeoutsmtpd': '1'})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.closed_after(TIMEOUT, 4)
    eq(events(srv.log_lines(), 'end')[0]['status'], b'timeout', 'end status')


if __name__ == '__main__':
    run('slow')
