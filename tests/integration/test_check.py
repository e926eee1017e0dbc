#!/usr/bin/python3
"""Integration: mxguard-check. Every finding has a fixture that triggers it and one that does
not; the exit status is 0 (nothing), 1 (warnings), 2 (errors); --client shows where each
setting comes from (tcprules cdb, instruct cdb, control file, default); --settings lists every
setting name the source reads (so the checker's one table cannot fall behind the code)."""
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import MXG_BIN, MXG_SRC, eq, check  # noqa: E402

CHECK = os.path.join(MXG_BIN, 'mxguard-check')
T = tempfile.mkdtemp(prefix='mxit-check.')
RESULTS = []


def home(files=None, dirs=()):
    """a fresh qmail home with a sound configuration, then files {name: text|bytes|None}"""
    h = tempfile.mkdtemp(dir=T)
    os.makedirs(h + '/control')
    base = {'control/me': 'mx.test\n', 'control/rcpthosts': 'example.test\n'}
    base.update(files or {})
    for name, v in base.items():
        p = os.path.join(h, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if v is None:
            continue
        with open(p, 'wb') as f:
            f.write(v if isinstance(v, bytes) else v.encode())
    for d in dirs:
        os.makedirs(os.path.join(h, d), exist_ok=True)
    return h


def run(h, *args, env=None):
    e = {'PATH': '/usr/bin:/bin', 'QMAILHOME': h}
    e.update(env or {})
    r = subprocess.run([CHECK] + list(args), env=e, capture_output=True, cwd=T, timeout=30)
    out = r.stdout.decode('latin-1')
    for l in out.splitlines() if '--settings' not in args else ():
        check(l.startswith('#') or re.match(r'\S+: (error|warning|note): ', l) or re.match(r'[A-Z_0-9]+[= ]', l),
              'output line not "FILE: level: text": %r' % l)
    return r.returncode, out


def case(fn):
    RESULTS.append(fn)
    return fn


def finding(name, files_bad, files_good, pattern, level, args=(), env=None, dirs_bad=(), dirs_good=()):
    """the bad home triggers a line matching pattern at level (exit status too); the good
    one does not and exits 0"""
    def t():
        rc, out = run(home(files_bad, dirs_bad), *args, env=env)
        check(re.search(r'^%s: %s: ' % (pattern, level), out, re.M),
              'expected %s %r in %r' % (level, pattern, out))
        eq(rc, 2 if re.search(r'^\S+: error: ', out, re.M) else 1, 'exit status with %r' % out)
        rc, out = run(home(files_good, dirs_good), *args, env=env)
        eq((rc, out), (0, ''), 'the good fixture')
    t.__name__ = name
    RESULTS.append(t)


def mkcdb(path, pairs):
    subprocess.run(['cdb', '-c', '-m', path], input=''.join('%s %s\n' % kv for kv in pairs).encode(),
                   check=True)
    with open(path, 'rb') as f:
        return f.read()


def tcprules(path, text):
    subprocess.run(['tcprules', path, path + '.tmp'], input=text.encode(), check=True)
    return path


def ipsvd(path, entries):
    d = tempfile.mkdtemp(dir=T)
    for name, text in entries.items():
        with open(os.path.join(d, name), 'w') as f:
            f.write(text)
    subprocess.run(['ipsvd-cdb', path, path + '.tmp', d], check=True)
    with open(path, 'rb') as f:
        return f.read()


def cert(days, mismatch=False):
    d = tempfile.mkdtemp(dir=T)
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                    '-nodes', '-keyout', d + '/k', '-out', d + '/c', '-days', str(days),
                    '-subj', '/CN=mx.test'], check=True, capture_output=True)
    if mismatch:
        subprocess.run(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256',
                        '-out', d + '/k'], check=True, capture_output=True)
    return open(d + '/k', 'rb').read() + open(d + '/c', 'rb').read()


def closed_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


class DnsResponder:
    """answers every UDP query on loopback with an empty NOERROR reply"""
    def __init__(self):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(('127.0.0.1', 0))
        self.port = self.s.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                q, a = self.s.recvfrom(512)
            except OSError:
                return
            self.s.sendto(q[:2] + b'\x81\x80' + q[4:6] + b'\0\0\0\0\0\0' + q[12:], a)


def setup_fixtures():
    good = os.path.join(T, 'good.cdb')
    mkcdb(good, [('example.net', '')])
    goodcdb = open(good, 'rb').read()
    finding('me_missing', {'control/me': None}, {}, 'control/me', 'error')
    finding('me_unreadable', {'control/me': None}, {}, 'control/me', 'error', dirs_bad=['control/me'])
    finding('databytes_number', {'control/databytes': '10M\n'}, {'control/databytes': '10000000\n'},
            'control/databytes', 'warning')
    finding('timeout_number', {'control/timeoutsmtpd': 'twenty\n'}, {'control/timeoutsmtpd': '20\n'},
            'control/timeoutsmtpd', 'warning')
    finding('open_relay', {'control/rcpthosts': None}, {'control/rcpthosts': None,
            'control/morercpthosts.cdb': goodcdb}, 'control/rcpthosts', 'error')
    finding('rcpthosts_blank', {'control/rcpthosts': 'example.test \t x\n'},
            {'control/rcpthosts': 'example.test\n'}, 'control/rcpthosts', 'warning')
    finding('morercpthosts_broken', {'control/morercpthosts.cdb': goodcdb[:-10]},
            {'control/morercpthosts.cdb': goodcdb}, r'control/morercpthosts\.cdb', 'error')
    finding('morercpthosts_short', {'control/morercpthosts.cdb': b'junk'},
            {'control/morercpthosts.cdb': goodcdb}, r'control/morercpthosts\.cdb', 'error')
    dns = DnsResponder()
    finding('dnsbl_line', {'control/dnsbl': 'bl.test=127.0.0.[2..x]\n',
                           'control/dnsservers': '127.0.0.1:%d\n' % dns.port},
            {'control/dnsbl': 'bl.test=127.0.0.[2..11]*2\n',
             'control/dnsservers': '127.0.0.1:%d\n' % dns.port}, 'control/dnsbl', 'error')
    finding('dns_silent', {'control/dnsbl': 'bl.test\n', 'control/dnsservers': '127.0.0.1:%d\n' % closed_port()},
            {'control/dnsbl': 'bl.test\n', 'control/dnsservers': '127.0.0.1:%d\n' % dns.port},
            'control/dnsservers', 'warning')
    bad = os.path.join(T, 'instruct-bad.cdb')
    badi = ipsvd(bad, {'127.0.0.1': '+SPFBEHAVIOR=3\n+RELAYCLIENT=\n'})
    goodi = ipsvd(bad, {'127.0.0.1': '+RELAYCLIENT=\n+DATABYTES=1000\n'})
    finding('instruct_foreign', {'control/instruct.cdb': badi}, {'control/instruct.cdb': goodi},
            r'control/instruct\.cdb', 'warning')
    finding('instruct_broken', {'control/instruct.cdb': goodi[:2100]}, {'control/instruct.cdb': goodi},
            r'control/instruct\.cdb', 'error')
    tr_bad = tcprules(os.path.join(T, 'tcp-bad.cdb'), '127.:allow,NOPBS="1",RELAYCLIENT=""\n')
    tr_good = tcprules(os.path.join(T, 'tcp-good.cdb'), '127.:allow,RELAYCLIENT="",DATABYTES="10"\n')

    @case
    def tcprules_foreign():
        rc, out = run(home(), tr_bad)
        check(re.search(r'^%s: warning: NOPBS \(qmail-ldap\)' % re.escape(tr_bad), out, re.M), out)
        eq(rc, 1, 'exit status')
        eq(run(home(), tr_good), (0, ''), 'good tcprules')

    def script(name, text, env=None):
        d = os.path.join(T, name)
        os.makedirs(d + '/env', exist_ok=True)
        with open(d + '/run', 'w') as f:
            f.write(text)
        for k, v in (env or {}).items():
            with open(d + '/env/' + k, 'w') as f:
                f.write(v + '\n')
        return d + '/run'

    @case
    def run_softlimit():
        bad = script('s1', '#!/bin/sh\nexec softlimit -m 5000000 tcpserver 0 25 mxguard-smtpd\n')
        rc, out = run(home(), bad)
        check(re.search(r'run: error: line 2: memory limit 5000000 bytes', out), out)
        eq(rc, 2, 'exit status')
        good = script('s2', '#!/bin/sh\nexec softlimit -m 32000000 tcpserver 0 25 mxguard-smtpd\n')
        eq(run(home(), good), (0, ''), 'good run script')
        rc, out = run(home(), os.path.dirname(bad))
        check(re.search(r's1/run: error: line 2: memory limit', out), 'a service directory: %r' % out)
        eq(run(home(), os.path.dirname(good)), (0, ''), 'good service directory')

    @case
    def run_chpst_envdir():
        bad = script('s3', '#!/bin/sh\nexec chpst -m "$SOFTLIMIT" tcpsvd 0 25 mxguard-smtpd\n',
                     {'SOFTLIMIT': '8000000'})
        rc, out = run(home(), bad)
        check(re.search(r'run: error: line 2: memory limit 8000000 bytes', out), out)
        good = script('s4', '#!/bin/sh\nexec chpst -m "$SOFTLIMIT" tcpsvd 0 25 mxguard-smtpd\n',
                      {'SOFTLIMIT': '32000000'})
        eq(run(home(), good), (0, ''), 'good run script')

    @case
    def run_filters_in_front():
        bad = script('s7', '#!/bin/sh\nexec tcpserver 0 25 rblsmtpd -r bl.test spamdyke -f x mxguard-smtpd\n')
        rc, out = run(home(), bad)
        check(re.search(r'run: note: line 2: spamdyke in front', out) and
              re.search(r'run: note: line 2: rblsmtpd in front', out), out)
        eq(rc, 0, 'notes do not change the exit status')
        good = script('s8', '#!/bin/sh\nexec tcpserver 0 25 mxguard-smtpd\n')
        eq(run(home(), good), (0, ''), 'good run script')

    @case
    def run_foreign():
        bad = script('s5', '#!/bin/sh\nDKIMSIGN=1 exec tcpserver 0 25 mxguard-smtpd\n',
                     {'CHKUSER_RCPTLIMIT': '5'})
        rc, out = run(home(), bad)
        check(re.search(r'run: warning: DKIMSIGN \(qmail-dkim\)', out), out)
        check(re.search(r'env: warning: CHKUSER_RCPTLIMIT \(chkuser\)', out), out)
        eq(rc, 1, 'exit status')
        good = script('s6', '#!/bin/sh\nRELAYCLIENT= exec tcpserver 0 25 mxguard-smtpd\n',
                      {'RCPTCHECK': '1'})
        eq(run(home(), good), (0, ''), 'good run script')

    finding('badmailfrom_regex', {'control/badmailfrom': '@example.net\n^spam.*@.*\\.biz$\n'},
            {'control/badmailfrom': '@example.net\nspam@example.org\n'}, 'control/badmailfrom', 'warning')
    good_cert = cert(3650)
    finding('cert_mismatch', {'control/servercert.pem': cert(3650, mismatch=True)},
            {'control/servercert.pem': good_cert}, r'control/servercert\.pem', 'error')
    finding('cert_expiring', {'control/servercert.pem': cert(10)},
            {'control/servercert.pem': good_cert}, r'control/servercert\.pem', 'warning')
    finding('cert_not_file', {}, {'control/servercert.pem': good_cert}, r'control/servercert\.pem',
            'error', dirs_bad=['control/servercert.pem'])
    finding('cert_sni', {'control/servercerts/a.test/servercert.pem': b'garbage'},
            {'control/servercerts/a.test/servercert.pem': good_cert},
            r'control/servercerts/a\.test/servercert\.pem', 'error')
    finding('sql_unreachable', {'control/vpopmail.mysql': '127.0.0.1|%d|u|p|vpopmail\n' % closed_port()},
            {}, r'control/vpopmail\.mysql', 'error')

    @case
    def client_sources():
        h = home({'control/databytes': '5000\n'})
        ipsvd(h + '/control/instruct.cdb', {'127.0.0.1': '+RELAYCLIENT=\n+LOGLEVEL=3\n'})
        rc, out = run(h, '--client', '127.0.0.1', '--rules', tr_good)
        eq(rc, 0, 'exit status (%r)' % out)
        check(re.search(r'^RELAYCLIENT=\t# instruct control/instruct\.cdb "127\.0\.0\.1"$', out, re.M), out)
        check(re.search(r'^LOGLEVEL=3\t# instruct ', out, re.M), out)
        check(re.search(r'^DATABYTES=10\t# tcprules .*tcp-good\.cdb "127\."$', out, re.M), out)
        check(re.search(r'^TCPREMOTEIP=127\.0\.0\.1\t# --client', out, re.M), out)
        rc, out = run(h, '--client', '192.0.2.7')
        check(re.search(r'^RELAYCLIENT unset\t# default', out, re.M), out)
        check(re.search(r'^DATABYTES=5000\t# control/databytes$', out, re.M), out)
        check(re.search(r'^DNSBUDGET unset\t# default 5000, no control/dnsbudget$', out, re.M), out)

    @case
    def settings_table_complete():
        """every name the daemon reads is in the checker's one table"""
        rc, out = run(home(), '--settings')
        table = {l.split('\t')[0] for l in out.splitlines()}
        names = set()
        for p in glob.glob(os.path.join(MXG_SRC, '*.c')):
            if os.path.basename(p) in ('mxguard-check.c', 'qq-maildir.c', 'mxguard-stats.c'):
                continue
            src = open(p, encoding='latin-1').read()
            for m in re.finditer(r'\b(?:getenv|rules_get|rules_get_rcpt|env_ulong|envnum|env_or)\s*\(([^;]*?)\)', src):
                names.update(re.findall(r'"([A-Z][A-Z0-9_]+)"', m.group(1)))
            m = re.search(r'envname\[[^]]*\]\s*=\s*\{(.*?)\};', src, re.S)
            if m:
                names.update(re.findall(r'"([A-Z][A-Z0-9_]+)"', m.group(1)))
        check(len(names) > 20, 'too few names found in the source: %r' % names)
        eq(sorted(names - table), [], 'names read in the source but missing from the checker table')

    @case
    def migrate_page_names():
        """every foreign name the checker knows is mapped in mxguard-migrate(7)"""
        src = open(os.path.join(MXG_SRC, 'mxguard-check.c')).read()
        names = re.findall(r'\{"([A-Z0-9_]+)", "[^"]+"\}', src)
        check(len(names) > 30, 'foreign table not found')
        page = open(os.path.join(MXG_SRC, 'man', 'mxguard-migrate.7')).read()
        eq([n for n in names if n not in page], [], 'names missing from mxguard-migrate.7')

    finding('users_cdb_broken', {'users/cdb': goodcdb[:-10]}, {'users/cdb': goodcdb}, r'users/cdb', 'error')
    finding('mxguard_users_cdb_broken', {'control/mxguard-users.cdb': b'x' * 100},
            {'control/mxguard-users.cdb': goodcdb}, r'control/mxguard-users\.cdb', 'error')

    if os.getuid() == 0:
        @case
        def runs_as_smtpd_user():
            """as root it checks with the rights of -u USER: a file only root can read is an
            error for nobody, not for root"""
            os.chmod(T, 0o755)
            h = home({'control/badmailfrom': '@example.net\n'})
            os.chmod(h, 0o755)
            os.chmod(h + '/control', 0o755)
            os.chmod(h + '/control/me', 0o644)
            os.chmod(h + '/control/rcpthosts', 0o644)
            os.chmod(h + '/control/badmailfrom', 0o600)
            rc, out = run(h, '-u', 'nobody')
            check(re.search(r'^control/badmailfrom: error: unreadable \(Permission denied\)', out, re.M), out)
            eq(rc, 2, 'exit status as nobody')
            eq(run(h, '-u', 'root'), (0, ''), 'as root')

    if os.path.realpath(MXG_BIN) == os.path.realpath(MXG_SRC):  # ASan cannot run under softlimit
        @case
        def tls_memory_threshold():
            """the checker's threshold is real: STARTTLS works under softlimit -m 16000000 (the
            least the checker accepts) and fails under 8000000"""
            h = home({'control/servercert.pem': good_cert})
            res = {}
            for m in (16000000, 8000000):
                s = socket.socket()
                s.bind(('127.0.0.1', 0))
                port = s.getsockname()[1]
                s.close()
                p = subprocess.Popen(['softlimit', '-m', str(m), 'tcpserver', '-v', '-R', '-H', '-l', 'mx.test',
                                      '127.0.0.1', str(port), os.path.join(MXG_BIN, 'mxguard-smtpd')],
                                     env={'PATH': '/usr/bin:/bin', 'QMAILHOME': h}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
                try:
                    p.stderr.readline()  # "tcpserver: status: 0/40": listening
                    c = subprocess.run(['openssl', 's_client', '-starttls', 'smtp', '-connect', '127.0.0.1:%d' % port,
                                        '-quiet'], input=b'EHLO c.test\r\nQUIT\r\n', capture_output=True, timeout=15)
                    res[m] = b'250 ' in c.stdout
                finally:
                    p.terminate()
                    p.wait()
            eq(res, {16000000: True, 8000000: False}, 'STARTTLS works under the memory limit')

    @case
    def smtpd_version():
        """-V alone prints the release; with more arguments it is an AUTH form; LOGLEVEL 4
        puts version= in the connect line, lower levels do not"""
        smtpd = os.path.join(MXG_BIN, 'mxguard-smtpd')
        v = subprocess.run([smtpd, '-V'], capture_output=True)
        m = re.fullmatch(rb'mxguard-smtpd (\S+)\n', v.stdout)
        check(m and v.returncode == 0, '-V: %r' % (v.stdout,))
        with open(os.path.join(MXG_SRC, 'VERSION'), 'rb') as f:
            eq(m.group(1), f.readline().strip(), 'version printed vs the VERSION file')
        h = home()
        for level, want in (('4', True), ('2', False)):
            r = subprocess.run([smtpd], input=b'QUIT\r\n', capture_output=True, timeout=10,
                               env={'PATH': '/usr/bin:/bin', 'QMAILHOME': h, 'LOGLEVEL': level,
                                    'TCPREMOTEIP': '127.0.0.1'})
            conn = [l for l in r.stderr.splitlines() if b' event=connect ' in l]
            eq(len(conn), 1, 'connect lines at LOGLEVEL %s' % level)
            eq(b' version=%s' % m.group(1) in conn[0], want, 'version= at LOGLEVEL %s: %r' % (level, conn[0]))
        r = subprocess.run([smtpd, '-V', '/bin/true'], input=b'QUIT\r\n', capture_output=True, timeout=10,
                           env={'PATH': '/usr/bin:/bin', 'QMAILHOME': h, 'TCPREMOTEIP': '127.0.0.1'})
        check(r.stdout.startswith(b'220 mx.test ESMTP'), '-V with arguments must run a session: %r' % r.stdout)

    @case
    def version():
        r = subprocess.run([CHECK, '--version'], capture_output=True)
        check(re.fullmatch(rb'mxguard-check \S+\n', r.stdout), r.stdout)


def main():
    try:
        setup_fixtures()
    except Exception as e:
        print('FAIL check.setup: %s' % e)
        return
    for t in RESULTS:
        try:
            t()
            print('PASS check.%s' % t.__name__)
        except Exception as e:
            print('FAIL check.%s: %s' % (t.__name__, str(e).replace('\n', '\\n')[:1500]))


if __name__ == '__main__':
    try:
        main()
    finally:
        shutil.rmtree(T, ignore_errors=True)
