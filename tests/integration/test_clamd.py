#!/usr/bin/python3
"""Integration: clamd INSTREAM before the 250 (content.c). A real clamd (Debian clamav-daemon)
is started once for this file on a Unix socket and a loopback TCP port in a temporary
directory, with a signature database the test writes (EICAR as .hdb and .ndb; nothing is
downloaded). EICAR is refused with 554 5.7.0 and its name, a clean message is queued byte
for byte, and a clamd that is absent, hangs, dies mid-stream or answers garbage gives 451
4.3.0 (or, with CLAMDFAILOPEN, the message is accepted and that is logged); nothing is
queued after a 4xx/5xx."""
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import re
import threading
import time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403
from scanners import stop_scanner  # noqa: E402

EICAR = b'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
CLAM = {}


def start_clamd():
    d = tempfile.mkdtemp(prefix='mxit-clamd.')
    os.makedirs(os.path.join(d, 'db'))
    os.makedirs(os.path.join(d, 'tmp'))
    import hashlib
    with open(os.path.join(d, 'db', 'test.hdb'), 'w') as f:
        f.write('%s:%d:Test.EICAR-HDB\n' % (hashlib.md5(EICAR).hexdigest(), len(EICAR)))
    with open(os.path.join(d, 'db', 'test.ndb'), 'w') as f:
        f.write('Test.EICAR-NDB:0:*:%s\n' % b'EICAR-STANDARD-ANTIVIRUS-TEST-FILE'.hex())
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    sock = os.path.join(d, 'clamd.sock')
    with open(os.path.join(d, 'clamd.conf'), 'w') as f:
        f.write('Foreground yes\nLocalSocket %s\nTCPSocket %d\nTCPAddr 127.0.0.1\n'
                'DatabaseDirectory %s/db\nTemporaryDirectory %s/tmp\nLogFile %s/clamd.log\n'
                'SelfCheck 0\nMaxThreads 4\nStreamMaxLength 2M\n' % (sock, port, d, d, d))
    p = subprocess.Popen(['clamd', '-c', os.path.join(d, 'clamd.conf')], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError('clamd exited: %s' % open(os.path.join(d, 'clamd.log')).read()[-500:])
        try:
            c = socket.socket(socket.AF_UNIX)
            c.connect(sock)
            c.sendall(b'zPING\0')
            ok = c.recv(100) == b'PONG\0'
            c.close()
            if ok:
                break
        except OSError:
            pass
        time.sleep(0.05)
    else:
        raise RuntimeError('clamd did not start')
    CLAM.update(proc=p, dir=d, sock=sock, tcp='127.0.0.1:%d' % port)


def stop_clamd():
    stop_scanner(CLAM)


class FakeClamd:
    """a misbehaving clamd on a Unix socket: mode 'garbage' answers junk, 'hang' reads and
    never answers, 'die' closes after the first bytes"""

    def __init__(self, mode):
        self.dir = tempfile.mkdtemp(prefix='mxit-fakeclamd.')
        self.path = os.path.join(self.dir, 'sock')
        self.mode = mode
        self.ls = socket.socket(socket.AF_UNIX)
        self.ls.bind(self.path)
        self.ls.listen(8)
        self.conns = []
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        try:
            c.settimeout(10)
            if self.mode == 'die':
                c.recv(10)
                c.close()
                return
            got = b''
            while not got.endswith(b'\0\0\0\0'):
                x = c.recv(65536)
                if not x:
                    return
                got += x
                got = got[-8:]
            if self.mode == 'garbage':
                c.sendall(b'hello there\0')
                c.close()
            # hang: keep the connection open, say nothing
        except OSError:
            pass

    def close(self):
        self.ls.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def crlf(msg):
    return b(msg).replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')


def deliver(srv, msg, data_reply=b'354 go ahead\r\n'):
    with srv.session(timeout=20) as s:
        eq(s.reply(), banner(), 'banner')
        if data_reply != b'354 go ahead\r\n':
            eq(s.cmd('MAIL FROM:<a@x.test>'), b'250 ok\r\n', 'MAIL')
            eq(s.cmd('RCPT TO:<u@example.test>'), b'250 ok\r\n', 'RCPT')
            return s.cmd('DATA')
        return send_message(s, body=crlf(msg))


def content_events(srv):
    return events([l for l in srv.log_lines() if l.startswith(b'pid=')], 'content')


@case
def test_eicar_in_body(srv):
    srv.configure(env={'CLAMD': CLAM['sock']})
    r = deliver(srv, b'Subject: test\n\n' + EICAR + b'\n')
    eq(r, b'554 5.7.0 virus found: Test.EICAR-NDB.UNOFFICIAL\r\n', 'reply')
    srv.nothing_stored(runs=1)
    ev = content_events(srv)
    check(ev and ev[0]['clamd'] == b'found' and ev[0]['virus'] == b'Test.EICAR-NDB.UNOFFICIAL'
          and 'clamd_ms' in ev[0], 'log: %r' % ev)


@case
def test_virus_then_clean_one_session(srv):
    srv.configure(env={'CLAMD': CLAM['sock']})
    with srv.session(timeout=20) as s:
        eq(s.reply(), banner(), 'banner')
        eq(send_message(s, body=crlf(b'Subject: v\n\n' + EICAR + b'\n')),
           b'554 5.7.0 virus found: Test.EICAR-NDB.UNOFFICIAL\r\n', 'first')
        queued(send_message(s, body=crlf(b'Subject: c\n\nclean\n')))
    eq(split_received(srv.stored(1)[0]['msg'])[1], b'Subject: c\n\nclean\n', 'second message')


@case
def test_eicar_attachment_over_tcp(srv):
    srv.configure(env={'CLAMD': CLAM['tcp']})
    msg = (b'Subject: t\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\n'
           b'Content-Type: text/plain\n\nsee attached\n--zz\nContent-Type: application/octet-stream\n'
           b'Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=e.com\n\n'
           + base64.b64encode(EICAR) + b'\n--zz--\n')
    r = deliver(srv, msg)
    match(rb'554 5\.7\.0 virus found: Test\.EICAR-(HDB|NDB)\.UNOFFICIAL\r\n', r, 'reply')
    srv.nothing_stored(runs=1)


@case
def test_swaks_attachment(srv):
    # a real client: swaks attaches EICAR as a base64 MIME part
    srv.configure(env={'CLAMD': CLAM['sock']})
    f = os.path.join(srv.dir, 'eicar.com')
    with open(f, 'wb') as fh:
        fh.write(EICAR)
    rc, out = srv.swaks('--to', 'u@example.test', '--from', 'a@x.test', '--attach', '@' + f)
    check(b'<** 554 5.7.0 virus found: Test.EICAR-' in out, 'swaks: %r' % out[-600:])
    srv.nothing_stored(runs=1)
    rc, out = srv.swaks('--to', 'u@example.test', '--from', 'a@x.test', '--attach', '@/etc/hostname')
    check(re.search(rb'<-  250 ok \d+ qp \d+', out), 'swaks clean: %r' % out[-600:])


@case
def test_clean_large_message_streamed(srv):
    srv.configure(env={'CLAMD': CLAM['sock']})
    body = b''.join(b'line %07d of a clean message, nothing to see here\n' % i for i in range(20000))
    msg = b'Subject: big\n\n' + body
    queued(deliver(srv, msg))
    eq(split_received(srv.stored(1)[0]['msg'])[1], msg, 'message')
    ev = content_events(srv)
    check(ev and ev[0]['clamd'] == b'ok' and ev[0]['verdict'] == b'accept', 'log: %r' % ev)


@case
def test_clamd_absent(srv):
    srv.configure(env={'CLAMD': CLAM['dir'] + '/nothing.sock'})
    r = deliver(srv, None, data_reply=None)
    eq(r, b'451 4.3.0 temporary content check failure\r\n', 'DATA reply')
    srv.nothing_stored(runs=0)
    check(b'reason=clamd:down' in srv.log(), 'log: %r' % srv.log())


@case
def test_clamd_absent_failopen(srv):
    srv.configure(env={'CLAMD': '127.0.0.1:1', 'CLAMDFAILOPEN': '1'})
    queued(deliver(srv, b'Subject: t\n\n' + EICAR + b'\n'))
    ev = content_events(srv)
    check(ev and ev[0]['clamd'] == b'failopen', 'log: %r' % ev)


@case
def test_clamd_garbage_hang_die(srv):
    for mode, why in [('garbage', b'clamd_error=garbage'), ('hang', b'clamd_error=timeout'),
                      ('die', b'clamd_error=')]:
        f = FakeClamd(mode)
        try:
            srv.configure(env={'CLAMD': f.path, 'CLAMDTIMEOUT': '1'})
            t0 = time.time()
            r = deliver(srv, b'Subject: t\n\nhello\n' * 50)
            eq(r, b'451 4.3.0 temporary content check failure\r\n', 'reply (%s)' % mode)
            check(time.time() - t0 < 5, '%s: took %.1fs' % (mode, time.time() - t0))
            srv.nothing_stored(runs=1)
            check(why in srv.log(), '%s: log: %r' % (mode, srv.log()))
        finally:
            f.close()


@case
def test_stream_max_length(srv):
    # our limit under clamd's (2M): the stream is cut, scanned and the rest passes unscanned
    big = b'Subject: big\n\n' + (b'x' * 999 + b'\n') * 3000 + EICAR + b'\n'
    srv.configure(env={'CLAMD': CLAM['sock'], 'CLAMDMAXSIZE': '1M'})
    queued(deliver(srv, big))
    ev = content_events(srv)
    check(ev and ev[0]['clamd'] == b'ok' and ev[0]['clamd_partial'] == b'%d' % (1024 * 1024),
          'log: %r' % ev)
    # over clamd's own StreamMaxLength: clamd says "size limit exceeded": a 451, not a 250
    srv.configure(env={'CLAMD': CLAM['sock']})
    eq(deliver(srv, big), b'451 4.3.0 temporary content check failure\r\n', 'reply')
    srv.nothing_stored(runs=1)


if __name__ == '__main__':
    if not shutil.which('clamd'):
        print('FAIL clamd.start: clamd is not installed (install-deps: clamav-daemon)')
        sys.exit(0)
    try:
        start_clamd()
    except Exception as e:
        print('FAIL clamd.start: %s' % e)
        stop_clamd()
        sys.exit(0)
    try:
        run('clamd')
    finally:
        stop_clamd()
