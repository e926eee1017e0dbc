#!/usr/bin/python3
"""Integration: with the DNS servers configured (DNSSERVERS or control/dnsservers) the session's
c-ares channel is made without reading any system file - no /etc/resolv.conf, nsswitch.conf,
host.conf, hosts, no gethostname (uname) - in both of dnsbl.c's ways of giving the servers
(IPv4 on one port as ARES_OPT_SERVERS, any other list through c-ares' csv parser), and the
lookups still reach the servers (issue 14 item 4). The real mxguard-smtpd runs under the
real tcpserver inside strace; the DNS is test_dnsbl.py's dnsmasq on loopback. The one file
c-ares 1.18.1 opens whatever it is given, /dev/urandom (its query-id key), is allowed."""
import os
import re
import shlex
import shutil
import subprocess
import sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxtest
import test_dnsbl as td  # its cases register themselves: forget them, keep its helpers
del mxtest.CASES[:]
from mxtest import *  # noqa: F401,F403

ALLOWED = {'/dev/urandom'}
SYSCALLS = 'chdir,open,openat,stat,lstat,newfstatat,statx,access,faccessat,faccessat2,readlink,uname'


def traced(srv):
    """point the server's run script at strace; the trace file"""
    out = os.path.join(srv.dir, 'strace.out')
    with open(srv.runscript, 'w') as f:
        f.write('exec 2>>%s\n. %s\nexec strace -f -qq -e trace=%s -o %s %s\n'
                % (shlex.quote(srv.logfile), shlex.quote(srv.envfile), SYSCALLS,
                   shlex.quote(out), shlex.quote(mxtest.SMTPD)))
    if os.path.exists(out):
        os.unlink(out)
    return out


def system_files(out, home):
    """(absolute paths opened or looked at, uname calls) in the trace after the chdir to the
    qmail home (before it: the loader and the sanitizer's start in the ASan build), the qmail
    home itself left out; home None: the whole trace"""
    paths, unames = set(), 0
    started = home is None
    with open(out) as f:
        for line in f:
            call = line.split(None, 1)[-1]
            if not started:
                started = call.startswith('chdir("%s")' % home)
                continue
            if call.startswith('uname('):
                unames += 1
            m = re.match(r'\w+\((?:AT_FDCWD, )?"(/[^"]*)"', call)
            if m and not call.startswith('chdir(') and not (home and m.group(1).startswith(home)):
                paths.add(m.group(1))
    return paths, unames


def one(srv, what):
    out = traced(srv)
    r, _ = td.rcpt(srv)
    srv.wait_idle()
    check(r.startswith(b'553 '), '%s: the listed client refused (the lookup reached dnsmasq): %r' % (what, r))
    check(os.path.exists(out), '%s: strace wrote %s' % (what, out))
    with open(out) as f:
        check('chdir("%s")' % srv.home in f.read(), '%s: the trace shows the chdir to the home' % what)
    paths, unames = system_files(out, srv.home)
    check(unames == 0, '%s: no uname (gethostname) for the channel, %d seen' % (what, unames))
    check(paths <= ALLOWED, '%s: system files looked at: %s' % (what, sorted(paths - ALLOWED)))
    check(not [e for e in events(srv.log_lines(), 'error') if e.get('reason') == b'dns'],
          '%s: no dns error' % what)


@case
def test_ipv4_one_port(srv):
    """DNSSERVERS with IPv4 servers on one port: given to ares_init_options directly"""
    td.conf(srv, dnsbl='bl.test\n', servers='127.0.0.1:%d' % td.DNS['port'])
    one(srv, 'DNSSERVERS 127.0.0.1:port')


@case
def test_mixed_ports_csv(srv):
    """a dead server on another port first: c-ares' csv parser, still no file"""
    td.conf(srv, dnsbl='bl.test\n', servers='127.0.0.1:9,127.0.0.1:%d' % td.DNS['port'])
    one(srv, 'DNSSERVERS on two ports')


@case
def test_control_dnsservers(srv):
    """control/dnsservers instead of the environment"""
    td.conf(srv, dnsbl='bl.test\n', env={'DNSSERVERS': None},
            control={'dnsservers': '127.0.0.1:%d\n' % td.DNS['port']})
    one(srv, 'control/dnsservers')


@case
def test_leading_zero_left_to_cares(srv):
    """a form dnsbl.c's own IPv4 reading leaves to c-ares' parser ("01") gets c-ares' verdict,
    as before there was an own reading: c-ares 1.18.1 takes it as 1"""
    td.conf(srv, dnsbl='bl.test\n', servers='127.0.0.01:%d' % td.DNS['port'])
    one(srv, 'DNSSERVERS 127.0.0.01:port')


@case
def test_trace_sees_system_files(srv):
    """the check can fail: the same strace and parser see a program that reads /etc/passwd"""
    out = os.path.join(srv.dir, 'strace-cat.out')
    subprocess.run(['strace', '-f', '-qq', '-e', 'trace=' + SYSCALLS, '-o', out, 'cat', '/etc/passwd'],
                   stdout=subprocess.DEVNULL, check=True)
    paths, _ = system_files(out, None)
    check('/etc/passwd' in paths, 'the trace parser sees /etc/passwd: %s' % sorted(paths))


if __name__ == '__main__':
    import tempfile
    if not shutil.which('strace'):
        print('FAIL dns_setup.start: strace not found (package strace, in install-deps)')
        sys.exit(0)
    tmp = tempfile.mkdtemp(prefix='mxit-dnss.')
    try:
        td.start_dns(tmp)
    except Exception as e:
        print('FAIL dns_setup.start: %s' % e)
        td.stop_dns()
        sys.exit(0)
    try:
        run('dns_setup')
    finally:
        td.stop_dns()
        shutil.rmtree(tmp, ignore_errors=True)
