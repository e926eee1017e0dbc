#!/usr/bin/python3
"""Integration: the recipient check never refuses (550) when the qmail home shows a backend
valuser.c cannot read. For each such shape - qmail-ldap's control/ldapserver with no usable
LDAP, a .qmail-default running a program, a virtualdomains target that is not a plain prefix,
users/assign newer than users/cdb (qmail-newu not run), a vpopmail domain with no user
database - an unknown address gets 250 and the log says why once per session; the same home
without the shape gives 550, so each case can fail."""
import os
import shutil
import subprocess
import sys
import time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

NOUSER = b'550 sorry, no mailbox here by that name. (#5.1.1)\r\n'
BOUNCE = "| /home/vpopmail/bin/vdelivermail '' bounce-no-mailbox\n"


def cdb(path, records):
    text = b''.join(b'+%d,%d:%s->%s\n' % (len(k), len(v), k, v) for k, v in records) + b'\n'
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run(['cdb', '-c', path], input=text, check=True)


def home(srv, control=None, files=None):
    c = {'me': 'mx.test', 'rcpthosts': 'local.test\nvirt.test\nvpop.test\n',
         'locals': 'local.test\n', 'virtualdomains': 'virt.test:virt\nvpop.test:vpop.test\n'}
    c.update(control or {})
    f = {'h/alias/.qmail-postmaster': '&root@elsewhere.test\n'}
    f.update(files or {})
    srv.configure(control={k: v for k, v in c.items() if v is not None},
                  files={k: v for k, v in f.items() if v is not None},
                  env={'BADRCPTSOFT': '100'})
    h = srv.home.encode()
    cdb(os.path.join(srv.home, 'users', 'cdb'), [
        (b'!vpop.test-', b'\0'.join([b'vpop.test', b'89', b'89', h + b'/vp', b'-', b'', b''])),
        (b'!', b'\0'.join([b'alias', b'7790', b'2108', h + b'/h/alias', b'-', b'', b''])),
        (b'', b'-')])
    os.makedirs(os.path.join(srv.home, 'vp'), exist_ok=True)


def rcpts(srv, addrs):
    with srv.session() as s:
        s.reply()
        s.cmd('HELO c.test')
        s.cmd('MAIL FROM:<a@x.test>')
        out = [s.cmd('RCPT TO:<%s>' % a) for a in addrs]
        s.cmd('QUIT')
    return out


def noopinion_lines(srv):
    return [l for l in srv.log_lines() if b'event=valuser' in l and b'act=noopinion' in l]


def shape(srv, addrs, why, with_shape, without_shape):
    """with the shape: 250 for every address and one log line naming why; without: 550"""
    home(srv, **with_shape)
    got = rcpts(srv, addrs)
    eq(got, [b'250 ok\r\n'] * len(addrs), 'with the shape')
    lines = noopinion_lines(srv)
    check(len(lines) == 1 and (b'why=' + b(why)) in lines[0], 'one log line: %r' % lines)
    home(srv, **without_shape)
    got = rcpts(srv, addrs)
    eq(got, [NOUSER] * len(addrs), 'without the shape')
    check(not noopinion_lines(srv), 'no log line without the shape')


@case
def test_ldap_not_usable(srv):
    shape(srv, ['nosuch@local.test', 'other@local.test'], 'unusable',
          {'control': {'ldapserver': '\n'}}, {})


@case
def test_default_runs_program(srv):
    shape(srv, ['nosuch@local.test', 'other@local.test'], 'program',
          {'files': {'h/alias/.qmail-default': '|/usr/local/bin/site-lookup\n'}},
          {'files': {'h/alias/.qmail-default': None}})


@case
def test_virtualdomains_target(srv):
    shape(srv, ['nosuch@virt.test', 'other@virt.test'], 'vdtarget',
          {'control': {'virtualdomains': 'virt.test:user@mailhub\n'}}, {})


@case
def test_assign_newer_than_cdb(srv):
    home(srv, files={'users/assign': '+:alias:7790:2108:/nonexistent:-::\n.\n'})
    past = time.time() - 100
    os.utime(os.path.join(srv.home, 'users', 'cdb'), (past, past))
    eq(rcpts(srv, ['nosuch@local.test', 'other@local.test']), [b'250 ok\r\n'] * 2, 'stale cdb')
    lines = noopinion_lines(srv)
    check(len(lines) == 1 and b'why=assign' in lines[0], 'one log line: %r' % lines)
    home(srv, files={'users/assign': '+:alias:7790:2108:/nonexistent:-::\n.\n'})
    past = time.time() - 100
    os.utime(os.path.join(srv.home, 'users', 'assign'), (past, past))
    eq(rcpts(srv, ['nosuch@local.test']), [NOUSER], 'cdb newer than assign')


def cdb_bytes(records):
    import tempfile
    d = tempfile.mkdtemp(prefix='mxit-cdb.')
    try:
        cdb(os.path.join(d, 'x.cdb'), records)
        with open(os.path.join(d, 'x.cdb'), 'rb') as f:
            return f.read()
    finally:
        shutil.rmtree(d, ignore_errors=True)


@case
def test_vpopmail_without_database(srv):
    vpasswd = cdb_bytes([(b'alice', b'x:1:0:Alice:/d/alice:NOQUOTA')])
    shape(srv, ['nosuch@vpop.test', 'other@vpop.test'], 'nodatabase',
          {'files': {'vp/.qmail-default': (BOUNCE, 0o600)}},
          {'files': {'vp/.qmail-default': (BOUNCE, 0o600), 'vp/vpasswd.cdb': vpasswd}})


@case
def test_users_tool_with_ldap(srv):
    """mxguard-users does not copy a qmail-ldap site: a copy would refuse new LDAP users"""
    home(srv, control={'ldapserver': '127.0.0.1:1\n'})
    p = subprocess.run([os.path.join(MXG_BIN, 'mxguard-users')], capture_output=True,
                       env=dict(os.environ, QMAILHOME=srv.home))
    eq(p.returncode, 0, 'exit status')
    check(b'ldapserver' in p.stderr, 'says why: %r' % p.stderr)
    check(not os.path.exists(os.path.join(srv.control, 'mxguard-users.cdb')), 'no cdb written')


@case
def test_users_tool_keeps_no_opinion(srv):
    """a prefix whose -default runs a program stays deliverable through mxguard-users' cdb"""
    home(srv, files={'h/alias/.qmail-list-default': '|/usr/local/bin/list-manager\n'})
    p = subprocess.run([os.path.join(MXG_BIN, 'mxguard-users')], capture_output=True,
                       env=dict(os.environ, QMAILHOME=srv.home))
    eq(p.returncode, 0, 'exit status: %r' % p.stderr)
    check(os.path.exists(os.path.join(srv.control, 'mxguard-users.cdb')), 'cdb written')
    got = rcpts(srv, ['list-foo@local.test', 'postmaster@local.test', 'nosuch@local.test'])
    eq([g[:3] for g in got], [b'250', b'250', b'550'], 'answers from the cdb')
    check(b'reason=nouser:cdb' in srv.log(), 'the cdb answered: %r' % srv.log()[-300:])


run('shapes')
