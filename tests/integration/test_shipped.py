#!/usr/bin/python3
"""Integration: the shipped data in control/ (tlds, dynamicptr, README, make install-control)
and GeoIP's zero cost: a real mxguard-smtpd session under tcpserver, with control/geoipdb
naming a real .mmdb (written by tests/mkmmdb.pl), does not map libmaxminddb while no rule
asks for a country. control/dynamicptr's patterns and corpus are checked by tests/t_dynptr,
the GeoIP lookups by tests/t_geoip."""
import os
import re
import subprocess
import sys
import tempfile
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

CONTROL = os.path.join(MXG_SRC, 'control')
PSL = '/usr/share/publicsuffix/public_suffix_list.dat'  # Debian publicsuffix (install-deps)
OK = b'250 ok\r\n'


def entries(name):
    with open(os.path.join(CONTROL, name), encoding='ascii') as f:
        return [l.rstrip('\n') for l in f if l.strip() and not l.startswith('#')]


def psl_tlds():
    """the top-level labels of the ICANN section of the public suffix list, as A-labels"""
    out, icann = set(), False
    with open(PSL, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if 'BEGIN ICANN' in line:
                icann = True
            elif 'END ICANN' in line:
                icann = False
            elif icann and line and not line.startswith('//'):
                out.add(line.rsplit('.', 1)[-1].lstrip('*!').encode('idna').decode().lower())
    return out


@case
def test_tlds_format(srv):
    t = entries('tlds')
    bad = [x for x in t if not re.fullmatch(r'[a-z][a-z0-9]*|xn--[a-z0-9-]+', x)]
    check(not bad, 'malformed lines: %r' % bad[:10])
    dups = sorted({x for x in t if t.count(x) > 1})
    check(not dups, 'duplicates: %r' % dups)
    two = [x for x in t if len(x) == 2]
    check(len(two) >= 245, 'only %d country-code TLDs' % len(two))
    for x in ('com', 'net', 'org', 'edu', 'gov', 'int', 'arpa', 'info', 'de', 'uk', 'eu', 'jp',
              'su', 'ac', 'xn--p1ai', 'app', 'dev', 'shop', 'online', 'xyz'):
        check(x in t, '%s missing' % x)
    for x in ('localhost', 'local', 'test', 'example', 'invalid', 'lan', 'home', 'corp',
              'bitnet', 'uucp', 'yu', 'tp', 'an', 'zr', 'um'):
        check(x not in t, '%s is not a TLD (reserved or retired) but is listed' % x)


@case
def test_tlds_all_exist(srv):
    """every entry but the two-letter ones (ISO 3166: delegated even when unused, as bq) is a
    TLD in the public suffix list: nothing retired or made up"""
    check(os.path.exists(PSL), '%s missing: install-deps installs publicsuffix' % PSL)
    psl = psl_tlds()
    check(len(psl) > 1000, 'public suffix list too short: %d' % len(psl))
    t = entries('tlds')
    unknown = [x for x in t if len(x) > 2 and x not in psl]
    check(not unknown, 'not TLDs (per %s): %r' % (PSL, unknown))
    missing = sorted(psl - set(t))
    two = [x for x in missing if len(x) == 2]
    check(not two, 'country-code TLDs missing: %r' % two)
    sys.stderr.write('test_shipped: control/tlds has %d of the %d TLDs of the public suffix '
                     'list (%d missing)\n' % (len(psl & set(t)), len(psl), len(missing)))


@case
def test_readme_and_man_page(srv):
    with open(os.path.join(CONTROL, 'README')) as f:
        readme = f.read()
    for name in sorted(os.listdir(CONTROL)):
        if name != 'README':
            check(re.search(r'^%s\n' % re.escape(name), readme, re.M),
                  'control/README does not describe %s' % name)
    check(re.search(r'^geoipdb ', readme, re.M), 'control/README does not describe geoipdb')
    with open(os.path.join(MXG_SRC, 'man', 'mxguard-smtpd.8')) as f:
        man = f.read()
    check('.SH "SHIPPED DATA"' in man, 'no SHIPPED DATA section in mxguard-smtpd.8')
    sec = man.split('.SH "SHIPPED DATA"', 1)[1].split('\n.SH ', 1)[0]
    for name in ('control/geoipdb', 'control/dynamicptr', 'control/tlds'):
        check('.I %s\n' % name in sec, 'SHIPPED DATA does not describe %s' % name)


@case
def test_install_control(srv):
    """make install-control copies the defaults where absent and keeps an admin's copy"""
    home = tempfile.mkdtemp(prefix='home.', dir=srv.dir)
    cmd = ['make', '-s', '-f', os.path.join(MXG_SRC, 'Makefile'), 'SRC=' + MXG_SRC,
           'QMAILHOME=' + home, 'install-control']
    r = subprocess.run(cmd, cwd=srv.dir, capture_output=True, timeout=60)
    eq(r.returncode, 0, 'make install-control exit (%r)' % r.stderr[-300:])
    for name in ('dynamicptr', 'tlds'):
        with open(os.path.join(CONTROL, name), 'rb') as a, \
                open(os.path.join(home, 'control', name), 'rb') as b2:
            eq(b2.read(), a.read(), 'installed %s' % name)
    with open(os.path.join(home, 'control', 'dynamicptr'), 'w') as f:
        f.write('# mine\n^my-dsl-\n')
    os.unlink(os.path.join(home, 'control', 'tlds'))
    r = subprocess.run(cmd, cwd=srv.dir, capture_output=True, timeout=60)
    eq(r.returncode, 0, 'second make install-control exit (%r)' % r.stderr[-300:])
    with open(os.path.join(home, 'control', 'dynamicptr')) as f:
        eq(f.read(), '# mine\n^my-dsl-\n', 'edited dynamicptr after a second install')
    check(os.path.exists(os.path.join(home, 'control', 'tlds')), 'removed tlds not reinstalled')
    eq(sorted(os.listdir(os.path.join(home, 'control'))), ['badattach', 'dynamicptr', 'headerblock', 'signatures', 'tlds'],
       'files in control/ (no temporary names left)')


def maps(pid):
    with open('/proc/%d/maps' % pid) as f:
        return f.read()


@case
def test_geoip_configured_but_not_asked_is_not_loaded(srv):
    """GeoIP configured with a real database: a whole session (HELO, MAIL, RCPT, DATA) whose
    rules ask no country never maps libmaxminddb nor the database"""
    db = os.path.join(srv.dir, 'geo.mmdb')
    if not os.path.exists(db):
        r = subprocess.run(['perl', os.path.join(MXG_SRC, 'tests', 'mkmmdb.pl'), db],
                           capture_output=True, timeout=60)
        eq(r.returncode, 0, 'mkmmdb.pl (libmaxmind-db-writer-perl) %r' % r.stderr[-300:])
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n', 'geoipdb': db + '\n'})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        eq(s.cmd('HELO client.test')[:4], b'250 ', 'HELO')
        eq(s.cmd('MAIL FROM:<a@x.test>'), OK, 'MAIL')
        eq(s.cmd('RCPT TO:<u@example.test>'), OK, 'RCPT')
        (pid, st), = srv.sessions()
        m = maps(pid)
        check('mxguard-smtpd' in m, 'pid %d is not the smtpd: %r' % (pid, m[:300]))
        check('libmaxminddb' not in m, 'libmaxminddb mapped after RCPT')
        check('geo.mmdb' not in m, 'the database is mapped after RCPT')
        eq(s.cmd('DATA')[:4], b'354 ', 'DATA')
        s.send('Subject: t\r\n\r\nhi\r\n.\r\n')
        check(s.reply().startswith(b'250 '), 'message accepted')
        m = maps(pid)
        check('libmaxminddb' not in m and 'geo.mmdb' not in m, 'mapped after DATA')


if __name__ == '__main__':
    sys.exit(run('shipped'))
