#!/usr/bin/python3
"""Integration: the OpenSSL that STARTTLS loads (ossl.c, ossl_prov.c) under the real tcpserver,
with throw-away RSA-2048 and ECDSA P-256 certificates made here by openssl. With
mxguard-ossl.so beside the binary the session maps it and neither libssl.so.3 nor
libcrypto.so.3; a copy of the binary without it falls back to libssl.so.3 and works the same,
and so does one whose mxguard-ossl.so was built against another system OpenSSL (an update
since) - with a log line.
The narrowed provider loses nothing TLS can use: for every TLS 1.2 suite with RSA
authentication and every TLS 1.3 suite, a handshake succeeds with mxguard-ossl.so exactly
when it succeeds with libssl.so.3 (each suite alone on the client, the server allowing all),
and a client certificate still verifies through control/clientca.pem."""
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
import mxtest  # noqa: E402
from mxtest import *  # noqa: F401,F403,E402

D = tempfile.mkdtemp(prefix='mxit-tlsown.')


def openssl(*args):
    subprocess.run(['openssl'] + list(args), check=True, cwd=D, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def readf(n):
    with open(os.path.join(D, n), 'rb') as f:
        return f.read()


openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=mx.test',
        '-keyout', 'rsa.key', '-out', 'rsa.crt')
openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-days', '2', '-subj', '/CN=mx.test', '-keyout', 'ec.key', '-out', 'ec.crt')
openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-days', '2', '-subj', '/CN=Test CA', '-keyout', 'ca.key', '-out', 'ca.crt')
openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=client/emailAddress=client@example.test',
        '-keyout', 'cl.key', '-out', 'cl.csr')
openssl('x509', '-req', '-in', 'cl.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
        '-days', '2', '-out', 'cl.crt')
RSA = readf('rsa.crt') + readf('rsa.key')
EC = readf('ec.crt') + readf('ec.key')
OWN = os.path.join(MXG_BIN, 'mxguard-ossl.so')
TLS13 = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256',
         'TLS_AES_128_CCM_SHA256', 'TLS_AES_128_CCM_8_SHA256']


class Binary:
    """the session runs a copy of mxguard-smtpd in a directory of its own (dir, else a new
    one without mxguard-ossl.so; built: one made there) instead of the build's; restored on
    exit"""
    def __init__(self, srv, dir=None, built=False):
        self.srv = srv
        self.dir = dir
        self.built = built

    def __enter__(self):
        self.dir = self.dir or tempfile.mkdtemp(prefix='bin.', dir=self.srv.dir)
        copy = os.path.join(self.dir, 'mxguard-smtpd')
        if not self.built:
            shutil.copy2(mxtest.SMTPD, copy)
        with open(self.srv.runscript) as f:
            self.script = f.read()
        with open(self.srv.runscript, 'w') as f:
            f.write(self.script.replace(mxtest.SMTPD, copy))
        return self

    def __exit__(self, *a):
        self.srv.wait_idle(5)
        with open(self.srv.runscript, 'w') as f:
            f.write(self.script)


def ctx(**kw):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    for k, v in kw.items():
        if k == 'ciphers':
            c.set_ciphers(v)
        else:
            setattr(c, k, v)
    return c


def session_maps(srv, **kw):
    """one STARTTLS session with a whole message; the smtpd's /proc maps while in TLS"""
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        eq(s.cmd('STARTTLS'), b'220 ready for tls\r\n', 'STARTTLS')
        s.sock = ctx(**kw).wrap_socket(s.sock)
        eq(s.cmd('EHLO c.test')[:4], b'250-', 'EHLO in TLS')
        pids = [p for p, st in srv.sessions() if st is None]
        check(len(pids) == 1, 'one running session: %r' % srv.sessions())
        with open('/proc/%d/maps' % pids[0]) as f:
            maps = f.read()
        queued(send_message(s, rcpts=('<u@example.test>',)))
        eq(s.cmd('QUIT'), b'221 mx.test\r\n', 'QUIT')
    srv.wait_idle(3)
    return maps


def handshake_ok(srv, **kw):
    """STARTTLS with this client context: the cipher negotiated, or None"""
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        eq(s.cmd('STARTTLS'), b'220 ready for tls\r\n', 'STARTTLS')
        try:
            s.sock = ctx(**kw).wrap_socket(s.sock)
        except (ssl.SSLError, OSError):
            return None
        name = s.sock.cipher()[0]
        eq(s.cmd('QUIT'), b'221 mx.test\r\n', 'QUIT in TLS')
    return name


def tls13_ok(srv, suite):
    """openssl s_client offering only this TLS 1.3 suite: the suite negotiated, or None"""
    p = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % srv.port, '-starttls',
                        'smtp', '-tls1_3', '-ciphersuites', suite, '-ign_eof', '-brief'],
                       input=b'QUIT\r\n', stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=20)
    for line in p.stdout.decode('latin-1').splitlines():
        if line.startswith('Ciphersuite:'):
            return line.split(':', 1)[1].strip()
    return None


def outcomes(srv):
    """{suite: negotiated or None} for every TLS 1.2 RSA suite and every TLS 1.3 suite"""
    names = subprocess.run(['openssl', 'ciphers', '-tls1_2', '-s', 'ALL:!aNULL:!PSK:!SRP:!aECDSA:!aDSS'],
                           check=True, stdout=subprocess.PIPE).stdout.decode().strip().split(':')
    got = {}
    srv.configure(control={'me': ME, 'servercert.pem': RSA}, env={'TLSCIPHERS': 'ALL'})
    for n in names:
        if not n.startswith('TLS_'):
            got[n] = handshake_ok(srv, ciphers=n, maximum_version=ssl.TLSVersion.TLSv1_2)
    srv.configure(control={'me': ME, 'servercert.pem': RSA}, env={'TLSCIPHERS': ':'.join(TLS13)})
    for n in TLS13:
        got[n] = tls13_ok(srv, n)
    srv.wait_idle(5)
    return got


@case
def test_own_object_mapped(srv):
    check(os.path.isfile(OWN), '%s is built' % OWN)
    for pem in (RSA, EC):
        srv.configure(control={'me': ME, 'servercert.pem': pem, 'rcpthosts': 'example.test\n'})
        maps = session_maps(srv)
        check('/mxguard-ossl.so' in maps, 'mxguard-ossl.so mapped in a TLS session')
        check('libssl.so' not in maps and 'libcrypto.so' not in maps,
              'neither libssl.so.3 nor libcrypto.so.3 mapped')


@case
def test_fallback_libssl(srv):
    for pem in (RSA, EC):
        srv.configure(control={'me': ME, 'servercert.pem': pem, 'rcpthosts': 'example.test\n'})
        with Binary(srv):
            maps = session_maps(srv)
        check('libssl.so.3' in maps and 'mxguard-ossl.so' not in maps,
              'without mxguard-ossl.so beside the binary: libssl.so.3')


@case
def test_stale_own_object(srv):
    """an mxguard-ossl.so built against another system OpenSSL than the installed one is not
    used: the session takes libssl.so.3 (the update) and says so in the log"""
    d = tempfile.mkdtemp(prefix='stale.', dir=srv.dir)
    fake = os.path.join(d, 'libcrypto.so.3')
    with open(fake, 'wb') as f:
        f.write(b'the system OpenSSL at build time\n')
    # the plain build's objects (their mtimes kept): only ossl.o, which holds the identity of
    # the system OpenSSL, is compiled again
    for n in os.listdir(MXG_SRC):
        if n.endswith('.o'):
            shutil.copy2(os.path.join(MXG_SRC, n), d)
    r = subprocess.run(['make', '-s', '-f', os.path.join(MXG_SRC, 'Makefile'), 'SRC=' + MXG_SRC,
                        'OSSL_SYSLIBS=' + fake, 'mxguard-smtpd', 'mxguard-ossl.so'], cwd=d,
                       capture_output=True, timeout=300)
    eq(r.returncode, 0, 'make recording %s (%r)' % (fake, r.stderr[-300:]))
    srv.configure(control={'me': ME, 'servercert.pem': EC, 'rcpthosts': 'example.test\n'})
    with Binary(srv, d, built=True):
        maps = session_maps(srv)
        check(os.path.join(d, 'mxguard-ossl.so') in maps, 'current: its own object is used')
        check(b'result=fallback' not in srv.log(), 'no fallback line while current')
        with open(fake, 'ab') as f:
            f.write(b'updated\n')
        maps = session_maps(srv)
        check('libssl.so.3' in maps and 'mxguard-ossl.so' not in maps,
              'stale: the system libssl.so.3 is used')
        match(rb'.*\bevent=tls result=fallback reason=stale_mxguard-ossl\.so lib=libssl\.so\.3\n.*', srv.log(),
              'log line for the stale object')


@case
def test_every_suite_as_with_libssl(srv):
    own = outcomes(srv)
    with Binary(srv):
        ref = outcomes(srv)
    diff = {n: (own[n], ref[n]) for n in ref if own.get(n) != ref[n]}
    check(not diff, 'suites that differ (mxguard-ossl.so, libssl.so.3): %r' % diff)
    ok = {n for n, v in own.items() if v}
    for want in ('ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-CHACHA20-POLY1305', 'AES128-CCM',
                 'ECDHE-RSA-CAMELLIA256-SHA384', 'ECDHE-ARIA256-GCM-SHA384', 'AES256-SHA',
                 'ECDHE-RSA-AES256-SHA384') + tuple(TLS13):
        check(want in ok, '%s negotiated (of %d suites, %d worked)' % (want, len(own), len(ok)))


@case
def test_client_certificate_verifies(srv):
    srv.configure(control={'me': ME, 'servercert.pem': EC, 'clientca.pem': readf('ca.crt'),
                           'tlsclients': 'client@example.test\n', 'rcpthosts': 'example.test\n'})
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        eq(s.cmd('STARTTLS'), b'220 ready for tls\r\n', 'STARTTLS')
        c = ctx()
        c.load_cert_chain(os.path.join(D, 'cl.crt'), os.path.join(D, 'cl.key'))
        s.sock = c.wrap_socket(s.sock)
        s.cmd('EHLO c.test')
        eq(s.cmd('MAIL FROM:<a@x.test>'), b'250 ok\r\n', 'MAIL')
        eq(s.cmd('RCPT TO:<someone@elsewhere.test>')[:3], b'250', 'relay for a verified client certificate')
        eq(s.cmd('QUIT'), b'221 mx.test\r\n', 'QUIT')


if __name__ == '__main__':
    try:
        sys.exit(run('tlsown'))
    finally:
        shutil.rmtree(D, ignore_errors=True)
