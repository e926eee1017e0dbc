#!/usr/bin/python3
"""Integration: the usual qmail-ldap runit service works as written - runsv runs
"chpst -m 3000000 tcpsvd -x control/instruct.cdb ... mxguard-smtpd" with svlogd as its log
service. Under that 3 MB address-space limit a plain session delivers (EHLO, MAIL, RCPT,
DATA to the qmail-queue recorder), the instruct cdb is applied (by tcpsvd and by us), the
log lines reach svlogd's current file, and the session ran with the limit in force."""
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import SMTPD, RECORDER, free_port  # noqa: E402

results = []


def report(ok, name, why=''):
    print('PASS runsv.%s' % name if ok else 'FAIL runsv.%s: %s' % (name, why))
    sys.stdout.flush()
    results.append(ok)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, mode)


def main():
    for tool in ('runsv', 'chpst', 'svlogd', 'tcpsvd', 'ipsvd-cdb'):
        if not shutil.which(tool):
            report(False, 'tools', '%s is not installed (make deps)' % tool)
            return
    tmp = tempfile.mkdtemp(prefix='mxit-runsv.')
    os.chmod(tmp, 0o755)
    home, svc, qq = os.path.join(tmp, 'qmail'), os.path.join(tmp, 'smtpd'), os.path.join(tmp, 'queue')
    os.makedirs(qq)
    port = free_port()
    # a sanitizer build reserves terabytes of shadow memory: it runs the same service without
    # the limit, and the limit is checked against the plain build only
    sanitizer = os.environ.get('MXG_LABEL') == 'asan' or os.path.basename(
        os.path.dirname(SMTPD)) == 'san'
    limit = '' if sanitizer else 'chpst -m 3000000 '
    write(home + '/control/me', 'mx.test\n')
    write(home + '/control/rcpthosts', 'example.test\n')
    write(tmp + '/peers/127.0.0.1', '+RELAYCLIENT=\n+MXG_PROBE=1\n')
    subprocess.run(['ipsvd-cdb', home + '/control/instruct.cdb', home + '/control/instruct.tmp',
                    tmp + '/peers'], check=True)
    # a probe qmail-queue: records the limit and the instruct variable, then the recorder
    # (shell builtins only: dynamically linked tools like grep do not start under 3 MB)
    write(tmp + '/qq', '#!/bin/sh\nwhile read -r l; do case "$l" in "Max address space"*) '
          'echo "$l" >"$QQ_DIR/limits";; esac; done </proc/self/limits\n'
          'echo "MXG_PROBE=$MXG_PROBE" >>"$QQ_DIR/limits"\nexec %s\n' % RECORDER, 0o755)
    san = ''.join(' %s=%s' % (k, os.environ[k]) for k in ('ASAN_OPTIONS', 'UBSAN_OPTIONS')
                  if k in os.environ)
    write(svc + '/run', '#!/bin/sh\nexec 2>&1\n'
          'exec env - PATH=/usr/bin:/bin' + san + ' QMAILHOME=%s QMAILQUEUE=%s/qq QQ_DIR=%s \\\n'
          '  %stcpsvd -v -x %s/control/instruct.cdb -l mx.example.test '
          '127.0.0.1 %d %s\n' % (home, tmp, qq, limit, home, port, SMTPD), 0o755)
    write(svc + '/log/run', '#!/bin/sh\nexec svlogd -tt ./main\n', 0o755)
    os.makedirs(svc + '/log/main')
    p = subprocess.Popen(['runsv', svc], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(('127.0.0.1', port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            report(False, 'start', 'tcpsvd did not listen under runsv')
            return
        try:
            with smtplib.SMTP('127.0.0.1', port, timeout=10) as c:
                code, _ = c.ehlo('client.test')
                report(code == 250, 'ehlo', 'EHLO %d' % code)
                refused = c.sendmail('a@x.test', ['u@example.test', 'v@remote.test'],
                                     b'Subject: t\r\n\r\nhello\r\n')
                report(not refused, 'plain mail', repr(refused))
        except Exception as e:
            report(False, 'plain mail', '%s: %s' % (type(e).__name__, e))
        msgs = [f for f in os.listdir(qq) if f.endswith('.env')]
        report(len(msgs) == 1, 'stored by qmail-queue', repr(os.listdir(qq)))
        if msgs:
            env = open(os.path.join(qq, msgs[0]), 'rb').read()
            report(b'Tu@example.test\0' in env and b'Tv@remote.test\0' in env,
                   'relay through the instruct cdb', repr(env))
        try:
            lim = open(os.path.join(qq, 'limits')).read()
        except FileNotFoundError:
            lim = ''
        if not sanitizer:
            report('3000000' in lim, 'chpst -m 3000000 in force', repr(lim))
        report('MXG_PROBE=1' in lim, 'instruct variable reaches qmail-queue', repr(lim))
        log = ''
        deadline = time.time() + 5
        while time.time() < deadline and 'event=accept' not in log:
            time.sleep(0.05)
            try:
                log = open(svc + '/log/main/current').read()
            except FileNotFoundError:
                pass
        report('event=accept' in log, 'svlogd gets the log', repr(log[-400:]))
        report(not any(x in log for x in ('Sanitizer', 'runtime error:', 'out of memory')),
               'no memory trouble logged', repr(log[-400:]))
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(8)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


main()
