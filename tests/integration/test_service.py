#!/usr/bin/python3
"""Integration: make install into a DESTDIR, then the tree's service directories run from that
install under real supervision - service/daemontools under supervise (log/ under a second
supervise reading the pipe, as svscan does) and service/runit under runsv - on a loopback port:
a message is queued, the log gets multilog/svlogd stamps, a restart (svc -t / sv restart) while
a session is open neither cuts that session nor stops the service, and a run script refuses to
start on a configuration mxguard-check reports as broken."""
import os
import re
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

T = tempfile.mkdtemp(prefix='mxit-service.')
DEST = os.path.join(T, 'dest')
HOME = DEST + '/var/qmail'
QQ = os.path.join(T, 'qq')
PROCS = []


def penv():
    env = dict(os.environ, PATH='/usr/bin:/bin:/usr/sbin:/sbin')
    env.setdefault('ASAN_OPTIONS', 'detect_leaks=0:abort_on_error=0:exitcode=97')
    env.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1:halt_on_error=1:exitcode=98')
    return env


def wait_port(port, up=True, timeout=8):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
            if up:
                return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise AssertionError('port %d still %s after %d s' % (port, 'closed' if up else 'open', timeout))


def install():
    env = penv()
    if os.path.realpath(MXG_BIN) == os.path.realpath(MXG_SRC):
        cmd = ['make', '-s', 'install', 'DESTDIR=' + DEST]
    else:  # the sanitizer build: install.sh straight from its directory
        env.update(DESTDIR=DEST, QMAILHOME='/var/qmail', MANDIR='/var/qmail/man', SRC=MXG_SRC)
        cmd = [os.path.join(MXG_SRC, 'install.sh'), 'install']
    r = subprocess.run(cmd, cwd=MXG_BIN, env=env, capture_output=True, timeout=120)
    eq(r.returncode, 0, 'make install exit (%r)' % r.stderr[-500:])
    return r.stdout + r.stderr


def service_dir(kind, port):
    d = os.path.join(T, kind)
    shutil.copytree(os.path.join(MXG_SRC, 'service', kind), d, symlinks=True)
    env = {'IP': '127.0.0.1', 'PORT': str(port), 'QMAILHOME': HOME, 'SMTPDUSER': 'root',
           'SMTPDGROUP': 'root', 'LOCALNAME': LOCALNAME, 'QMAILQUEUE': RECORDER, 'QQ_DIR': QQ,
           'TCPRULES': os.path.join(T, 'none.cdb'), 'LOGUSER': 'nobody-mxguard-test'}
    if os.path.realpath(MXG_BIN) != os.path.realpath(MXG_SRC):
        env['SOFTLIMIT'] = '100000000000000'  # ASan reserves terabytes of address space for its shadow
    for k, v in env.items():
        with open(os.path.join(d, 'env', k), 'w') as f:
            f.write(v + '\n')
    return d


def one_message(port, rcpt='<u@example.test>'):
    with Session(port) as s:
        eq(s.reply(), banner(), 'banner')
        s.cmd('HELO c.test')
        queued(send_message(s, rcpts=(rcpt,)))
        eq(s.cmd('QUIT')[:3], b'221', 'QUIT')


def stored():
    return sorted(f for f in os.listdir(QQ) if f.endswith('.env'))


def restart_while_open(port, restart, svdir, pid_of):
    """a session is open across the restart: it still queues its message; a new session
    reaches the new server"""
    before = len(stored())
    old = pid_of()
    s = Session(port, timeout=10)
    eq(s.reply(), banner(), 'banner')
    s.cmd('HELO c.test')
    eq(s.cmd('MAIL FROM:<a@x.test>'), b'250 ok\r\n', 'MAIL')
    restart()
    deadline = time.time() + 8
    while time.time() < deadline and pid_of() in (old, None):
        time.sleep(0.05)
    check(pid_of() not in (old, None), 'server pid did not change after the restart (%s)' % old)
    wait_port(port)
    eq(s.cmd('RCPT TO:<u@example.test>'), b'250 ok\r\n', 'RCPT after the restart')
    eq(s.cmd('DATA'), b'354 go ahead\r\n', 'DATA after the restart')
    s.send(b'Subject: across\r\n\r\nrestart\r\n.\r\n')
    queued(s.reply())
    s.cmd('QUIT')
    s.close()
    one_message(port)
    eq(len(stored()), before + 2, 'messages stored across the restart')


def logtext(d, timeout=5, accepts=0):
    """the log's current file, once it holds that many accept lines (or the timeout passed)"""
    p = os.path.join(d, 'log', 'main', 'current')
    deadline = time.time() + timeout
    while True:
        txt = b''
        if os.path.exists(p):
            with open(p, 'rb') as f:
                txt = f.read()
        if txt.count(b' event=accept ') >= accepts or time.time() >= deadline:
            return txt
        time.sleep(0.05)


def svstat_pid(d):
    r = subprocess.run(['svstat', d], capture_output=True)
    m = re.search(rb'up \(pid (\d+)\)', r.stdout)
    return int(m.group(1)) if m else None


def sv_pid(d):
    try:
        with open(os.path.join(d, 'supervise', 'pid')) as f:
            x = f.read().strip()
        return int(x) if x else None
    except (OSError, ValueError):
        return None


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def daemontools():
    port = free_port()
    d = service_dir('daemontools', port)
    env = penv()
    svc = subprocess.Popen(['supervise', d], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                           env=env, start_new_session=True)
    log = subprocess.Popen(['supervise', os.path.join(d, 'log')], stdin=svc.stdout,
                           stdout=subprocess.DEVNULL, env=env, start_new_session=True)
    svc.stdout.close()
    PROCS.extend([svc, log])
    try:
        wait_port(port)
        one_message(port)
        restart_while_open(port, lambda: subprocess.run(['svc', '-t', d], check=True), d,
                           lambda: svstat_pid(d))
        txt = logtext(d, accepts=3)
        lines = txt.splitlines()
        check(lines and all(re.match(rb'@4000[0-9a-f]{20} ', l) for l in lines),
              'multilog lines without TAI64N stamps: %r' % txt[:300])
        eq(txt.count(b' event=accept '), 3, 'accept lines in the multilog log')
        # a broken configuration: the run script refuses, the log says why
        with open(os.path.join(HOME, 'control', 'morercpthosts.cdb'), 'wb') as f:
            f.write(b'broken')
        subprocess.run(['svc', '-t', d], check=True)
        deadline = time.time() + 8
        while time.time() < deadline and b'not starting' not in logtext(d, 0):
            time.sleep(0.1)
        txt = logtext(d, 0)
        check(b'morercpthosts.cdb: error: broken cdb' in txt and b'not starting' in txt,
              'no refusal in the log: %r' % txt[-400:])
        wait_port(port, up=False)
        os.unlink(os.path.join(HOME, 'control', 'morercpthosts.cdb'))
        print('PASS service.daemontools')
    finally:
        subprocess.run(['svc', '-dx', d], capture_output=True)
        subprocess.run(['svc', '-dx', os.path.join(d, 'log')], capture_output=True)
        for p in (svc, log):
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                stop(p)


def runit():
    port = free_port()
    d = service_dir('runit', port)
    env = penv()
    rs = subprocess.Popen(['runsv', d], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          env=env, start_new_session=True)
    PROCS.append(rs)
    try:
        wait_port(port)
        one_message(port)
        # the peers entry for 127.0.0.1 (RELAYCLIENT) went through ipsvd-cdb and tcpsvd
        one_message(port, rcpt='<far@elsewhere.test>')
        restart_while_open(port, lambda: subprocess.run(['sv', '-w', '5', 'restart', d],
                                                        capture_output=True), d,
                           lambda: sv_pid(d))
        txt = logtext(d, accepts=4)
        lines = txt.splitlines()
        check(lines and all(re.match(rb'\d{4}-\d\d-\d\d_\d\d:\d\d:\d\d\.\d{5} ', l) for l in lines),
              'svlogd lines without -tt stamps: %r' % txt[:300])
        eq(txt.count(b' event=accept '), 4, 'accept lines in the svlogd log')
        print('PASS service.runit')
    finally:
        subprocess.run(['sv', 'exit', d], capture_output=True)
        subprocess.run(['sv', 'exit', os.path.join(d, 'log')], capture_output=True)
        try:
            rs.wait(8)
        except subprocess.TimeoutExpired:
            stop(rs)


def main():
    os.makedirs(QQ)
    try:
        out = install()
        for p in ('mxguard-smtpd', 'mxguard-check', 'mxguard-stats', 'mxguard-users', 'mxguard-ossl.so'):
            st = os.stat(os.path.join(HOME, 'bin', p))
            eq(oct(st.st_mode & 0o7777), '0o755', 'mode of bin/' + p)
        check(os.path.exists(HOME + '/man/man8/mxguard-smtpd.8'), 'man page not installed')
        check(os.path.isdir(HOME + '/mxguard/state'), 'state directory not made')
        r = subprocess.run([HOME + '/bin/mxguard-smtpd', '-V'], capture_output=True)
        match(rb'mxguard-smtpd \d+\.\d+\S*\n', r.stdout, 'installed mxguard-smtpd -V')
        os.makedirs(HOME + '/control', exist_ok=True)
        with open(HOME + '/control/me', 'w') as f:
            f.write(ME + '\n')
        with open(HOME + '/control/rcpthosts', 'w') as f:
            f.write('example.test\n')
        # a second install keeps the configuration
        out = install()
        check(b'no findings' in out, 'install did not run mxguard-check: %r' % out[-300:])
        with open(HOME + '/control/rcpthosts') as f:
            eq(f.read(), 'example.test\n', 'control/rcpthosts after a second install')
        print('PASS service.install')
    except Exception as e:
        print('FAIL service.install: %s' % e)
        return
    for t in (daemontools, runit):
        try:
            t()
        except Exception as e:
            print('FAIL service.%s: %s' % (t.__name__, str(e).replace('\n', ' ')[:1500]))
    try:
        env = dict(os.environ, PATH='/usr/bin:/bin')
        r = subprocess.run(['make', '-s', '-f', os.path.join(MXG_SRC, 'Makefile'), 'SRC=' + MXG_SRC,
                            'uninstall', 'DESTDIR=' + DEST], cwd=MXG_BIN, env=env,
                           capture_output=True) if os.path.realpath(MXG_BIN) == os.path.realpath(MXG_SRC) \
            else subprocess.run([os.path.join(MXG_SRC, 'install.sh'), 'uninstall'], cwd=MXG_BIN,
                                env=dict(env, DESTDIR=DEST, QMAILHOME='/var/qmail',
                                         MANDIR='/var/qmail/man', SRC=MXG_SRC), capture_output=True)
        eq(r.returncode, 0, 'uninstall exit')
        check(not os.path.exists(HOME + '/bin/mxguard-smtpd'), 'uninstall left bin/mxguard-smtpd')
        check(not os.path.exists(HOME + '/bin/mxguard-ossl.so'), 'uninstall left bin/mxguard-ossl.so')
        check(not os.path.exists(HOME + '/man/man8/mxguard-smtpd.8'), 'uninstall left the man page')
        check(os.path.exists(HOME + '/control/rcpthosts'), 'uninstall removed the configuration')
        print('PASS service.uninstall')
    except Exception as e:
        print('FAIL service.uninstall: %s' % e)


if __name__ == '__main__':
    try:
        main()
    finally:
        for p in PROCS:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except OSError:
                    pass
        if not os.environ.get('MXT_KEEP'):
            shutil.rmtree(T, ignore_errors=True)
