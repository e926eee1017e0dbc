#!/usr/bin/python3
"""Integration: mxguard-import spamdyke CONFIG OUTDIR on a spamdyke configuration using the
options of the reference (policy.md A6): lists with "!" removal, list files, config-file
includes, booleans, the config-dir _ip_ and _rdns_ trees; every untranslatable option is
named; the control files and the compiled instruct cdb are then used by the real smtpd under
tcpserver (relaying for the _ip_ entry, badmailfrom) and by mxguard-check --client."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

IMPORT = os.path.join(MXG_BIN, 'mxguard-import')
T = tempfile.mkdtemp(prefix='mxit-spamdyke.')


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def fixture():
    write(T + '/dnsbl.txt', '# more lists\nb.barracuda.test\n')
    write(T + '/senders.txt', '@worse.test\n')
    write(T + '/more.conf', 'smtp-auth-level=ondemand\nidle-timeout-secs=60\n')
    write(T + '/cd/_ip_/127/0/0/1', 'relay-level=allow-all\n')
    write(T + '/cd/_rdns_/test/example/mail', 'reject-empty-rdns=no\n')
    write(T + '/cd/_recipient_/test/example/_at_/bob', 'reject-empty-rdns=no\n')
    write(T + '/spamdyke.conf', '\n'.join([
        '# spamdyke example', 'log-level=info', 'idle-timeout-secs=30',
        'dns-blacklist-entry=zen.spamhaus.test', 'dns-blacklist-entry=bl.spamcop.test',
        'dns-blacklist-entry=!bl.spamcop.test', 'dns-blacklist-file=%s/dnsbl.txt' % T,
        'dns-whitelist-entry=list.dnswl.test', 'rhs-blacklist-entry=dbl.spamhaus.test',
        'reject-empty-rdns', 'reject-unresolvable-rdns=no', 'reject-sender=no-mx',
        'reject-recipient=invalid', 'sender-blacklist-entry=spammer@bad.test',
        'sender-blacklist-file=%s/senders.txt' % T, 'ip-blacklist-entry=192.0.2.66',
        'ip-blacklist-entry=198.51.100.', 'ip-blacklist-entry=203.0.113.0/24',
        'ip-blacklist-entry=203.0.114.64/30', 'ip-blacklist-entry=10.0.0.0/255.254.0.0',
        'ip-blacklist-entry=172.16.0.0/12', 'ip-blacklist-entry=192.0.2.1-9', 'ip-blacklist-entry=0.0.0.0/0',
        'ip-whitelist-entry=127.0.0.2', 'rdns-blacklist-entry=.dialup.example.test',
        'graylist-level=always', 'greeting-delay-secs=5', 'max-recipients=20',
        'header-blacklist-entry=Subject: *viagra*', 'config-file=%s/more.conf' % T,
        'config-dir=%s/cd' % T, '']))


def main():
    fixture()
    out = os.path.join(T, 'out')
    try:
        r = subprocess.run([IMPORT, 'spamdyke', T + '/spamdyke.conf', out], capture_output=True, timeout=30)
        eq(r.returncode, 1, 'exit status (some options not translated): %r' % r.stderr)
        rep = r.stdout.decode()
        for opt in ('graylist-level', 'greeting-delay-secs', 'max-recipients', 'header-blacklist-entry',
                    'smtp-auth-level', 'ip-blacklist 0.0.0.0/0', 'ip-blacklist 192.0.2.1-9',
                    '_recipient_'):
            check(re.search(r'^\S+: %s' % re.escape(opt), rep, re.M) or re.search(r': %s:' % re.escape(opt), rep),
                  'untranslated %s not named in %r' % (opt, rep))
        check('idle-timeout-secs' not in rep and 'dns-blacklist-entry' not in rep, 'translated options named: %r' % rep)
        c = lambda n: open(os.path.join(out, 'control', n)).read()
        eq(c('dnsbl'), 'zen.spamhaus.test\nb.barracuda.test\nlist.dnswl.test*-1\n', 'control/dnsbl')
        eq(c('rhsbl'), 'dbl.spamhaus.test\n', 'control/rhsbl')
        eq(c('requireptr'), '1\n', 'control/requireptr')
        eq(c('returnmxcheck'), '1\n', 'control/returnmxcheck')
        eq(c('timeoutsmtpd'), '60\n', 'control/timeoutsmtpd (the include is read later and wins)')
        eq(c('badmailfrom'), 'spammer@bad.test\n@worse.test\n', 'control/badmailfrom')
        eq(open(os.path.join(out, 'env', 'LOGLEVEL')).read(), '2\n', 'env/LOGLEVEL')
        d = subprocess.run(['cdb', '-d', os.path.join(out, 'control', 'instruct.cdb')], capture_output=True).stdout
        for k, v in ((b'203.0.113', b'D'), (b'203.0.114.64', b'D'), (b'203.0.114.67', b'D'), (b'10.0', b'D'),
                     (b'10.1', b'D'), (b'172.16', b'D'), (b'172.31', b'D'), (b'192.0.2.66', b'D'), (b'198.51.100', b'D'), (b'dialup.example.test', b'D'),
                     (b'127.0.0.1', b'+RELAYCLIENT=I'), (b'mail.example.test', b'+REQUIREPTR=0I')):
            check(b'%s->%s\n' % (k, v) in d, 'instruct entry %r -> %r missing in %r' % (k, v, d))
        check(b'127.0.0.2->+DNSBLSKIP=\0+RHSBLSKIP=' in d, 'whitelist entry: %r' % d)
        check(b'203.0.114.68->' not in d and b'203.0.114.63->' not in d and b'10.2->' not in d and b'172.32->' not in d,
              'entries outside the networks: %r' % d)
        print('PASS import.spamdyke_files')
    except Exception as e:
        print('FAIL import.spamdyke_files: %s' % e)
        return
    # the result in use: mxguard-check, then the real smtpd
    try:
        env = {'PATH': '/usr/bin:/bin', 'QMAILHOME': out}
        r = subprocess.run([os.path.join(MXG_BIN, 'mxguard-check'), '--client', '192.0.2.66'], env=env,
                           capture_output=True)
        check(b'entry "192.0.2.66": deny' in r.stdout, 'check --client: %r' % r.stdout)
        r = subprocess.run([os.path.join(MXG_BIN, 'mxguard-check'), '--client', '198.51.100.9'], env=env,
                           capture_output=True)
        check(b'entry "198.51.100": deny' in r.stdout, 'check --client prefix: %r' % r.stdout)
        print('PASS import.check_client')
    except Exception as e:
        print('FAIL import.check_client: %s' % e)
    srv = Server('import')
    try:
        srv.start()
        cdb = open(os.path.join(out, 'control', 'instruct.cdb'), 'rb').read()
        bmf = open(os.path.join(out, 'control', 'badmailfrom')).read()
        srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n', 'instruct.cdb': cdb, 'badmailfrom': bmf})
        with Session(srv.port) as s:
            eq(s.reply(), banner(), 'banner')
            s.cmd('HELO c.test')
            # 127.0.0.1 is a relay client through the imported _ip_ entry
            queued(send_message(s, rcpts=('<far@elsewhere.test>',)))
            eq(s.cmd('MAIL FROM:<spammer@bad.test>'), b'250 ok\r\n', 'MAIL')
            eq(s.cmd('RCPT TO:<u@example.test>')[:4], b'553 ', 'RCPT from a sender-blacklist address')
            s.cmd('QUIT')
        srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'})
        with Session(srv.port) as s:
            s.reply()
            s.cmd('HELO c.test')
            s.cmd('MAIL FROM:<a@x.test>')
            eq(s.cmd('RCPT TO:<far@elsewhere.test>')[:4], b'553 ', 'without the import: no relaying')
            s.cmd('QUIT')
        srv.after_case()
        print('PASS import.sessions')
    except Exception as e:
        print('FAIL import.sessions: %s' % e)
    finally:
        srv.cleanup()


if __name__ == '__main__':
    try:
        main()
    finally:
        if not os.environ.get('MXT_KEEP'):
            shutil.rmtree(T, ignore_errors=True)
