#!/usr/bin/python3
"""Integration: the qmail-ldap recipient check (valldap.c through valuser.c) against a real
slapd started here on a temporary directory and a loopback port, with a schema written here
holding qmail-ldap's attributes (mail, mailAlternateAddress, accountStatus, deliveryMode,
mailForwardingAddress). Users in each accountStatus, aliases, catch-alls (user-catchall,
catchall@domain, @domain), extensions, aliasdomains, the local fallback (ldaplocaldelivery),
filter escaping, LDAP down at start, stopped (SIGSTOP) and killed mid-session (451, or 250
with LDAPSOFTOK), and /proc/PID/maps showing libldap is loaded only when a recipient needs it."""
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

TMP = tempfile.mkdtemp(prefix='mxit-ldap.')
BASE = 'dc=example,dc=test'
SCHEMA = """
attributetype ( 1.3.6.1.4.1.7914.1.2.1.4 NAME 'mailAlternateAddress'
  EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )
attributetype ( 1.3.6.1.4.1.7914.1.2.1.7 NAME 'mailForwardingAddress'
  EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )
attributetype ( 1.3.6.1.4.1.7914.1.2.1.10 NAME 'deliveryMode'
  EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{32} )
attributetype ( 1.3.6.1.4.1.7914.1.2.1.12 NAME 'accountStatus'
  EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.7914.1.2.2.1 NAME 'qmailUser' SUP top AUXILIARY MUST ( mail )
  MAY ( uid $ mailAlternateAddress $ mailForwardingAddress $ deliveryMode $ accountStatus ) )
"""
# (cn, mail, [mailAlternateAddress], accountStatus or None, extra attributes)
USERS = [
    ('joe', 'joe@example.test', ['joseph@example.test', 'jo@other.test'], 'active', []),
    ('na', 'na@example.test', [], 'noaccess', []),
    ('np', 'np@example.test', [], 'nopop', []),
    ('plain', 'plain@example.test', [], None, []),
    ('dis', 'dis@example.test', ['dis-alias@example.test'], 'disabled', []),
    ('del', 'del@example.test', [], 'deleted', []),
    ('fwd', 'fwd@example.test', [], 'active',
     ['mailForwardingAddress: x@elsewhere.test', 'deliveryMode: noforward']),
    ('list', 'list-catchall@example.test', [], None, []),
    ('catch', 'catchall@catch.test', [], None, []),
    ('old', '@old.test', [], None, []),
    ('star', 'a*b@example.test', [], None, []),
    ('dup1', 'dup@example.test', [], None, []),
    ('dup2', 'dup2@example.test', ['dup@example.test'], None, []),
    # a value the server matches by its own rules (insignificant space): one search per key
    ('spaced', ' spaced@example.test', [], None, []),
] + [('crowd%d' % i, 'crowd%d@example.test' % i, ['crowd@example.test'], None, [])
     for i in range(20)]  # more entries than one combined search takes


class Slapd:
    def __init__(self, name):
        self.dir = os.path.join(TMP, name)
        os.makedirs(os.path.join(self.dir, 'db'))
        with open(os.path.join(self.dir, 'qmail.schema'), 'w') as f:
            f.write(SCHEMA)
        with open(os.path.join(self.dir, 'slapd.conf'), 'w') as f:
            f.write('include /etc/ldap/schema/core.schema\n'
                    'include /etc/ldap/schema/cosine.schema\n'
                    'include %s/qmail.schema\n'
                    'pidfile %s/slapd.pid\n'
                    'modulepath /usr/lib/ldap\nmoduleload back_mdb\n'
                    'database mdb\nmaxsize 10485760\nsuffix "%s"\n'
                    'rootdn "cn=admin,%s"\nrootpw adminpw\ndirectory %s/db\n'
                    'index mail,mailAlternateAddress eq\n'
                    % (self.dir, self.dir, BASE, BASE, self.dir))
        self.port = None
        self.proc = None

    def start(self):
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                ['slapd', '-d', '0', '-f', os.path.join(self.dir, 'slapd.conf'),
                 '-h', 'ldap://127.0.0.1:%d/' % self.port],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, 'log'), 'ab'))
            deadline = time.time() + 10
            while time.time() < deadline and self.proc.poll() is None:
                r = subprocess.run(['ldapsearch', '-x', '-H', self.uri(), '-b', '', '-s', 'base',
                                    '-LLL', 'objectclass=*'], capture_output=True)
                if r.returncode == 0:
                    return
                time.sleep(0.05)
            self.stop()
        raise RuntimeError('slapd did not start')

    def uri(self):
        return 'ldap://127.0.0.1:%d' % self.port

    def load(self, users):
        ldif = ['dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: t\ndc: example\n'
                % BASE, 'dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n' % BASE]
        for cn, mail, alts, status, extra in users:
            e = ['dn: cn=%s,ou=people,%s' % (cn, BASE), 'objectClass: person',
                 'objectClass: qmailUser', 'cn: %s' % cn, 'sn: %s' % cn,
                 'mail:: ' + base64.b64encode(mail.encode()).decode()]
            e += ['mailAlternateAddress: %s' % a for a in alts]
            if status:
                e.append('accountStatus: %s' % status)
            e += extra
            ldif.append('\n'.join(e) + '\n')
        subprocess.run(['ldapadd', '-x', '-H', self.uri(), '-D', 'cn=admin,%s' % BASE,
                        '-w', 'adminpw'], input='\n'.join(ldif).encode(), check=True,
                       stdout=subprocess.DEVNULL)

    def sigstop(self):
        """SIGSTOP, and wait until every thread of slapd is really stopped"""
        os.kill(self.proc.pid, signal.SIGSTOP)
        deadline = time.time() + 3
        while time.time() < deadline:
            states = []
            for t in os.listdir('/proc/%d/task' % self.proc.pid):
                with open('/proc/%d/task/%s/stat' % (self.proc.pid, t)) as f:
                    states.append(f.read().rsplit(')', 1)[1].split()[0])
            if all(x in ('T', 't') for x in states):
                return
            time.sleep(0.01)
        raise AssertionError('slapd did not stop: %r' % states)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


LDAP = Slapd('main')
ALIASHOME = os.path.join(TMP, 'alias')


def users_cdb(path):
    """users/cdb with only the alias wildcard, as qmail-newu writes it"""
    rec = [(b'!', b'\0'.join([b'alias', b'7790', b'2108', ALIASHOME.encode(), b'-', b'', b''])),
           (b'', b'')]
    text = b''.join(b'+%d,%d:%s->%s\n' % (len(k), len(v), k, v) for k, v in rec) + b'\n'
    subprocess.run(['cdb', '-c', path], input=text, check=True)


def setup(srv, server=None, extra=None, env=None, shell=()):
    control = {'me': 'mx.test', 'rcpthosts': 'example.test\nalias.test\ncatch.test\nold.test\n',
               'locals': 'example.test\nalias.test\ncatch.test\nold.test\n',
               'ldapserver': (server or LDAP).uri()[len('ldap://'):] + '\n'
               if not isinstance(server, str) else server,
               'ldapbasedn': BASE + '\n', 'ldapobjectclass': 'qmailUser\n',
               'ldaplogin': 'cn=admin,%s\n' % BASE, 'ldappassword': 'adminpw\n',
               'aliasdomains': 'alias.test:example.test\n'}
    control.update(extra or {})
    e = {'BADRCPTSOFT': '100'}  # no harvest delay: these sessions ask for many unknown users
    e.update(env or {})
    srv.configure(control=control, env=e, shell=shell)
    os.makedirs(os.path.join(srv.home, 'users'), exist_ok=True)
    users_cdb(os.path.join(srv.home, 'users', 'cdb'))


def rcpts(srv, addrs):
    with srv.session() as s:
        s.reply()
        s.cmd('HELO c.test')
        s.cmd('MAIL FROM:<a@x.test>')
        out = [s.cmd('RCPT TO:<%s>' % a) for a in addrs]
        s.cmd('QUIT')
    return out


EXPECT = [
    ('joe@example.test', b'250 ok\r\n'), ('JOE@Example.Test', b'250 ok\r\n'),
    ('joseph@example.test', b'250 ok\r\n'), ('na@example.test', b'250 ok\r\n'),
    ('np@example.test', b'250 ok\r\n'), ('plain@example.test', b'250 ok\r\n'),
    ('fwd@example.test', b'250 ok\r\n'),
    ('dis@example.test', b'550 Mailaddress is administratively disabled. (#5.2.1)\r\n'),
    ('dis-alias@example.test', b'550 Mailaddress is administratively disabled. (#5.2.1)\r\n'),
    ('del@example.test', b'550 sorry, no mailbox here by that name. (#5.1.1)\r\n'),
    ('nosuch@example.test', b'550 sorry, no mailbox here by that name. (#5.1.1)\r\n'),
    ('postmaster@example.test', b'250 ok\r\n'),           # not in LDAP: ~alias/.qmail-postmaster
    ('list-foo@example.test', b'250 ok\r\n'), ('list-foo-bar@example.test', b'250 ok\r\n'),
    ('lists@example.test', b'550 sorry, no mailbox here by that name. (#5.1.1)\r\n'),
    ('anyone@catch.test', b'250 ok\r\n'), ('x-y@catch.test', b'250 ok\r\n'),
    ('whoever@old.test', b'250 ok\r\n'), ('joe@alias.test', b'250 ok\r\n'),
    ('dup@example.test', b'250 ok\r\n'),
    ('spaced@example.test', b'250 ok\r\n'),
    ('crowd@example.test', b'250 ok\r\n'), ('crowd-x@example.test', b'550 sorry, no mailbox here by that name. (#5.1.1)\r\n'),
]


@case
def test_lookups(srv):
    setup(srv)
    got = rcpts(srv, [a for a, _ in EXPECT])
    bad = [(a, w, g) for (a, w), g in zip(EXPECT, got) if g != w]
    check(not bad, 'wrong replies: %r' % bad)
    lines = srv.log_lines()
    rej = [l for l in lines if b'event=reject' in l]
    check(any(b'reason=nouser:ldap' in l and b'del@example.test' in l for l in rej),
          'the deleted user is logged as nouser:ldap: %r' % rej)
    check(any(b'reason=disabled:ldap' in l for l in rej), 'disabled logged: %r' % rej)


@case
def test_escaping(srv):
    setup(srv)
    cases = [('*@example.test', 550), ('j*@example.test', 550), ('a*b@example.test', 250),
             ('a*c@example.test', 550), ('joe)(mail=*@example.test', 550),
             ('*)(|(mail=*@example.test', 550), ('a\\2ab@example.test', 550),
             ('jo\\e@example.test', 250),  # qmail's parser: a backslash quotes: joe
             ('jo\\\\e@example.test', 550), ('(joe)@example.test', 550)]
    got = rcpts(srv, [a for a, _ in cases])
    bad = [(a, w, g) for (a, w), g in zip(cases, got) if not g.startswith(b'%d ' % w)]
    check(not bad, 'escaping: %r' % bad)
    check(b'event=error' not in srv.log(), 'no LDAP error: %r' % srv.log()[-400:])


@case
def test_goodmailaddr(srv):
    """qmail-ldap's control/goodmailaddr: listed addresses pass without a lookup"""
    setup(srv, extra={'goodmailaddr': 'ghost@example.test\nteam-catchall@example.test\n'
                                      'svc@\n@catch.test\n'})
    got = rcpts(srv, ['ghost@example.test', 'GHOST@example.test', 'team-x@example.test',
                      'svc@example.test', 'nosuch@example.test'])
    eq([g[:3] for g in got], [b'250', b'250', b'250', b'250', b'550'], 'replies')
    setup(srv)
    eq(rcpts(srv, ['ghost@example.test'])[0][:3], b'550', 'not listed: checked')


@case
def test_localdelivery_off(srv):
    """qmail-lspawn without ldaplocaldelivery skips users/cdb and passwd for addresses not in
    LDAP and delivers to the alias user, which this machine lacks: it defers, and so do we"""
    setup(srv, extra={'ldaplocaldelivery': '0\n'})
    got = rcpts(srv, ['joe@example.test', 'postmaster@example.test', 'nosuch@example.test'])
    eq([g[:3] for g in got], [b'250', b'451', b'451'], 'replies')
    check(b'why=noalias' in srv.log(), 'log: %r' % srv.log()[-300:])
    setup(srv)
    got = rcpts(srv, ['postmaster@example.test'])
    eq([g[:3] for g in got], [b'250'], 'with local delivery: through users/cdb')


@case
def test_maps(srv):
    """a session that needs no recipient lookup does not load libldap; the first lookup does"""
    setup(srv)
    with srv.session() as s:
        s.reply()
        s.cmd('HELO c.test')
        eq(s.cmd('MAIL FROM:<a@x.test>'), b'250 ok\r\n')
        pids = [p for p, st in srv.sessions() if st is None]
        check(len(pids) == 1, 'one session running: %r' % pids)
        maps = open('/proc/%d/maps' % pids[0]).read()
        check('mxguard-smtpd' in maps, 'that is the smtpd: %r' % maps[:200])
        check('libldap' not in maps and 'liblber' not in maps, 'libldap loaded before need')
        eq(s.cmd('RCPT TO:<joe@example.test>'), b'250 ok\r\n')
        maps = open('/proc/%d/maps' % pids[0]).read()
        check('libldap' in maps, 'libldap not loaded after an LDAP lookup')
        s.cmd('QUIT')


# a sanitizer build reserves terabytes of shadow memory: it cannot run under any limit
SANITIZER = os.environ.get('MXG_LABEL') == 'asan' or os.path.basename(
    os.path.dirname(SMTPD)) == 'san'


def test_small_address_space(srv):
    """qmail-ldap's usual run script limits the address space to 3 MB: libldap (with GnuTLS
    and SASL) needs about 12 MB, so LDAP is not usable there: no opinion, and the log says why"""
    setup(srv, shell=['ulimit -v 3000'])
    got = rcpts(srv, ['joe@example.test', 'nosuch@example.test', 'del@example.test'])
    eq([g[:3] for g in got], [b'250', b'250', b'250'], 'no opinion, never 550')
    lines = [l for l in srv.log_lines() if b'act=noopinion' in l]
    check(len(lines) == 1 and b'why=unusable' in lines[0] and b'address-space limit' in lines[0],
          'one log line saying why: %r' % lines)
    setup(srv, shell=['ulimit -v 16000'])
    got = rcpts(srv, ['joe@example.test', 'del@example.test'])
    eq([g[:3] for g in got], [b'250', b'550'], 'with 16 MB LDAP works')


if not SANITIZER:
    case(test_small_address_space)


@case
def test_down_at_start(srv):
    dead = '127.0.0.1:%d\n' % free_port()
    setup(srv, server=dead)
    t = time.time()
    got = rcpts(srv, ['joe@example.test', 'na@example.test', 'x@other.test'])
    eq(got[0], b'451 unable to verify that recipient, try again later (#4.3.0)\r\n', 'first')
    eq(got[1][:4], b'451 ', 'second')
    eq(got[2][:4], b'553 ', 'a foreign domain is not asked')
    check(time.time() - t < 4, 'took %.1f s' % (time.time() - t))
    log = srv.log()
    check(b'reason=valuser:ldap' in log and b'backend=ldap' in log, 'log: %r' % log[-600:])
    setup(srv, server=dead, env={'LDAPSOFTOK': '1'})
    got = rcpts(srv, ['joe@example.test', 'nosuch@example.test'])
    eq([g[:3] for g in got], [b'250', b'250'], 'LDAPSOFTOK lets them pass')


@case
def test_several_servers(srv):
    """the first listed server is down, the second answers"""
    setup(srv, server='127.0.0.1:%d %s\n' % (free_port(), LDAP.uri()))
    got = rcpts(srv, ['joe@example.test', 'nosuch@example.test'])
    eq([g[:3] for g in got], [b'250', b'550'], 'replies')


@case
def test_stopped_and_killed(srv):
    other = Slapd('second')
    other.start()
    try:
        other.load(USERS)
        setup(srv, server=other)
        other.sigstop()  # accepts TCP (the backlog), never answers
        try:
            t = time.time()
            got = rcpts(srv, ['joe@example.test'])
            took = time.time() - t
            eq(got[0][:4], b'451 ', 'stopped before the session: the bind times out')
            check(2.5 <= took < 5, 'the connect deadline: %.1f s' % took)
        finally:
            os.kill(other.proc.pid, signal.SIGCONT)
        with srv.session() as s:
            s.reply()
            s.cmd('HELO c.test')
            s.cmd('MAIL FROM:<a@x.test>')
            eq(s.cmd('RCPT TO:<joe@example.test>'), b'250 ok\r\n', 'before SIGSTOP')
            other.sigstop()
            try:
                t = time.time()
                r = s.cmd('RCPT TO:<na@example.test>', timeout=15)
                took = time.time() - t
                eq(r[:4], b'451 ', 'stopped slapd (log %r)' % srv.log(False)[-700:])
                check(4 <= took < 8, 'the search deadline: %.1f s' % took)
                t = time.time()
                eq(s.cmd('RCPT TO:<np@example.test>')[:4], b'451 ', 'still down in this session')
                check(time.time() - t < 1, 'down for the session: no new wait')
            finally:
                os.kill(other.proc.pid, signal.SIGCONT)
            s.cmd('QUIT')
        with srv.session() as s:
            s.reply()
            s.cmd('HELO c.test')
            s.cmd('MAIL FROM:<a@x.test>')
            eq(s.cmd('RCPT TO:<joe@example.test>'), b'250 ok\r\n', 'new session, slapd back')
            other.proc.kill()
            other.proc.wait()
            eq(s.cmd('RCPT TO:<na@example.test>')[:4], b'451 ', 'killed slapd')
            s.cmd('QUIT')
    finally:
        other.stop()


if __name__ == '__main__':
    try:
        LDAP.start()
        LDAP.load(USERS)
        os.makedirs(ALIASHOME, exist_ok=True)
        os.chmod(TMP, 0o755)
        with open(os.path.join(ALIASHOME, '.qmail-postmaster'), 'w') as f:
            f.write('&root@elsewhere.test\n')
        run('valldap')
    finally:
        LDAP.stop()
        shutil.rmtree(TMP, ignore_errors=True)
