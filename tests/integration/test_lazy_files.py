#!/usr/bin/python3
"""Integration: a recipient in a domain that is accepted (rcpthosts) but not local looks at no
file of the local-delivery path - users/assign, users/cdb, .qmail files, percenthack,
envnoathost - (issue 14 item 2: the recipient check opened 7 control files even when the domain
was not local), while a local recipient does look at users/assign (so the check can fail).
The real mxguard-smtpd runs under the real tcpserver inside strace."""
import os
import re
import shlex
import shutil
import sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
import mxtest
from mxtest import *  # noqa: F401,F403

SYSCALLS = 'open,openat,stat,lstat,newfstatat,statx,access,faccessat,faccessat2'
LOCAL_PATH = ('users/assign', 'users/cdb', 'control/percenthack', 'control/envnoathost')


def traced(srv):
    out = os.path.join(srv.dir, 'strace.out')
    with open(srv.runscript, 'w') as f:
        f.write('exec 2>>%s\n. %s\nexec strace -f -qq -e trace=%s -o %s %s\n'
                % (shlex.quote(srv.logfile), shlex.quote(srv.envfile), SYSCALLS,
                   shlex.quote(out), shlex.quote(mxtest.SMTPD)))
    if os.path.exists(out):
        os.unlink(out)
    return out


def looked_at(out):
    names = []
    with open(out) as f:
        for line in f:
            m = re.search(r'\w+\((?:AT_FDCWD, )?"([^"]*)"', line.split(None, 1)[-1])
            if m:
                names.append(m.group(1))
    return names


def session(srv, rcpt):
    with srv.session(timeout=10) as s:
        eq(s.reply()[:4], b'220 ', 'banner')
        s.cmd('HELO client.example.test')
        eq(s.cmd('MAIL FROM:<a@example.test>'), b'250 ok\r\n', 'MAIL')
        r = s.cmd('RCPT TO:%s' % rcpt)
        s.cmd('QUIT')
    srv.wait_idle()
    return r


def conf(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'relay.test\n%s\n' % ME},
                  env={'TCPREMOTEIP': '192.0.2.10'},
                  files={'users/assign': '.\n'})


@case
def test_remote_domain_no_local_files(srv):
    conf(srv)
    out = traced(srv)
    eq(session(srv, '<u@relay.test>'), b'250 ok\r\n', 'RCPT for an accepted remote domain')
    names = looked_at(out)
    bad = [n for n in names if n in LOCAL_PATH or '.qmail' in n]
    check(not bad, 'files of the local-delivery path looked at: %s' % bad)


@case
def test_local_domain_looks_at_assign(srv):
    """the other side: a local recipient does stat users/assign (the trace sees it)"""
    conf(srv)
    out = traced(srv)
    session(srv, '<postmaster@%s>' % ME)
    check('users/assign' in looked_at(out), 'users/assign looked at for a local recipient')


if __name__ == '__main__':
    if not shutil.which('strace'):
        print('FAIL lazy_files.start: strace not found (package strace, in install-deps)')
        sys.exit(0)
    run('lazy_files')
