#!/usr/bin/python3
"""Integration: STARTTLS and implicit TLS (tls.c) under the real tcpserver with throw-away
certificates made here by `openssl req` (none is committed). Clients: openssl s_client,
swaks, Python's smtplib and ssl. Cases: advertising rules, replies (220/454/501/502),
plaintext pipelined after STARTTLS is dropped, EHLO again after TLS, TLS 1.2 minimum, cipher
lists, SNI, implicit TLS on a second port, a handshake that stalls or is garbage."""
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

CERTDIR = tempfile.mkdtemp(prefix='mxit-certs.')


def makecert(cn):
    key, crt = os.path.join(CERTDIR, cn + '.key'), os.path.join(CERTDIR, cn + '.crt')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                    '-subj', '/CN=' + cn, '-keyout', key, '-out', crt],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(crt, 'rb') as f1, open(key, 'rb') as f2:
        return f1.read() + f2.read()


def openssl(*args):
    subprocess.run(['openssl'] + list(args), check=True, cwd=CERTDIR,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def clientcerts():
    """a CA, a client certificate it signed (client@example.test) and a self-signed one with
    the same address; returns (ca pem, {name: (crt path, key path)})"""
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=Test CA',
            '-keyout', 'ca.key', '-out', 'ca.crt')
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj',
            '/CN=client/emailAddress=client@example.test', '-keyout', 'cl.key', '-out', 'cl.csr')
    openssl('x509', '-req', '-in', 'cl.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key',
            '-CAcreateserial', '-days', '2', '-out', 'cl.crt')
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj',
            '/CN=rogue/emailAddress=client@example.test', '-keyout', 'rg.key', '-out', 'rg.crt')
    with open(os.path.join(CERTDIR, 'ca.crt'), 'rb') as f:
        ca = f.read()
    j = lambda n: os.path.join(CERTDIR, n)
    return ca, {'good': (j('cl.crt'), j('cl.key')), 'rogue': (j('rg.crt'), j('rg.key'))}


PEM = makecert('mx.test')
OTHER = makecert('other.test')
TLSCTL = {'me': ME, 'servercert.pem': PEM}
EHLO_TLS = b'250-mx.test\r\n250-STARTTLS\r\n250-PIPELINING\r\n250 8BITMIME\r\n'
EHLO_PLAIN = b'250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n'


def client_ctx(**kw):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def starttls(s, sni=None, **kw):
    """STARTTLS on a raw Session; afterwards s talks TLS"""
    eq(s.cmd('STARTTLS'), b'220 ready for tls\r\n', 'STARTTLS reply')
    s.sock = client_ctx(**kw).wrap_socket(s.sock, server_hostname=sni)
    return s.sock


def s_client(srv, *args, stdin=b'EHLO c.test\r\nQUIT\r\n'):
    p = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % srv.port,
                        '-ign_eof'] + list(args), input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=20)
    return p.returncode, p.stdout


@case
def test_no_cert_no_starttls(srv):
    with srv.session() as s:
        s.reply()
        eq(s.cmd('EHLO c.test'), EHLO_PLAIN, 'EHLO without servercert.pem')
        eq(s.cmd('STARTTLS'), b'502 unimplemented (#5.5.1)\r\n', 'STARTTLS without a certificate')


@case
def test_advertised(srv):
    srv.configure(control=TLSCTL)
    with srv.session() as s:
        s.reply()
        eq(s.cmd('EHLO c.test'), EHLO_TLS, 'EHLO with servercert.pem')


@case
def test_disabletls(srv):
    srv.configure(control=TLSCTL, env={'DISABLETLS': '1'})
    with srv.session() as s:
        s.reply()
        eq(s.cmd('EHLO c.test'), EHLO_PLAIN, 'EHLO with DISABLETLS=1')
        eq(s.cmd('STARTTLS'), b'502 unimplemented (#5.5.1)\r\n', 'STARTTLS with DISABLETLS=1')


@case
def test_argument_501(srv):
    srv.configure(control=TLSCTL)
    with srv.session() as s:
        s.reply()
        eq(s.cmd('STARTTLS now'), b'501 Syntax error (no parameters allowed) (#5.5.4)\r\n',
           'STARTTLS with an argument')
        eq(s.cmd('NOOP'), b'250 ok\r\n', 'session goes on')


@case
def test_bad_cert_454(srv):
    srv.configure(control={'me': ME, 'servercert.pem': b'not a certificate\n'})
    with srv.session() as s:
        s.reply()
        r = s.cmd('STARTTLS')
        eq(r, b'454 TLS not available due to temporary reason (#4.3.0)\r\n', 'broken certificate')
        eq(s.cmd('NOOP'), b'250 ok\r\n', 'plaintext session goes on')


@case
def test_s_client(srv):
    srv.configure(control=TLSCTL)
    rc, out = s_client(srv, '-starttls', 'smtp')
    check(b'250-PIPELINING' in out and b'221 mx.test' in out, 's_client session: %r' % out[-600:])
    check(b'STARTTLS' not in out.split(b'SSL-Session')[-1], 'STARTTLS offered again inside TLS')
    check(b'CN = mx.test' in out or b'CN=mx.test' in out, 'certificate subject: %r' % out[:300])
    lines = events(srv.log_lines(), 'tls')
    check(lines and lines[0].get('version', b'').startswith(b'TLSv1.'), 'tls log line %r' % lines)
    check(lines and lines[0].get('cipher'), 'cipher in the log: %r' % lines)
    srv.wait_idle(3)
    e = [x for x in events(srv.log_lines(), 'end') if x.get('tls')]
    check(e and e[-1]['tls'].startswith(b'TLSv1.'), 'summary line has tls=: %r' % e)


@case
def test_tls12_minimum(srv):
    srv.configure(control=TLSCTL)
    rc, out = s_client(srv, '-starttls', 'smtp', '-tls1_1')
    check(b'221 mx.test' not in out, 'TLS 1.1 was accepted: %r' % out[-300:])
    srv.allowed_status = {256}
    check(any(e.get('result') == b'handshake_failed' for e in events(srv.log_lines(), 'tls')),
          'handshake failure logged: %r' % srv.log())


@case
def test_pipelined_plaintext_dropped(srv):
    srv.configure(control=TLSCTL)
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        # CVE-2011-0411: the injected MAIL must never be executed
        s.send(b'STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n')
        eq(s.reply(), b'220 ready for tls\r\n', 'STARTTLS reply')
        s.sock = client_ctx().wrap_socket(s.sock)
        eq(s.cmd('EHLO c.test'), EHLO_PLAIN, 'EHLO inside TLS: no STARTTLS')
        eq(s.cmd('RCPT TO:<u@example.test>'), b'503 MAIL first (#5.5.1)\r\n',
           'the pipelined MAIL was not executed')
        eq(s.cmd('QUIT'), b'221 mx.test\r\n', 'QUIT')


@case
def test_ehlo_required_after_tls(srv):
    srv.configure(control=TLSCTL)
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        eq(s.cmd('MAIL FROM:<a@x.test>'), b'250 ok\r\n', 'MAIL before TLS')
        starttls(s)
        eq(s.cmd('RCPT TO:<u@example.test>'), b'503 MAIL first (#5.5.1)\r\n', 'transaction reset')
        eq(s.cmd('MAIL FROM:<a@x.test>'), b'503 EHLO first (#5.5.1)\r\n', 'EHLO required again')
        eq(s.cmd('EHLO c.test'), EHLO_PLAIN, 'EHLO inside TLS')
        eq(s.cmd('STARTTLS'), b'502 unimplemented (#5.5.1)\r\n', 'STARTTLS twice')
        queued(send_message(s))
    m = srv.stored(1)[0]['msg']
    check(re.match(rb'Received: from unknown \(HELO c\.test\) \(127\.0\.0\.1\)\n  by '
                   rb'mx\.example\.test with ESMTPS \([A-Z0-9_-]+ encrypted\); ', m),
          'Received line %r' % m[:200])


@case
def test_smtplib(srv):
    srv.configure(control=TLSCTL)
    c = srv.smtplib()
    c.ehlo('c.test')
    check(c.has_extn('starttls'), 'STARTTLS advertised to smtplib')
    c.starttls(context=client_ctx())
    c.ehlo('c.test')
    check(not c.has_extn('starttls'), 'STARTTLS advertised inside TLS')
    c.sendmail('a@x.test', ['u@example.test'], b'Subject: s\r\n\r\nover tls\r\n')
    c.quit()
    check(b'over tls' in srv.stored(1)[0]['msg'], 'message stored')


@case
def test_swaks(srv):
    srv.configure(control=TLSCTL)
    rc, out = srv.swaks('--tls', '--from', 'a@x.test', '--to', 'u@example.test', '--helo', 'c.test')
    check(rc == 0, 'swaks --tls exit %d: %r' % (rc, out[-500:]))
    srv.stored(1)


@case
def test_ciphers(srv):
    want = 'ECDHE-RSA-AES128-GCM-SHA256'
    for how in ({'env': {'TLSCIPHERS': want}},
                {'control': dict(TLSCTL, tlsserverciphers='ECDHE-RSA-AES128-GCM-SHA256\n')}):
        srv.configure(control=how.get('control', TLSCTL), env=how.get('env'))
        with srv.session() as s:
            s.reply()
            sock = starttls(s, maximum_version=ssl.TLSVersion.TLSv1_2)
            eq(sock.cipher()[0], want, 'cipher with %r' % how)
            eq(s.cmd('QUIT'), b'221 mx.test\r\n', 'QUIT')


@case
def test_sni(srv):
    srv.configure(control=dict(TLSCTL, servercerts=DIR), files={
        'control/servercerts/other.test/servercert.pem': OTHER})
    for name, cn in (('other.test', b'other.test'), ('OTHER.test', b'other.test'),
                     ('unknown.test', b'mx.test'), (None, b'mx.test')):
        args = ['-starttls', 'smtp'] + (['-servername', name] if name else ['-noservername'])
        rc, out = s_client(srv, *args)
        check(b'CN = ' + cn in out, 'SNI %r: certificate %r' % (name, out[:400]))
        # qmail-tls: the greeting text becomes the SNI name that picked a certificate
        check(b'250-' + cn + b'\r\n' in out and b'221 ' + cn in out, 'SNI %r: session %r'
              % (name, out[-300:]))
    check(any(e.get('sni') == b'other.test' for e in events(srv.log_lines(), 'tls')),
          'sni in the log')


@case
def test_client_certificates(srv):
    ca, certs = clientcerts()
    ctl = dict(TLSCTL, rcpthosts='example.test\n', **{'clientca.pem': ca})
    for who, listed, relay, why in (('good', 'client@example.test\n', True, b'ok'),
                                    ('good', 'other@example.test\n', False, b'not in tlsclients'),
                                    ('rogue', 'client@example.test\n', False, None),
                                    (None, 'client@example.test\n', False, None)):
        srv.configure(control=dict(ctl, tlsclients=listed))
        with srv.session() as s:
            s.reply()
            eq(s.cmd('STARTTLS'), b'220 ready for tls\r\n', 'STARTTLS')
            c = client_ctx()
            if who:
                c.load_cert_chain(*certs[who])
            s.sock = c.wrap_socket(s.sock)
            s.cmd('EHLO c.test')
            s.cmd('MAIL FROM:<a@x.test>')
            r = s.cmd('RCPT TO:<u@elsewhere.test>')
            what = '%s certificate, tlsclients %r' % (who, listed)
            check(r.startswith(b'250') == relay, '%s: RCPT %r' % (what, r))
            if relay:
                eq(s.cmd('DATA'), b'354 go ahead\r\n', 'DATA')
                s.send(b'Subject: c\r\n\r\nx\r\n.\r\n')
                queued(s.reply())
            s.cmd('QUIT')
        e = events(srv.log_lines(), 'tls')
        check(e, '%s: no tls log line' % what)
        if why:
            eq(e[0].get('cert'), why, '%s: cert= in the log' % what)
        if relay:
            m = srv.stored(1)[0]['msg']
            check(re.search(rb' encrypted\)\n  \(cert client@example\.test\); ', m),
                  'Received %r' % m[:250])
            eq(e[0].get('client'), b'client@example.test', 'client= in the log')


@case
def test_handshake_stall(srv):
    srv.configure(control=dict(TLSCTL, timeoutsmtpd='1\n'))
    srv.allowed_status = {256}
    with srv.session() as s:
        s.reply()
        s.cmd('STARTTLS')
        s.send(b'\x16\x03\x01\x00\xff')  # the start of a ClientHello, then nothing
        t0 = time.time()
        s.read_until_close(5)
        dt = time.time() - t0
        check(0.8 <= dt < 3.5, 'closed after %.2f s' % dt)
    e = events(srv.log_lines(), 'tls')
    check(e and e[0].get('result') == b'handshake_failed' and e[0].get('error') == b'timeout',
          'log %r' % e)


@case
def test_handshake_garbage(srv):
    srv.configure(control=TLSCTL)
    srv.allowed_status = {256}
    with srv.session() as s:
        s.reply()
        s.cmd('STARTTLS')
        s.send(b'MAIL FROM:<plain@x.test>\r\n')
        s.read_until_close(5)
    check(any(e.get('result') == b'handshake_failed' for e in events(srv.log_lines(), 'tls')),
          'handshake failure logged: %r' % srv.log())
    srv.nothing_stored(0)


@case
def test_implicit_second_port(srv):
    # implicit TLS (SMTPS=1, port 465 style) on its own tcpserver, next to the STARTTLS one
    srv2 = Server('smtps')
    try:
        srv2.start()
        srv2.configure(control=TLSCTL, env={'SMTPS': '1'})
        raw = socket.create_connection(('127.0.0.1', srv2.port), timeout=5)
        s = Session.__new__(Session)
        s.sock, s.timeout, s.buf, s.eof = client_ctx().wrap_socket(raw), 5, b'', False
        eq(s.reply(), banner(), 'banner inside TLS')
        eq(s.cmd('EHLO c.test'), EHLO_PLAIN, 'EHLO inside implicit TLS')
        queued(send_message(s))
        s.cmd('QUIT')
        s.close()
        m = srv2.stored(1)[0]['msg']
        check(b' with ESMTPS (' in m, 'Received protocol %r' % m[:200])
        rc, out = srv2.swaks('--tls-on-connect', '--from', 'a@x.test', '--to', 'u@example.test')
        check(rc == 0, 'swaks --tlsc exit %d: %r' % (rc, out[-400:]))
        # a plaintext client gets nothing and is closed
        srv2.allowed_status = {0, 256}
        with srv2.session() as p:
            p.send(b'EHLO c.test\r\n')
            check(b'220' not in p.read_until_close(5), 'plaintext banner on the SMTPS port')
        srv2.after_case()
    finally:
        srv2.cleanup()


if __name__ == '__main__':
    try:
        sys.exit(run('tls'))
    finally:
        import shutil
        shutil.rmtree(CERTDIR, ignore_errors=True)
