#!/usr/bin/python3
"""Integration: per-recipient content-policy classes (CONTENTCLASS, content.c) with a real
Postfix as the sending MTA. A private Postfix instance (Debian's postfix: its own
config_directory, queue_directory and data_directory in a temporary directory, no smtpd, no
listener) relays through its smtp client to the real mxguard-smtpd under the real tcpserver
(relayhost = [127.0.0.1]:PORT); a real spamd (Debian's shipped rules, --local) scans on a
loopback port. The recipients' settings come from the rules engine: control/rules.d/
r2@example.test says `set SPAMD=... SPAMTAG=5`, r1 and r3 have no content settings.

One message with the GTUBE string, injected with Postfix's sendmail for r1, r2 and r3:
  - with CONTENTCLASS=1, r2 gets 452 4.5.3 in the first transaction (Postfix logs it as
    deferred), r1 and r3 are queued together untagged; Postfix's queue manager retries r2
    (short backoff times in this instance; `postqueue -f` as a fallback kick) and r2 alone
    is queued in a second transaction, tagged by spamd (X-Spam-Flag: YES after our Received
    line). Every copy carries the same message; nothing is bounced, Postfix's queue is empty.
  - without CONTENTCLASS (the control case): one transaction for all three, and r2's tag
    setting applies to everybody's copy (the merge rule: the lowest tag threshold).
Postfix 3.7 does not retry a 452'd recipient in the same connection: with its default
minimal_backoff_time the second transaction would come at the next deferred-queue run."""
import os
import pwd
import grp
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403
from scanners import SPAMD, start_spamd, stop_spamd  # noqa: F401

RULES = os.path.join(MXG_BIN, 'mxguard-rules')
GTUBE = b'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'
SENDER = 'a@sender.test'
R1, R2, R3 = 'r1@example.test', 'r2@example.test', 'r3@example.test'
PF = {}

MASTER_CF = '''\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
'''


# ---- the private Postfix instance ------------------------------------------------------

def pf_env():
    return {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL': 'C'}


def pf_run(*args, stdin=None, timeout=30):
    p = subprocess.run(list(args), input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, env=pf_env())
    return p.returncode, p.stdout


def pf_maillog():
    try:
        with open(os.path.join(PF['dir'], 'maillog'), 'rb') as f:
            return f.read()
    except FileNotFoundError:
        return b''


def start_postfix(port):
    """a Postfix instance relaying everything to the smtpd on port; no smtpd of its own"""
    d = tempfile.mkdtemp(prefix='mxit-postfix.')
    os.chmod(d, 0o755)
    PF['dir'] = d
    conf, queue, data = (os.path.join(d, x) for x in ('conf', 'queue', 'data'))
    for x in (conf, queue, data):
        os.mkdir(x)
    os.chown(data, pwd.getpwnam('postfix').pw_uid, -1)
    with open(os.path.join(conf, 'main.cf'), 'w') as f:
        f.write('\n'.join([
            'compatibility_level = 3.6',
            'queue_directory = %s' % queue,
            'data_directory = %s' % data,
            'mail_owner = postfix',
            'setgid_group = postdrop',
            'myhostname = sender.postfix.test',
            'mydomain = postfix.test',
            'myorigin = $myhostname',
            'mydestination =',
            'inet_interfaces = loopback-only',
            'inet_protocols = ipv4',
            'relayhost = [127.0.0.1]:%d' % port,
            'smtp_tls_security_level = none',
            'smtp_dns_support_level = disabled',
            'default_destination_recipient_limit = 1000',
            'smtp_destination_recipient_limit = 1000',
            # retry a deferred recipient soon (the defaults are 300 s)
            'queue_run_delay = 1s',
            'minimal_backoff_time = 1s',
            'maximal_backoff_time = 2s',
            'maillog_file = %s' % os.path.join(d, 'maillog'),
            'maillog_file_prefixes = %s' % d,
            'alias_maps =',
            'alias_database =',
            'local_recipient_maps =',
            'biff = no',
            '']))
    with open(os.path.join(conf, 'master.cf'), 'w') as f:
        f.write(MASTER_CF)
    PF['conf'] = conf
    PF['queue'] = queue
    rc, out = pf_run('postfix', '-c', conf, 'start')
    if rc != 0:
        raise RuntimeError('postfix start exit %d: %r %r' % (rc, out[-300:], pf_maillog()[-600:]))
    # the master is up when its queue manager answers: postqueue -p talks to showq
    deadline = time.time() + 15
    while time.time() < deadline:
        rc, out = pf_run('postqueue', '-c', conf, '-p')
        if rc == 0:
            return
        time.sleep(0.2)
    raise RuntimeError('postfix did not come up: %r %r' % (out[-300:], pf_maillog()[-600:]))


def master_pid():
    try:
        with open(os.path.join(PF['queue'], 'pid', 'master.pid')) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_postfix():
    if not PF.get('conf'):
        return
    pid = master_pid()
    pf_run('postfix', '-c', PF['conf'], 'stop')
    deadline = time.time() + 10
    while pid and os.path.exists('/proc/%d' % pid) and time.time() < deadline:
        time.sleep(0.1)
    if pid and os.path.exists('/proc/%d' % pid) and b'master' in (open('/proc/%d/cmdline' % pid, 'rb').read()):
        os.kill(pid, 9)  # only the master this file started
    if os.environ.get('MXT_KEEP'):
        sys.stderr.write('kept %s\n' % PF['dir'])
    else:
        shutil.rmtree(PF['dir'], ignore_errors=True)
    PF.clear()


def pf_queue_empty():
    rc, out = pf_run('postqueue', '-c', PF['conf'], '-p')
    return rc == 0 and b'Mail queue is empty' in out, out


# ---- the cases -------------------------------------------------------------------------

def setup(srv, contentclass):
    """r2's content settings come from a rules file; r1 and r3 have none"""
    if not PF:
        start_postfix(srv.port)
    empty, q = pf_queue_empty()
    if not empty:  # left over from a failed case: it must not reach this one
        pf_run('postsuper', '-c', PF['conf'], '-d', 'ALL')
    env = {'CONTENTCLASS': '1'} if contentclass else {}
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n', 'rules': '# global\n'},
                  files={'control/rules.d/%s' % R2: 'set SPAMD=%s SPAMTAG=5\n' % SPAMD['addr']},
                  env=env)
    e = {'PATH': '/usr/bin:/bin', 'QMAILHOME': srv.home}
    for k in ('ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS'):
        if k in os.environ:
            e[k] = os.environ[k]
    e.setdefault('ASAN_OPTIONS', 'detect_leaks=0')
    p = subprocess.run([RULES, 'compile'], env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    eq(p.returncode, 0, 'mxguard-rules compile exit (%r)' % p.stdout)
    PF['logoff'] = len(pf_maillog())


def inject(subject):
    msg = b'From: <%s>\nTo: r1, r2, r3\nSubject: %s\n\nBuy now.\n%s\n' % (b(SENDER), b(subject), GTUBE)
    rc, out = pf_run('sendmail', '-C', PF['conf'], '-f', SENDER, R1, R2, R3, stdin=msg)
    eq(rc, 0, 'sendmail exit (%r)' % out)
    return msg


def wait_delivered(srv, timeout=45):
    """until the recorder stored transactions for all three recipients and Postfix's queue
    is empty; a `postqueue -f` every 5 s in case the queue manager is slow"""
    deadline = time.time() + timeout
    kick = time.time() + 5
    while True:
        msgs = srv.messages()
        empty, q = pf_queue_empty()
        if sum(m['env'].count(b'\0T') for m in msgs) >= 3 and empty:
            return msgs
        if time.time() > deadline:
            raise AssertionError('after %ds: %d transactions stored (%r), Postfix queue %r, '
                                 'maillog %r' % (timeout, len(msgs), [m['env'] for m in msgs],
                                                 q[-400:], pf_maillog()[PF['logoff']:][-1500:]))
        if time.time() > kick:
            pf_run('postqueue', '-c', PF['conf'], '-f')
            kick = time.time() + 5
        time.sleep(0.2)


def headers_and_body(msg):
    """after our Received line: (header block, body)"""
    rest = split_received(msg)[1]
    i = rest.index(b'\n\n')
    return rest[:i + 1], rest[i + 2:]


def spam_fields(head):
    return re.findall(rb'^X-Spam-[A-Za-z]+:', head, re.M)


@case
def test_contentclass_splits_through_postfix(srv):
    setup(srv, True)
    inject('mixed policy')
    msgs = wait_delivered(srv)
    eq([m['env'] for m in msgs], [envelope(SENDER, R1, R3), envelope(SENDER, R2)],
       'envelopes (r1+r3 first, r2 alone after)')
    h13, b13 = headers_and_body(msgs[0]['msg'])
    h2, b2 = headers_and_body(msgs[1]['msg'])
    # each copy with its own policy: r2's scanned and tagged, r1's and r3's untouched
    eq(spam_fields(h13), [], 'X-Spam fields in the r1+r3 copy')
    m = match(rb'X-Spam-Flag: YES\nX-Spam-Score: (\d+\.\d)\nX-Spam-Status: Yes, score=\1 '
              rb'tag=5\.0(\n\t[^\n]*)?\nReceived: by sender\.postfix\.test .*', h2, 'r2 copy headers')
    check(float(m.group(1)) >= 5 and m.group(2) and b'GTUBE' in m.group(2),
          'spamd score %r, tests %r' % (m.group(1), m.group(2)))
    eq(b2, b13, 'the same body in both copies')
    eq(re.findall(rb'^Message-Id: .*$', h2, re.M), re.findall(rb'^Message-Id: .*$', h13, re.M),
       'the same Message-Id in both copies')
    check(b'GTUBE' in b2, 'body: %r' % b2)
    # our log: the 452 4.5.3 for r2 in the session that queued r1+r3, then r2 alone, scanned
    lines = [l for l in srv.log_lines() if l.startswith(b'pid=')]
    defer = events(lines, 'defer')
    eq([(d['code'], d['esc'], d['reason'], d['to']) for d in defer],
       [(b'452', b'4.5.3', b'contentclass', b'<%s>' % b(R2))], 'defer events')
    acc = events(lines, 'accept')
    eq([(a['pid'], a['nrcpt']) for a in acc], [(defer[0]['pid'], b'2'), (acc[-1]['pid'], b'1')],
       'accepted transactions (the first in the session that deferred r2)')
    cont = events(lines, 'content')
    eq([(c['pid'], c.get('spamd')) for c in cont], [(acc[1]['pid'], b'ok')],
       'content events: spamd only for r2\'s transaction')
    # Postfix's view: r2 deferred with our 452, then sent; nothing bounced
    log = pf_maillog()[PF['logoff']:]
    check(re.search(rb'to=<r2@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*dsn=4\.5\.3, '
                    rb'status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 452 4\.5\.3 '
                    rb'different content policy', log), 'Postfix log has no 452 for r2: %r' % log[-1500:])
    for r in (R1, R2, R3):
        eq(len(re.findall(rb'to=<' + re.escape(b(r)) + rb'>, relay=127[^\n]*status=sent', log)), 1,
           'Postfix: %s sent once' % r)
    check(b'status=bounced' not in log, 'Postfix bounced: %r' % log[-1500:])


@case
def test_without_contentclass_one_transaction(srv):
    # the control case: one transaction for all three, r2's tag setting reaches every copy
    setup(srv, False)
    inject('one policy for all')
    msgs = wait_delivered(srv)
    eq([m['env'] for m in msgs], [envelope(SENDER, R1, R2, R3)], 'envelopes')
    h, body = headers_and_body(msgs[0]['msg'])
    eq(spam_fields(h), [b'X-Spam-Flag:', b'X-Spam-Score:', b'X-Spam-Status:'], 'X-Spam fields')
    lines = [l for l in srv.log_lines() if l.startswith(b'pid=')]
    eq(events(lines, 'defer'), [], 'defer events')
    eq([a['nrcpt'] for a in events(lines, 'accept')], [b'3'], 'accepted transactions')
    log = pf_maillog()[PF['logoff']:]
    check(b'4.5.3' not in log and b'status=deferred' not in log, 'Postfix deferred: %r' % log[-1500:])
    eq(len(re.findall(rb'relay=127[^\n]*status=sent', log)), 3, 'Postfix: three recipients sent')


if __name__ == '__main__':
    missing = [t for t in ('postfix', 'sendmail', 'postqueue') if not shutil.which(t, path='/usr/sbin:/usr/bin')]
    if missing or not shutil.which('spamd'):
        print('FAIL content_postfix.start: %s not installed (install-deps: postfix spamd spamassassin)'
              % ' '.join(missing or ['spamd']))
        sys.exit(0)
    try:
        pwd.getpwnam('postfix')
        grp.getgrnam('postdrop')
    except KeyError:
        print('FAIL content_postfix.start: the postfix user or postdrop group is missing')
        sys.exit(0)
    if os.getuid() != 0:
        print('FAIL content_postfix.start: a private Postfix instance needs root (mail_owner postfix)')
        sys.exit(0)
    try:
        start_spamd()
    except Exception as e:
        print('FAIL content_postfix.start: %s' % e)
        stop_spamd()
        sys.exit(0)
    try:
        run('content_postfix')
    except Exception as e:
        print('FAIL content_postfix.start: %s' % e)
    finally:
        stop_postfix()
        stop_spamd()
