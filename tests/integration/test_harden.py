#!/usr/bin/python3
"""Integration: faults found by attacking mxguard (issue 12): log lines stay whole under
concurrency, damaged cdb files answer 451, RHSBL with TCPREMOTEHOST, non-regular certificate
files, TLS under an address-space limit, descriptors a child inherits."""
import os
import socket
import subprocess
import sys
import tempfile
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


# -- damaged cdb files (item 5)

def cdb_bytes(records):
    """a cdb built by the real cdb tool from [(key, value)]"""
    d = tempfile.mkdtemp(prefix='mxit-cdb.')
    try:
        src, out = os.path.join(d, 'in'), os.path.join(d, 'out.cdb')
        with open(src, 'wb') as f:
            f.write(b''.join(b'+%d,%d:%s->%s\n' % (len(k), len(v), k, v) for k, v in records) + b'\n')
        subprocess.run(['cdb', '-c', '-t', out + '.tmp', out, src], check=True)
        return open(out, 'rb').read()
    finally:
        subprocess.run(['rm', '-rf', d])


VPASSWD = cdb_bytes([(b'alice', b'x:1:0:A:/d/a:NOQUOTA'), (b'bob', b'x:1:0:B:/d/b:NOQUOTA')])
ZEROS = b'\0' * 4096


def vpop_site(srv, vpasswd=VPASSWD, users=None, extra=None):
    home = srv.home
    if users is None:
        users = cdb_bytes([(b'!vpop.example-', b'vpop.example\x0089\x0089\x00%s/vp\x00-\x00' %
                            home.encode()), (b'', b'-')])
    files = {'users/cdb': users, 'vp/.qmail-default':
             "| /home/vpopmail/bin/vdelivermail '' bounce-no-mailbox\n", 'vp/vpasswd.cdb': vpasswd}
    files.update(extra or {})
    srv.configure(control={'me': ME, 'rcpthosts': 'vpop.example\n',
                           'virtualdomains': 'vpop.example:vpop.example\n'}, files=files)


def rcpt_replies(srv, rcpts):
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<a@x.test>', OK)
        return [s.cmd('RCPT TO:<%s>' % r) for r in rcpts]


def detail_of_451(srv):
    errs = [dict(log_fields(l)) for l in srv.log_lines() if b' event=error ' in l]
    return [e.get('detail', b'') for e in errs]


@case
def test_cdb_sound_vpasswd_answers(srv):
    vpop_site(srv)
    r = rcpt_replies(srv, ['alice@vpop.example', 'nosuch@vpop.example'])
    eq([x[:3] for x in r], [b'250', b'550'], 'replies with a sound vpasswd.cdb')


@case
def test_cdb_zero_filled_vpasswd_is_451(srv):
    vpop_site(srv, vpasswd=ZEROS)
    r = rcpt_replies(srv, ['alice@vpop.example', 'nosuch@vpop.example'])
    eq([x[:3] for x in r], [b'451', b'451'], 'replies with a zero-filled vpasswd.cdb')
    d = detail_of_451(srv)
    check(d and all(x.endswith(b'/vp/vpasswd.cdb') for x in d), 'detail names vpasswd.cdb: %r' % d)


@case
def test_cdb_truncated_vpasswd_is_451(srv):
    big = cdb_bytes([(b'user%d' % i, b'x:1:0:U:/d/u:NOQUOTA') for i in range(200)])
    vpop_site(srv, vpasswd=big[:len(big) - 1000])
    r = rcpt_replies(srv, ['user1@vpop.example', 'nosuch@vpop.example'])
    eq([x[:3] for x in r], [b'451', b'451'], 'replies with a truncated vpasswd.cdb')


@case
def test_cdb_short_vpasswd_is_451(srv):
    vpop_site(srv, vpasswd=VPASSWD[:1000])
    r = rcpt_replies(srv, ['alice@vpop.example'])
    eq([x[:3] for x in r], [b'451'], 'reply with a 1000-byte vpasswd.cdb')


@case
def test_cdb_zero_filled_users_cdb_is_451(srv):
    vpop_site(srv, users=ZEROS)
    r = rcpt_replies(srv, ['alice@vpop.example'])
    eq([x[:3] for x in r], [b'451'], 'reply with a zero-filled users/cdb')
    check(b'users/cdb' in b' '.join(detail_of_451(srv)), 'detail names users/cdb')


@case
def test_cdb_zero_filled_mxguard_users_cdb_is_451(srv):
    vpop_site(srv, extra={'control/mxguard-users.cdb': ZEROS})
    r = rcpt_replies(srv, ['alice@vpop.example'])
    eq([x[:3] for x in r], [b'451'], 'reply with a zero-filled mxguard-users.cdb')
    check(b'control/mxguard-users.cdb' in b' '.join(detail_of_451(srv)),
          'detail names mxguard-users.cdb')


@case
def test_cdb_zero_filled_morercpthosts_is_4xx(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n', 'morercpthosts.cdb': ZEROS})
    r = rcpt_replies(srv, ['u@example.test', 'u@more.test'])
    eq(r[0], OK, 'a domain of rcpthosts')
    check(r[1].startswith(b'421 '), 'morercpthosts.cdb damaged: %r' % r[1])


@case
def test_cdb_zero_filled_instruct_is_4xx(srv):
    path = os.path.join(srv.dir, 'instruct.cdb')
    with open(path, 'wb') as f:
        f.write(ZEROS)
    srv.configure(env={'INSTRUCTCDB': path})
    with srv.session() as s:
        s.closed_after(CONTROLS_421, 3, 'instruct cdb damaged')


# -- TLS: non-regular certificate files (item 7), an address-space limit (item 8)

CERTDIR = tempfile.mkdtemp(prefix='mxit-hcert.')
subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj',
                '/CN=mx.test', '-keyout', CERTDIR + '/k', '-out', CERTDIR + '/c'], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
PEM = open(CERTDIR + '/c', 'rb').read() + open(CERTDIR + '/k', 'rb').read()
subprocess.run(['rm', '-rf', CERTDIR])
NOTLS = b'454 TLS not available due to temporary reason (#4.3.0)\r\n'
SANITIZED = os.environ.get('MXG_LABEL') == 'asan' or os.path.basename(MXG_BIN) == 'san'


def fifo_case(srv, name):
    control = {'me': ME}
    if name != 'servercert.pem':
        control['servercert.pem'] = PEM
    srv.configure(control=control)
    os.mkfifo(os.path.join(srv.control, name))
    with srv.session(4) as s:
        s.reply()
        check(b'STARTTLS' in s.cmd('EHLO c.test'), 'STARTTLS offered')
        t0 = time.time()
        eq(s.cmd('STARTTLS'), NOTLS, 'STARTTLS with a FIFO as %s' % name)
        check(time.time() - t0 < 2, 'reply took %.1f s' % (time.time() - t0))
        eq(s.cmd('NOOP'), OK, 'the session goes on in plaintext')
    ev = events(srv.log_lines(), 'tls')
    check(ev and ev[0]['result'] == b'ctx_error' and name.encode() in ev[0]['error'],
          'log line names the file: %r' % ev)


@case
def test_fifo_servercert(srv):
    fifo_case(srv, 'servercert.pem')


@case
def test_fifo_clientca(srv):
    fifo_case(srv, 'clientca.pem')


def mail_flows(s):
    eq(s.cmd('MAIL FROM:<a@x.test>'), OK, 'MAIL')
    eq(s.cmd('RCPT TO:<u@example.test>'), OK, 'RCPT')
    eq(s.cmd('DATA'), b'354 go ahead\r\n', 'DATA')
    s.send(b'Subject: t\r\n\r\nhi\r\n.\r\n')
    queued(s.reply())


@case
def test_address_space_limit_no_starttls(srv):
    """ulimit -v (RLIMIT_AS, as prlimit --as and softlimit -m set) at 3 MB: no STARTTLS
    offered, the reason logged once, plain mail flows, no library name ever shown"""
    if SANITIZED:
        return  # ASan reserves terabytes of address space: it cannot start under any such limit
    srv.configure(control={'me': ME, 'servercert.pem': PEM}, shell=['ulimit -v 3072'])
    with srv.session() as s:
        s.reply()
        e1 = s.cmd('EHLO c.test')
        e2 = s.cmd('EHLO c.test')
        check(b'STARTTLS' not in e1 + e2, 'STARTTLS offered under a 3 MB limit: %r' % e1)
        r = s.cmd('STARTTLS')
        check(r.startswith(b'502 ') and b'lib' not in r, 'STARTTLS anyway: %r' % r)
        mail_flows(s)
    srv.stored(1)
    ev = [e for e in events(srv.log_lines(), 'tls') if e.get('result') == b'not_offered']
    eq(len(ev), 1, 'not_offered log lines')
    eq(ev[0]['reason'], b'address_space', 'reason')


@case
def test_address_space_limit_tls_works_when_room(srv):
    if SANITIZED:
        return
    import ssl
    srv.configure(control={'me': ME, 'servercert.pem': PEM}, shell=['ulimit -v 16384'])
    with srv.session() as s:
        s.reply()
        check(b'STARTTLS' in s.cmd('EHLO c.test'), 'STARTTLS offered under a 16 MB limit')
        eq(s.cmd('STARTTLS'), b'220 ready for tls\r\n', 'STARTTLS')
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname, c.verify_mode = False, ssl.CERT_NONE
        s.sock = c.wrap_socket(s.sock)
        check(s.cmd('EHLO c.test').startswith(b'250-'), 'EHLO over TLS')
        mail_flows(s)
    srv.stored(1)


@case
def test_no_library_name_to_client(srv):
    """a context that cannot be made: 454 without OpenSSL's text or a library name"""
    srv.configure(control={'me': ME, 'servercert.pem': b'not a certificate\n'})
    with srv.session() as s:
        s.reply()
        eq(s.cmd('STARTTLS'), NOTLS, 'broken certificate')
    check(events(srv.log_lines(), 'tls')[0]['result'] == b'ctx_error', 'the reason is logged')


# -- descriptors a child inherits (item 10)

FDLIST = r"""#!/usr/bin/python3 -S
import os, sys
fds = {}
for f in os.listdir('/proc/self/fd'):
    try:
        fds[int(f)] = os.readlink('/proc/self/fd/' + f)
    except OSError:
        pass
with open(os.path.join(os.environ['QQ_DIR'], 'fds.%s' % sys.argv[1]), 'w') as out:
    out.write(repr(sorted(fds.items())))
os.execv(sys.argv[2], sys.argv[2:])
"""


def fdlister(srv):
    path = os.path.join(srv.dir, 'fdlist')
    with open(path, 'w') as f:
        f.write(FDLIST)
    os.chmod(path, 0o755)
    qq = os.path.join(srv.dir, 'qqfd')
    with open(qq, 'w') as f:
        f.write('#!/bin/sh\nexec %s qq %s\n' % (path, RECORDER))
    os.chmod(qq, 0o755)
    return path, qq


def fds_seen(srv, who):
    with open(os.path.join(srv.qq, 'fds.' + who)) as f:
        return dict(eval(f.read()))


@case
def test_children_get_only_their_descriptors(srv):
    """qmail-queue gets 0, 1, 2 and 6; checkpassword 0, 1, 2 and 3: not morercpthosts.cdb, the
    DNS socket or anything else the session opened"""
    import base64
    lister, qq = fdlister(srv)
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a DNS server that never answers
    quiet.bind(('127.0.0.1', 0))
    db = os.path.join(srv.dir, 'pw')
    with open(db, 'w') as f:
        f.write('alice:secret\n')
    more = cdb_bytes([(b'more.test', b'')])
    argv = [SMTPD, 'mx.test', lister, 'cpw', os.path.join(MXG_SRC, 'tests', 'checkpw'), '/bin/true']
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n', 'morercpthosts.cdb': more,
                           'dnsbl': 'bl.test\n'},
                  env={'QMAILQUEUE': qq, 'DNSSERVERS': '127.0.0.1:%d' % quiet.getsockname()[1],
                       'DNSBUDGET': '300', 'CHECKPW_DB': db, 'AUTHDELAY': '0', 'FORCETLS': '0',
                       'TCPREMOTEIP': '192.0.2.10'},
                  shell=['exec ' + ' '.join(argv)])
    try:
        with srv.session() as s:
            s.reply()
            s.cmd('EHLO c.test')
            r = s.cmd('AUTH PLAIN ' + base64.b64encode(b'\0alice\0secret').decode())
            check(r.startswith(b'235'), 'AUTH: %r' % r)
            s.cmd('RSET')
            eq(s.cmd('MAIL FROM:<a@x.test>'), OK, 'MAIL')
            eq(s.cmd('RCPT TO:<u@more.test>'), OK, 'RCPT via morercpthosts.cdb')
            eq(s.cmd('DATA'), b'354 go ahead\r\n', 'DATA')
            s.send(b'Subject: t\r\n\r\nhi\r\n.\r\n')
            queued(s.reply())
    finally:
        quiet.close()
    srv.stored(1)
    qfd, cfd = fds_seen(srv, 'qq'), fds_seen(srv, 'cpw')
    eq(sorted(qfd), [0, 1, 2, 6], 'qmail-queue descriptors %r' % qfd)
    eq(sorted(cfd), [0, 1, 2, 3], 'checkpassword descriptors %r' % cfd)


# -- log gaps (item 9)

@case
def test_log_accepted_recipients_at_default_level(srv):
    srv.configure()
    with srv.session() as s:
        s.reply()
        queued(send_message(s, rcpts=('<u@example.test>', '<v@example.test>')))
    ev = events(srv.log_lines(), 'rcpt')
    eq([e['to'] for e in ev], [b'<u@example.test>', b'<v@example.test>'], 'rcpt lines')
    eq(ev[0]['from'], b'<a@x.test>', 'sender on the rcpt line')


@case
def test_log_qq_failure_exit_and_program(srv):
    srv.configure(env={'QQ_EXIT': '53'})
    with srv.session() as s:
        s.reply()
        r = send_message(s)
        check(r.startswith(b'451 '), 'qq failure: %r' % r)
    lines = srv.log_lines()
    err = [e for e in events(lines, 'error') if e.get('reason') == b'qq']
    check(err and err[0]['exit'] == b'53' and err[0]['prog'].endswith(b'qq-recorder'),
          'error line with exit code and program: %r' % lines)
    d = events(lines, 'defer')
    check(d and d[0]['cmd'] == b'DATA' and d[0]['esc'] == b'4.3.0', 'DATA defer has esc: %r' % d)


@case
def test_log_rblsmtpd_and_connect_refusals_have_esc(srv):
    srv.configure(env={'RBLSMTPD': '-go away'})
    with srv.session() as s:
        s.reply()
        s.cmd('MAIL FROM:<a@x.test>')
        check(s.cmd('RCPT TO:<u@example.test>').startswith(b'553 '), 'rblsmtpd refusal')
    r = events(srv.log_lines(), 'reject')
    check(r and r[0]['esc'] == b'5.7.1', 'rblsmtpd reject line has esc: %r' % r)


@case
def test_log_homemode_without_stale_errno(srv):
    home = srv.home
    users = cdb_bytes([(b'!joe\0', b'joe\x001000\x001000\x00%s/h/joe\x00\x00' % home.encode()),
                       (b'', b'')])
    srv.configure(control={'me': ME, 'rcpthosts': 'local.example\n', 'locals': 'local.example\n'},
                  files={'users/cdb': users, 'h/joe/x': 'x'})
    os.chmod(os.path.join(srv.home, 'h/joe'), 0o777)
    r = rcpt_replies(srv, ['joe@local.example'])
    check(r[0].startswith(b'451 '), 'writable home: %r' % r)
    e = [x for x in events(srv.log_lines(), 'error') if x.get('why') == b'homemode']
    check(e and 'errno' not in e[0], 'homemode error line without an errno: %r' % e)


if __name__ == '__main__':
    run('harden')
