#!/usr/bin/python3
"""Integration: SMTP AUTH (auth.c) under the real tcpserver, checked by tests/checkpw over the
checkpassword protocol on fd 3. Both argv forms and SMTPAUTH modes, PLAIN/LOGIN/CRAM-MD5 with
smtplib, swaks and a raw client, relaying and the qmail-queue environment after AUTH, the
Received protocol, every refusal (501/503/504/535/538/454/530), the failure delay and limit,
a hanging checkpassword killed at AUTHTIMEOUT, FORCETLS, STARTTLS forgetting AUTH, and no
secret in the log even at LOGLEVEL=4."""
import base64
import hmac
import os
import re
import shlex
import socket
import ssl
import subprocess
import sys
import tempfile
import time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

TMP = tempfile.mkdtemp(prefix='mxit-auth.')
CHECKPW = os.path.join(MXG_SRC, 'tests', 'checkpw')
DB = os.path.join(TMP, 'passwords')
CPWLOG = os.path.join(TMP, 'checkpw.log')
QQWRAP = os.path.join(TMP, 'qq')
with open(DB, 'w') as f:
    f.write('alice:secret\nbob:pa ss\n')
with open(QQWRAP, 'w') as f:
    f.write('#!/bin/sh\nenv | grep -E "^(RELAYCLIENT|TCPREMOTEINFO|SMTPAUTHUSER|SMTP_AUTH_USER|'
            'SMTPAUTHMETHOD)=" | sort >"$QQ_DIR/qqenv"\nexec %s\n' % shlex.quote(RECORDER))
os.chmod(QQWRAP, 0o755)
key, crt = os.path.join(TMP, 'k'), os.path.join(TMP, 'c')
subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                '-subj', '/CN=mx.test', '-keyout', key, '-out', crt], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
PEM = open(crt, 'rb').read() + open(key, 'rb').read()

OK235 = b'235 ok, go ahead (#2.0.0)\r\n'
BAD535 = b'535 authentication failed (#5.7.1)\r\n'
MALFORMED = b'501 malformed auth input (#5.5.4)\r\n'
EHLO_HOST = (b'250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH LOGIN PLAIN CRAM-MD5\r\n'
             b'250 AUTH=LOGIN PLAIN CRAM-MD5\r\n')


def b64(x):
    return base64.b64encode(b(x))


def conf(srv, form='host', control=None, env=None):
    """AUTH configured by argv: 'host' = "mx.test checkpw /bin/true", 'hoffmann' =
    "checkpw /bin/true" (a '/' in argv[1]), None = no argv"""
    e = {'CHECKPW_DB': DB, 'CHECKPW_LOG': CPWLOG, 'AUTHDELAY': '0', 'QMAILQUEUE': QQWRAP}
    e.update(env or {})
    argv = {'host': [SMTPD, 'mx.test', CHECKPW, '/bin/true'],
            'hoffmann': [SMTPD, CHECKPW, '/bin/true'], None: [SMTPD]}[form]
    ctl = {'me': ME, 'rcpthosts': 'example.test\n'}
    ctl.update(control or {})
    srv.configure(control=ctl, env=e, shell=['exec ' + ' '.join(shlex.quote(a) for a in argv)])
    open(CPWLOG, 'w').close()


def qqenv(srv):
    srv.stored(1)
    with open(os.path.join(srv.qq, 'qqenv'), 'rb') as f:
        return f.read()


def ehlo_has_auth(r):
    return b'AUTH' in r


def tls_wrap(s):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    eq(s.cmd('STARTTLS'), b'220 ready for tls\r\n', 'STARTTLS')
    s.sock = c.wrap_socket(s.sock)


@case
def test_no_argv_502(srv):
    conf(srv, None)
    with srv.session() as s:
        s.reply()
        check(not ehlo_has_auth(s.cmd('EHLO c.test')), 'AUTH advertised without argv')
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()), b'502 unimplemented (#5.5.1)\r\n',
           'AUTH without argv')


@case
def test_hostname_form(srv):
    conf(srv)
    with srv.session() as s:
        s.reply()
        eq(s.cmd('EHLO c.test'), EHLO_HOST, 'EHLO, hostname form')


@case
def test_hoffmann_modes(srv):
    for value, line in ((None, None), ('-', None), ('0', None), ('', b'250 AUTH LOGIN PLAIN\r\n'),
                        ('+cram', b'250 AUTH LOGIN PLAIN CRAM-MD5\r\n'),
                        ('cram', b'250 AUTH CRAM-MD5\r\n')):
        conf(srv, 'hoffmann', env={'SMTPAUTH': value})
        with srv.session() as s:
            s.reply()
            r = s.cmd('EHLO c.test')
            if line is None:
                check(not ehlo_has_auth(r), 'SMTPAUTH=%r: AUTH advertised' % value)
                eq(s.cmd('AUTH LOGIN'), b'503 auth not available (#5.3.3)\r\n',
                   'SMTPAUTH=%r' % value)
            else:
                check(r.endswith(b'250-8BITMIME\r\n' + line), 'SMTPAUTH=%r: EHLO %r' % (value, r))
    conf(srv, 'hoffmann', env={'SMTPAUTH': 'cram'})
    with srv.session() as s:
        s.reply()
        eq(s.cmd('AUTH PLAIN'), b'504 auth type invalid (#5.5.1)\r\n', 'PLAIN not enabled')


@case
def test_plain_relay_and_env(srv):
    conf(srv)
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        eq(s.cmd('MAIL FROM:<a@x.test>'), b'250 ok\r\n', 'MAIL')
        eq(s.cmd('RCPT TO:<u@elsewhere.test>'),
           b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n",
           'relaying before AUTH')
        s.cmd('RSET')
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()), OK235, 'AUTH PLAIN')
        queued(send_message(s, rcpts=('<u@elsewhere.test>',)))
    env = qqenv(srv)
    eq(env, b'RELAYCLIENT=\nSMTPAUTHMETHOD=plain\nSMTPAUTHUSER=alice\nSMTP_AUTH_USER=alice\n'
       b'TCPREMOTEINFO=alice\n', 'qmail-queue environment')
    m = srv.messages()[0]['msg']
    check(re.match(rb'Received: from unknown \(HELO c\.test\) \(alice@127\.0\.0\.1\)\n  by '
                   rb'mx\.example\.test with ESMTPA; ', m), 'Received %r' % m[:200])
    a = events(srv.log_lines(), 'auth')
    check(a and a[0].get('result') == b'ok' and a[0].get('user') == b'alice' and
          a[0].get('method') == b'plain', 'auth log line %r' % a)
    srv.wait_idle(3)
    e = [x for x in events(srv.log_lines(), 'end') if x.get('auth')]
    check(e and e[-1].get('auth') == b'alice', 'summary line names the AUTH user: %r' % e)


@case
def test_exchanges_raw(srv):
    conf(srv)
    with srv.session() as s:
        s.reply()
        eq(s.cmd('AUTH PLAIN'), b'334 \r\n', 'PLAIN prompt')
        eq(s.cmd(b64('\0alice\0secret')), OK235, 'PLAIN after prompt')
    with srv.session() as s:
        s.reply()
        eq(s.cmd('AUTH LOGIN'), b'334 VXNlcm5hbWU6\r\n', 'LOGIN user prompt')
        eq(s.cmd(b64('bob')), b'334 UGFzc3dvcmQ6\r\n', 'LOGIN password prompt')
        eq(s.cmd(b64('pa ss')), OK235, 'LOGIN')
    with srv.session() as s:
        s.reply()
        eq(s.cmd('AUTH login ' + b64('alice').decode()), b'334 UGFzc3dvcmQ6\r\n', 'LOGIN initial')
        eq(s.cmd(b64('secret')), OK235, 'LOGIN with initial user')
    with srv.session() as s:
        s.reply()
        r = s.cmd('AUTH CRAM-MD5')
        m = match(rb'334 (\S+)\r\n', r, 'CRAM-MD5 challenge')
        chal = base64.b64decode(m.group(1))
        check(re.fullmatch(rb'<\d+\.\d+@mx\.test>', chal), 'challenge %r' % chal)
        dg = hmac.new(b'secret', chal, 'md5').hexdigest()
        eq(s.cmd(b64('alice ' + dg)), OK235, 'CRAM-MD5')
    with open(CPWLOG) as f:
        eq(f.read().split(), ['user=alice', 'challenge=no', 'user=bob', 'challenge=no',
                              'user=alice', 'challenge=no', 'user=alice', 'challenge=yes'],
           'what checkpw saw')


@case
def test_clients(srv):
    conf(srv)
    import smtplib
    for mech in ('PLAIN', 'LOGIN', 'CRAM-MD5'):
        c = srv.smtplib()
        c.ehlo('c.test')
        c.user, c.password = 'alice', 'secret'
        fn = {'PLAIN': c.auth_plain, 'LOGIN': c.auth_login, 'CRAM-MD5': c.auth_cram_md5}[mech]
        code, _ = c.auth(mech, fn, initial_response_ok=(mech == 'PLAIN'))
        eq(code, 235, 'smtplib %s' % mech)
        c.quit()
        rc, out = srv.swaks('--auth', mech, '--auth-user', 'alice', '--auth-password', 'secret',
                            '--quit-after', 'AUTH')
        check(rc == 0 and b'235 ok, go ahead' in out, 'swaks %s: %r' % (mech, out[-300:]))
    c = srv.smtplib()
    try:
        c.login('alice', 'wrong')
        check(False, 'smtplib login with a wrong password succeeded')
    except smtplib.SMTPAuthenticationError as e:
        eq(e.smtp_code, 535, 'wrong password')
    c.close()


@case
def test_malformed(srv):
    conf(srv)
    cases = [('AUTH PLAIN !!!!', MALFORMED), ('AUTH PLAIN =', MALFORMED),
             ('AUTH PLAIN ' + b64('\0\0secret').decode(), MALFORMED),
             ('AUTH PLAIN ' + b64('\0alice\0').decode(), MALFORMED),
             ('AUTH PLAIN ' + b64('\0al\r\nice\0secret').decode(), MALFORMED),
             ('AUTH PLAIN ' + b64('\0alice\0sec\nret').decode(), MALFORMED),
             ('AUTH LOGIN ' + b64('al\x01ice').decode(), None),
             ('AUTH GSSAPI', b'504 auth type invalid (#5.5.1)\r\n')]
    with srv.session() as s:
        s.reply()
        for line, want in cases:
            r = s.cmd(line)
            if want is None:  # LOGIN: the control byte is only refused with the password
                eq(r, b'334 UGFzc3dvcmQ6\r\n', line)
                eq(s.cmd(b64('secret')), MALFORMED, 'control byte in the user')
            else:
                eq(r, want, line)
        eq(s.cmd('AUTH LOGIN'), b'334 VXNlcm5hbWU6\r\n', 'LOGIN')
        eq(s.cmd('*'), b'501 auth exchange canceled (#5.0.0)\r\n', '* aborts')
        eq(s.cmd('AUTH LOGIN'), b'334 VXNlcm5hbWU6\r\n', 'LOGIN')
        eq(s.cmd(''), MALFORMED, 'empty line')
        eq(s.cmd('AUTH LOGIN'), b'334 VXNlcm5hbWU6\r\n', 'LOGIN')
        eq(s.cmd('x' * 13000), MALFORMED, 'line over 12288 bytes')
        eq(s.cmd('NOOP'), b'250 ok\r\n', 'session goes on')
    with open(CPWLOG) as f:
        eq(f.read(), '', 'checkpw was run for malformed input')


@case
def test_wrong_password_delay(srv):
    conf(srv, env={'AUTHDELAY': '1'})
    with srv.session() as s:
        s.reply()
        t0 = time.time()
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0wrong').decode()), BAD535, 'wrong password')
        dt = time.time() - t0
        check(dt >= 1.0, '535 after %.2f s, AUTHDELAY=1' % dt)
        eq(s.cmd('AUTH PLAIN ' + b64('\0nobody\0secret').decode()), BAD535, 'unknown user')
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()), OK235, 'then good')


@case
def test_too_many_failures(srv):
    conf(srv, env={'AUTHFAILMAX': '2'})
    srv.allowed_status = {256}
    with srv.session() as s:
        s.reply()
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0x').decode()), BAD535, 'first failure')
        s.send('AUTH PLAIN ' + b64('\0alice\0y').decode() + '\r\n')
        s.closed_after(BAD535, 5, 'second failure closes')


@case
def test_hanging_checkpassword(srv):
    conf(srv, env={'AUTHTIMEOUT': '1'})
    with srv.session() as s:
        s.reply()
        t0 = time.time()
        eq(s.cmd('AUTH PLAIN ' + b64('\0hang\0x').decode(), timeout=10),
           b"454 oops, problem with child and I can't auth (#4.3.0)\r\n", 'hanging checkpassword')
        dt = time.time() - t0
        check(0.9 <= dt < 3, '454 after %.2f s, AUTHTIMEOUT=1' % dt)
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()), OK235, 'then good')


@case
def test_eof_and_timeout_mid_auth(srv):
    conf(srv, control={'timeoutsmtpd': '1\n'})
    srv.allowed_status = {256}
    with srv.session() as s:
        s.reply()
        eq(s.cmd('AUTH LOGIN'), b'334 VXNlcm5hbWU6\r\n', 'LOGIN')
        s.shutdown_write()
        s.closed_after(b'', 3, 'EOF inside the exchange: no reply')
    with srv.session() as s:
        s.reply()
        eq(s.cmd('AUTH LOGIN'), b'334 VXNlcm5hbWU6\r\n', 'LOGIN')
        t0 = time.time()
        s.closed_after(b'451 timeout (#4.4.2)\r\n', 4, 'silent client inside the exchange')
        check(time.time() - t0 < 3, 'timeout took %.1f s' % (time.time() - t0))


@case
def test_authrequired(srv):
    for form, env in (('host', {'AUTHREQUIRED': '1'}), ('hoffmann', {'SMTPAUTH': '!'})):
        conf(srv, form, env=env)
        with srv.session() as s:
            s.reply()
            eq(s.cmd('MAIL FROM:<a@x.test>'), b'530 Authorization required (#5.7.1)\r\n',
               'MAIL before AUTH (%r)' % env)
            eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()), OK235, 'AUTH')
            eq(s.cmd('MAIL FROM:<a@x.test>'), b'250 ok\r\n', 'MAIL after AUTH')


@case
def test_order(srv):
    conf(srv)
    with srv.session() as s:
        s.reply()
        eq(s.cmd('MAIL FROM:<a@x.test>'), b'250 ok\r\n', 'MAIL')
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()),
           b'503 no auth during mail transaction (#5.5.0)\r\n', 'AUTH after MAIL')
        s.cmd('RSET')
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()), OK235, 'AUTH')
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()),
           b"503 you're already authenticated (#5.5.0)\r\n", 'second AUTH')
        check(not ehlo_has_auth(s.cmd('EHLO c.test')), 'AUTH advertised after AUTH')


@case
def test_forcetls(srv):
    conf(srv, control={'servercert.pem': PEM})
    with srv.session() as s:
        s.reply()
        r = s.cmd('EHLO c.test')
        check(b'STARTTLS' in r and not ehlo_has_auth(r), 'EHLO before TLS %r' % r)
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()),
           b'538 auth not available without TLS (#5.3.3)\r\n', 'plaintext AUTH')
        tls_wrap(s)
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()), b'503 EHLO first (#5.5.1)\r\n',
           'AUTH right after STARTTLS')
        r = s.cmd('EHLO c.test')
        check(b'STARTTLS' not in r and b'250-AUTH LOGIN PLAIN CRAM-MD5' in r, 'EHLO in TLS %r' % r)
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()), OK235, 'AUTH inside TLS')
        queued(send_message(s, rcpts=('<u@elsewhere.test>',)))
    m = srv.stored(1)[0]['msg']
    check(re.search(rb'\(alice@127\.0\.0\.1\)\n  by mx\.example\.test with ESMTPSA '
                    rb'\([A-Z0-9_-]+ encrypted, authenticated\); ', m), 'Received %r' % m[:200])
    rc, out = srv.swaks('--tls', '--auth', 'LOGIN', '--auth-user', 'alice', '--auth-password',
                        'secret', '--from', 'a@x.test', '--to', 'u@elsewhere.test')
    check(rc == 0, 'swaks --tls --auth: %r' % out[-400:])
    import smtplib
    c = srv.smtplib()
    c.starttls(context=ssl._create_unverified_context())
    c.login('alice', 'secret')
    c.sendmail('a@x.test', ['u@elsewhere.test'], b'Subject: s\r\n\r\nsmtplib\r\n')
    c.quit()
    srv.stored(3)


@case
def test_forcetls_off(srv):
    conf(srv, control={'servercert.pem': PEM}, env={'FORCETLS': '0'})
    with srv.session() as s:
        s.reply()
        r = s.cmd('EHLO c.test')
        check(b'STARTTLS' in r and ehlo_has_auth(r), 'EHLO with FORCETLS=0: %r' % r)
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()), OK235, 'plaintext AUTH')
        tls_wrap(s)  # STARTTLS forgets the AUTH (RFC 3207 4.2)
        s.cmd('EHLO c.test')
        eq(s.cmd('MAIL FROM:<a@x.test>'), b'250 ok\r\n', 'MAIL')
        eq(s.cmd('RCPT TO:<u@elsewhere.test>'),
           b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n",
           'relay right forgotten after STARTTLS')
        s.cmd('RSET')
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()), OK235, 'AUTH again in TLS')


@case
def test_smtps_auth(srv):
    conf(srv, control={'servercert.pem': PEM}, env={'SMTPS': '1'})
    rc, out = srv.swaks('--tls-on-connect', '--auth', 'CRAM-MD5', '--auth-user', 'alice',
                        '--auth-password', 'secret', '--from', 'a@x.test', '--to', 'u@elsewhere.test')
    check(rc == 0, 'swaks --tlsc --auth: %r' % out[-400:])
    import smtplib
    c = smtplib.SMTP_SSL('127.0.0.1', srv.port, timeout=10, context=ssl._create_unverified_context())
    c.login('alice', 'secret')
    c.sendmail('a@x.test', ['u@elsewhere.test'], b'Subject: s\r\n\r\nsmtps\r\n')
    c.quit()
    srv.stored(2)


@case
def test_no_secrets_in_log(srv):
    conf(srv, env={'LOGLEVEL': '4'})
    secrets = [b'secret', b'wrong']
    with srv.session() as s:
        s.reply()
        for pw in ('wrong', 'secret'):
            line = 'AUTH PLAIN ' + b64('\0alice\0' + pw).decode()
            secrets.append(line[11:].encode())
            s.cmd(line)
            s.cmd('RSET')
        s.cmd('AUTH LOGIN')
        s.cmd(b64('alice'))
    log = srv.log()
    for x in secrets + [b64('secret')]:
        check(x not in log, '%r in the log' % x)
    check(b'verb=AUTH arg=PLAIN' in log, 'AUTH command logged without its response: %r' % log)


@case
def test_checkpassword_killed_by_signal(srv):
    # proc.c's wait: a checkpassword killed by a signal is a 454, never a permit or a 535
    kcpw = os.path.join(TMP, 'checkpw-killed')
    with open(kcpw, 'w') as f:
        f.write('#!/bin/sh\ncat <&3 >/dev/null\nkill -KILL $$\nexit 0\n')
    os.chmod(kcpw, 0o755)
    e = {'CHECKPW_DB': DB, 'AUTHDELAY': '0', 'QMAILQUEUE': QQWRAP}
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'}, env=e,
                  shell=['exec %s mx.test %s /bin/true'
                         % (shlex.quote(SMTPD), shlex.quote(kcpw))])
    with srv.session() as s:
        s.reply()
        t0 = time.time()
        eq(s.cmd('AUTH PLAIN ' + b64('\0alice\0secret').decode()),
           b"454 oops, problem with child and I can't auth (#4.3.0)\r\n", 'killed checkpassword')
        check(time.time() - t0 < 2, '454 after %.2f s' % (time.time() - t0))
        eq(s.cmd('MAIL FROM:<a@x.test>'), b'250 ok\r\n', 'session goes on, not authenticated')
        eq(s.cmd('RCPT TO:<u@elsewhere.test>'), b'553 sorry, that domain isn\'t in my list of '
           b'allowed rcpthosts (#5.7.1)\r\n', 'no relaying')


if __name__ == '__main__':
    try:
        sys.exit(run('auth'))
    finally:
        import shutil
        shutil.rmtree(TMP, ignore_errors=True)
