#!/usr/bin/python3
"""Integration: faults found by attacking mxguard (issue 12): log lines stay whole under
concurrency, damaged cdb files answer 451, RHSBL with TCPREMOTEHOST, non-regular certificate
files, TLS under an address-space limit, descriptors a child inherits."""
import os
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


if __name__ == '__main__':
    run('harden')
