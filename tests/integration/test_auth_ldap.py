#!/usr/bin/python3
"""Integration: SMTP AUTH as qmail-ldap does it. With SMTPAUTH set and no checkpassword in
argv, the qmail home's bin/auth_smtp (a test program installed there) checks LOGIN and PLAIN
over qmail-ldap's protocol (method NUL base64 fields NUL on stdin, K user NUL / D / Z on
stdout, run in the qmail home); AUTHPREPEND in the Received line; SMTPAUTH's TLSREQUIRED,
+cram and -cram; no helper: 502 and one log line; FORCEAUTHMAILFROM; MAIL's AUTH= parameter."""
import base64
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

TMP = tempfile.mkdtemp(prefix='mxit-authldap.')
CALLS = os.path.join(TMP, 'calls')
HELPER = r'''#!/usr/bin/python3
import base64, os, sys
data = sys.stdin.buffer.read()
f = data.split(b'\0')
with open(%r, 'ab') as log:
    log.write(repr((os.getcwd(), f)).encode() + b'\n')
users = {b'alice': (b'secret', b'alice@example.test'), b'zed': (b'x', None)}
try:
    if f[0] == b'login':
        u, p = base64.b64decode(f[1], validate=True), base64.b64decode(f[2], validate=True)
    elif f[0] == b'plain':
        _, u, p = base64.b64decode(f[1], validate=True).split(b'\0')
    else:
        raise ValueError
except Exception:
    sys.stdout.buffer.write(b'Z')
    sys.exit(0)
if u == b'crash':
    sys.exit(111)
if u == b'hang':
    import time
    time.sleep(60)
if u == b'zed':
    sys.stdout.buffer.write(b'Z')
    sys.exit(0)
if u in users and users[u][0] == p:
    sys.stdout.buffer.write(b'K' + users[u][1] + b'\0')
else:
    sys.stdout.buffer.write(b'D')
''' % CALLS

key, crt = os.path.join(TMP, 'k'), os.path.join(TMP, 'c')
subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                '-subj', '/CN=mx.test', '-keyout', key, '-out', crt], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
PEM = open(crt, 'rb').read() + open(key, 'rb').read()
OK235 = b'235 ok, go ahead (#2.0.0)\r\n'


def b64(x):
    return base64.b64encode(b(x)).decode()


def conf(srv, env=None, helper=True, control=None, files=None):
    c = {'me': 'mx.test', 'rcpthosts': 'example.test\n'}
    c.update(control or {})
    f = dict(files or {})
    if helper:
        f['bin/auth_smtp'] = (HELPER, 0o755)
    e = {'SMTPAUTH': '', 'FORCETLS': '0'}
    e.update(env or {})
    srv.configure(control=c, env=e, files=f)
    if os.path.exists(CALLS):
        os.unlink(CALLS)


def calls():
    try:
        with open(CALLS) as f:
            return [eval(l) for l in f]
    except FileNotFoundError:
        return []


def auth_line(ehlo):
    m = re.search(rb'250[- ](AUTH [^\r]*)\r\n', ehlo)
    return m.group(1) if m else None


@case
def test_plain_and_login(srv):
    conf(srv)
    with srv.session() as s:
        s.reply()
        eq(auth_line(s.cmd('EHLO c.test')), b'AUTH LOGIN PLAIN', 'EHLO')
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret')), OK235, 'PLAIN')
        queued(send_message(s, rcpts=('<u@elsewhere.test>',)))
    c = calls()
    check(len(c) == 1 and c[0][0] == srv.home, 'run in the qmail home: %r' % c)
    eq(c[0][1][0], b'plain', 'method')
    eq(base64.b64decode(c[0][1][1]), b'\0alice\0secret', 'plain blob')
    m = srv.messages()[0]['msg']
    check(re.match(rb'Received: from unknown \(HELO c\.test\) \(alice@example\.test@127\.0\.0\.1\)'
                   rb'\n  by mx\.example\.test with ESMTPA; ', m), 'Received %r' % m[:200])
    conf(srv)
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        eq(s.cmd('AUTH LOGIN'), b'334 VXNlcm5hbWU6\r\n', 'LOGIN user prompt')
        eq(s.cmd(b64('alice')), b'334 UGFzc3dvcmQ6\r\n', 'LOGIN password prompt')
        eq(s.cmd(b64('secret')), OK235, 'LOGIN')
    c = calls()
    eq(c[0][1][:3], [b'login', b64('alice').encode(), b64('secret').encode()], 'login fields')


@case
def test_refusals(srv):
    conf(srv, env={'AUTHDELAY': '0'})
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0wrong')), b'535 authentication failed (#5.7.1)\r\n',
           'D: refused')
        eq(s.cmd('AUTH PLAIN ' + b64('\0zed\0x')), b'501 authentication exchange failed (#5.5.4)\r\n',
           'Z: malformed')
        r = s.cmd('AUTH PLAIN ' + b64('\0crash\0x'))
        check(r.startswith(b'454 ') and b'4.3.0' in r, 'exit 111: 454, got %r' % r)
    check(b'secret' not in srv.log() and b'wrong' not in srv.log(), 'no password in the log')


@case
def test_hanging_helper(srv):
    """an auth_smtp that never answers is killed at AUTHTIMEOUT: 454"""
    import time
    conf(srv, env={'AUTHTIMEOUT': '1'})
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        t = time.time()
        r = s.cmd('AUTH PLAIN ' + b64('\0hang\0x'), timeout=10)
        took = time.time() - t
        check(r.startswith(b'454 '), 'reply %r' % r)
        check(0.9 <= took < 3, 'took %.1f s' % took)
        eq(s.cmd('NOOP'), b'250 ok\r\n', 'the session goes on')


@case
def test_authprepend(srv):
    conf(srv, env={'AUTHPREPEND': 'ldap/'})
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret')), OK235, 'PLAIN')
        queued(send_message(s, rcpts=('<u@elsewhere.test>',)))
    m = srv.messages()[0]['msg']
    check(b'(ldap/alice@example.test@127.0.0.1)' in m.split(b'\n')[0], 'Received %r' % m[:120])


@case
def test_no_helper(srv):
    conf(srv, helper=False)
    with srv.session() as s:
        s.reply()
        check(auth_line(s.cmd('EHLO c.test')) is None, 'AUTH not offered')
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret')), b'502 unimplemented (#5.5.1)\r\n', '502')
        eq(s.cmd('AUTH LOGIN'), b'502 unimplemented (#5.5.1)\r\n', '502 again')
        s.cmd('QUIT')
    lines = [l for l in srv.log_lines() if b'event=auth' in l and b'result=unavailable' in l]
    check(len(lines) == 1 and b'bin/auth_smtp' in lines[0], 'one log line saying why: %r' % lines)


@case
def test_cram_forms(srv):
    conf(srv, env={'SMTPAUTH': '+cram'})
    with srv.session() as s:
        s.reply()
        eq(auth_line(s.cmd('EHLO c.test')), b'AUTH LOGIN PLAIN', '+cram with auth_smtp')
        eq(s.cmd('AUTH CRAM-MD5'), b'504 auth type invalid (#5.5.1)\r\n', 'no CRAM-MD5')
    check(any(b'result=limited' in l for l in srv.log_lines()), 'logged: %r' % srv.log())
    conf(srv, env={'SMTPAUTH': '-cram'})
    with srv.session() as s:
        s.reply()
        eq(auth_line(s.cmd('EHLO c.test')), b'AUTH LOGIN PLAIN', '-cram')
    conf(srv, env={'SMTPAUTH': '!'})
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        eq(s.cmd('MAIL FROM:<a@x.test>'), b'530 Authorization required (#5.7.1)\r\n', '! required')


@case
def test_tlsrequired(srv):
    conf(srv, env={'SMTPAUTH': 'TLSREQUIRED'}, control={'servercert.pem': (PEM, 0o600)})
    with srv.session() as s:
        s.reply()
        r = s.cmd('EHLO c.test')
        check(b'STARTTLS' in r and auth_line(r) is None, 'no AUTH before TLS: %r' % r)
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret'))[:4], b'538 ', 'AUTH before TLS')
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with srv.smtplib() as c:
        c.ehlo('c.test')
        c.starttls(context=ctx)
        c.ehlo('c.test')
        check(c.has_extn('auth') and 'PLAIN' in c.esmtp_features['auth'].upper(),
              'AUTH inside TLS: %r' % c.esmtp_features)
        code, _ = c.login('alice', 'secret')
        eq(code, 235, 'login inside TLS')
    conf(srv, env={'SMTPAUTH': 'TLSREQUIRED', 'FORCETLS': '0'})
    with srv.session() as s:
        s.reply()
        check(auth_line(s.cmd('EHLO c.test')) is None, 'no TLS at all: AUTH never offered')


@case
def test_forceauthmailfrom(srv):
    conf(srv, env={'FORCEAUTHMAILFROM': '1'})
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        eq(s.cmd('MAIL FROM:<bob@x.test>'), b'250 ok\r\n', 'not authenticated: not checked')
        s.cmd('RSET')
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret')), OK235, 'PLAIN')
        eq(s.cmd('MAIL FROM:<bob@x.test>'), b'503 from and auth not the same (#5.5.1)\r\n',
           'another sender')
        eq(s.cmd('MAIL FROM:<Alice@Example.Test>'), b'250 ok\r\n', 'itself')


@case
def test_mail_auth_parameter(srv):
    conf(srv)
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        queued(send_message(s, mail='<a@x.test> AUTH=joe+2Bsales'))
    m = srv.messages()[0]['msg']
    check(b'(joe+sales@127.0.0.1)' in m.split(b'\n')[0], 'Received %r' % m[:120])
    conf(srv)
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        queued(send_message(s, mail='<a@x.test> AUTH=<>'))
        queued(send_message(s, mail='<a@x.test> AUTH=a(b)'))
    for msg in srv.stored(2):
        check(re.match(rb'Received: from unknown \(HELO c\.test\) \(127\.0\.0\.1\)', msg['msg']),
              'ignored: %r' % msg['msg'][:100])


try:
    run('authldap')
finally:
    shutil.rmtree(TMP, ignore_errors=True)
