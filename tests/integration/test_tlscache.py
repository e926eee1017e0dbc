#!/usr/bin/python3
"""Integration: the DER cache of the server certificate (tlscache.c) under the real
tcpserver, with throw-away ECDSA P-256 and RSA-2048 certificates made here by openssl.
ECDSA and RSA both work; the first STARTTLS writes control/servercert.der (private mode);
the next sessions take the certificate from it (shown with a cache forged for another
certificate but carrying the PEM's identity); a changed PEM makes it stale and it is
rewritten; an unsafe (world-readable, symbolic link) or corrupt cache is ignored; a chain
(leaf + intermediate) is served whole from the PEM and from the cache; mxguard-tlscache writes
the cache owned like the PEM and -n tells whether it is current."""
import os
import ssl
import stat
import struct
import subprocess
import sys
import tempfile
import time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

D = tempfile.mkdtemp(prefix='mxit-tlscache.')
EVP_PKEY_RSA, EVP_PKEY_EC = 6, 408


def openssl(*args, **kw):
    return subprocess.run(['openssl'] + list(args), check=True, cwd=D, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, **kw).stdout


def readf(n):
    with open(os.path.join(D, n), 'rb') as f:
        return f.read()


def make(name, kind, cn, ca=None):
    """a key and certificate (self-signed, or signed by ca); returns the PEM text
    (certificate, then key), the certificate's DER and the key's type-specific DER"""
    if kind == 'ec':
        openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', name + '.key')
    else:
        openssl('genrsa', '-out', name + '.key', '2048')
    if ca:
        openssl('req', '-new', '-key', name + '.key', '-subj', '/CN=' + cn, '-out', name + '.csr')
        openssl('x509', '-req', '-in', name + '.csr', '-CA', ca + '.crt', '-CAkey', ca + '.key',
                '-CAcreateserial', '-days', '2', '-out', name + '.crt')
    else:
        openssl('req', '-x509', '-new', '-key', name + '.key', '-subj', '/CN=' + cn, '-days', '2',
                '-out', name + '.crt')
    crt_der = openssl('x509', '-in', name + '.crt', '-outform', 'DER')
    key_der = openssl('ec' if kind == 'ec' else 'rsa', '-in', name + '.key', '-outform', 'DER',
                      *([] if kind == 'ec' else ['-traditional']))
    return readf(name + '.crt') + readf(name + '.key'), crt_der, key_der


EC_A = make('eca', 'ec', 'ec-a.test')
EC_B = make('ecb', 'ec', 'ec-b.test')
RSA_A = make('rsaa', 'rsa', 'rsa-a.test')
CA = make('ca', 'ec', 'Test CA')
LEAF = make('leaf', 'ec', 'leaf.test', ca='ca')


def cache_for(pem_path, kind, key_der, certs):
    """the cache file's bytes for these DER objects with the identity of pem_path"""
    st = os.stat(pem_path)
    head = b'mxguard-tls-der 1\n' + struct.pack(
        '<7Q', st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9,
        st.st_ctime_ns // 10**9, st.st_ctime_ns % 10**9)
    body = struct.pack('<II', EVP_PKEY_EC if kind == 'ec' else EVP_PKEY_RSA, len(certs))
    for obj in [key_der] + certs:
        body += struct.pack('<I', len(obj)) + obj
    return head + body


def served(srv):
    """one STARTTLS session; the server certificate's DER and the end of the session"""
    with srv.session() as s:
        s.reply()
        s.cmd('EHLO c.test')
        eq(s.cmd('STARTTLS'), b'220 ready for tls\r\n', 'STARTTLS')
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        s.sock = c.wrap_socket(s.sock)
        der = s.sock.getpeercert(binary_form=True)
        eq(s.cmd('EHLO c.test')[:4], b'250-', 'EHLO in TLS')
        eq(s.cmd('MAIL FROM:<a@x.test>'), b'250 ok\r\n', 'MAIL in TLS')
        eq(s.cmd('QUIT'), b'221 mx.test\r\n', 'QUIT')
    srv.wait_idle(3)
    return der


def paths(srv):
    return os.path.join(srv.control, 'servercert.pem'), os.path.join(srv.control, 'servercert.der')


@case
def test_ecdsa_and_cache_written(srv):
    srv.configure(control={'me': ME, 'servercert.pem': (EC_A[0], 0o600)})
    pem, der = paths(srv)
    eq(served(srv), EC_A[1], 'ECDSA P-256 certificate served from the PEM')
    check(os.path.isfile(der), 'control/servercert.der written at the first STARTTLS')
    mode = stat.S_IMODE(os.stat(der).st_mode)
    eq(mode, 0o600, 'cache mode for a 0600 PEM')
    eq(served(srv), EC_A[1], 'ECDSA certificate served again (from the cache)')
    check(not [n for n in os.listdir(srv.control) if '.tmp.' in n], 'no temporary file left')


@case
def test_cache_is_used_and_goes_stale(srv):
    srv.configure(control={'me': ME, 'servercert.pem': EC_A[0]})
    pem, der = paths(srv)
    # a cache with the PEM's identity but another certificate: it is what gets served
    with open(der, 'wb') as f:
        f.write(cache_for(pem, 'ec', EC_B[2], [EC_B[1]]))
    os.chmod(der, 0o600)
    eq(served(srv), EC_B[1], 'the cache is used while it carries the PEM identity')
    # the PEM changes (new mtime): the cache is stale, the PEM is used and the cache rewritten
    time.sleep(0.01)
    os.utime(pem)
    eq(served(srv), EC_A[1], 'a changed PEM makes the cache stale')
    with open(der, 'rb') as f:
        check(EC_A[1] in f.read(), 'the cache was rewritten from the PEM')
    eq(served(srv), EC_A[1], 'the rewritten cache serves the PEM certificate')


@case
def test_unsafe_or_corrupt_cache_ignored(srv):
    srv.configure(control={'me': ME, 'servercert.pem': (EC_A[0], 0o640)})
    pem, der = paths(srv)
    forged = cache_for(pem, 'ec', EC_B[2], [EC_B[1]])
    with open(der, 'wb') as f:
        f.write(forged)
    os.chmod(der, 0o644)
    eq(served(srv), EC_A[1], 'a cache more readable than the PEM is ignored')
    eq(stat.S_IMODE(os.stat(der).st_mode), 0o640, 'rewritten as readable as the PEM')
    with open(der, 'wb') as f:
        f.write(forged)
    os.chmod(der, 0o660)
    eq(served(srv), EC_A[1], 'a group-writable cache is ignored')
    os.unlink(der)
    alt = os.path.join(srv.dir, 'elsewhere.der')
    with open(alt, 'wb') as f:
        f.write(forged)
    os.chmod(alt, 0o600)
    os.symlink(alt, der)
    eq(served(srv), EC_A[1], 'a cache that is a symbolic link is ignored')
    with open(alt, 'rb') as f:
        eq(f.read(), forged, 'the link target is never written through')
    check(not os.path.islink(der), 'the link was replaced by a fresh cache (rename)')
    os.unlink(der)
    with open(der, 'wb') as f:
        f.write(forged[:-20])
    os.chmod(der, 0o600)
    eq(served(srv), EC_A[1], 'a truncated cache is ignored')
    with open(der, 'wb') as f:  # the key does not match the certificate
        f.write(cache_for(pem, 'ec', EC_B[2], [EC_A[1]]))
    os.chmod(der, 0o600)
    eq(served(srv), EC_A[1], 'a cache whose key does not match is ignored')


@case
def test_rsa(srv):
    srv.configure(control={'me': ME, 'servercert.pem': RSA_A[0]})
    pem, der = paths(srv)
    eq(served(srv), RSA_A[1], 'RSA certificate from the PEM')
    check(os.path.isfile(der), 'cache written for RSA')
    eq(stat.S_IMODE(os.stat(der).st_mode), 0o644, 'a world-readable PEM (0644) gives a 0644 cache')
    eq(served(srv), RSA_A[1], 'RSA certificate from the cache')


@case
def test_chain_served_whole(srv):
    srv.configure(control={'me': ME, 'servercert.pem': readf('leaf.crt') + readf('ca.crt') +
                           readf('leaf.key')})
    pem, der = paths(srv)
    for when in ('from the PEM', 'from the cache'):
        out = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % srv.port,
                              '-starttls', 'smtp', '-showcerts', '-ign_eof'],
                             input=b'QUIT\r\n', stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=20).stdout
        eq(out.count(b'-----BEGIN CERTIFICATE-----'), 2, 'leaf and intermediate ' + when)
        check(b'CN = leaf.test' in out, 'leaf certificate ' + when)
        srv.wait_idle(3)
        check(os.path.isfile(der), 'cache present after the session ' + when)


@case
def test_tool_writes_cache_owned_like_the_pem(srv):
    srv.configure(control={'me': ME, 'servercert.pem': (EC_A[0], 0o640)})
    pem, der = paths(srv)
    tool = os.path.join(MXG_BIN, 'mxguard-tlscache')
    env = dict(os.environ, QMAILHOME=srv.home)  # keeps make check's ASAN_OPTIONS
    r = subprocess.run([tool, '-n'], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    eq(r.returncode, 1, '-n without a cache: %r' % r.stdout)
    if os.geteuid() == 0:
        os.chown(pem, 65534, 65534)   # nobody: the cache must follow the PEM's owner
    r = subprocess.run([tool], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    eq(r.returncode, 0, 'mxguard-tlscache: %r' % r.stdout)
    st = os.stat(der)
    eq(stat.S_IMODE(st.st_mode), 0o640, 'mode follows a group-readable PEM')
    if os.geteuid() == 0:
        eq((st.st_uid, st.st_gid), (65534, 65534), 'owner and group of the PEM')
    r = subprocess.run([tool, '-n'], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    eq(r.returncode, 0, '-n with a current cache: %r' % r.stdout)
    eq(served(srv), EC_A[1], 'the session uses the cache the tool wrote')
    time.sleep(0.01)
    os.utime(pem)
    r = subprocess.run([tool, '-n'], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    eq(r.returncode, 1, '-n after the PEM changed: %r' % r.stdout)
    r = subprocess.run([tool], env=dict(env, QMAILHOME=os.path.join(srv.dir, 'nowhere')),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    eq(r.returncode, 111, 'no qmail home: %r' % r.stdout)


if __name__ == '__main__':
    sys.exit(run('tlscache'))
