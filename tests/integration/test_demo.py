#!/usr/bin/python3
"""Integration: the demo (tests/demo, what make demo runs; issue 12 item 12) on a terminal: it
listens on MXG_DEMO_PORT, delivers user@demo.test, runs the sessions as an unprivileged user
when started as root, and Ctrl-C ends it with status 0 (so make demo ends with 0 too)."""
import os
import pty
import select
import shutil
import signal
import socket
import sys
import tempfile
import time

SRC = os.environ.get('MXG_SRC') or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def report(ok, name, why=''):
    print('PASS demo.%s' % name if ok else 'FAIL demo.%s: %s' % (name, why))
    sys.stdout.flush()


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def read_until(fd, text, timeout):
    out, end = b'', time.time() + timeout
    while text not in out and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                break
            if not d:
                break
            out += d
    return out


def session_uid(tcpserver_pid):
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            st = open('/proc/%s/status' % p).read()
        except OSError:
            continue
        f = dict(l.split(':', 1) for l in st.splitlines() if ':' in l)
        if f.get('Name', '').strip() == 'mxguard-smtpd' and \
                f.get('PPid', '').strip() == str(tcpserver_pid):
            return int(f['Uid'].split()[0])
    return None


def main():
    if not os.access(os.path.join(SRC, 'mxguard-smtpd'), os.X_OK):
        report(False, 'start', 'mxguard-smtpd is not built in %s' % SRC)
        return
    home = tempfile.mkdtemp(prefix='mxit-demo.')
    os.chmod(home, 0o755)
    port = free_port()
    env = dict(os.environ, MXG_DEMO_PORT=str(port), MXG_DEMO_HOME=home, PATH='/usr/bin:/bin')
    pid, fd = pty.fork()
    if pid == 0:
        os.execve('/bin/sh', ['sh', os.path.join(SRC, 'tests', 'demo')], env)
    try:
        out = read_until(fd, b'Stop with Ctrl-C', 15)
        report(b'Stop with Ctrl-C' in out, 'starts', out[-300:])
        time.sleep(0.3)
        s = socket.create_connection(('127.0.0.1', port), 5)
        f = s.makefile('rb')
        banner = f.readline()
        report(banner == b'220 mx.demo.test ESMTP\r\n', 'listens_on_MXG_DEMO_PORT', banner)
        uid = session_uid(int(open(os.path.join(home, 'tcpserver.pid')).read()))
        if os.geteuid() == 0:
            report(uid is not None and uid != 0, 'sessions_not_root', 'session uid %r' % uid)
        replies = []
        for c in [b'HELO x', b'MAIL FROM:<you@example.test>', b'RCPT TO:<user@demo.test>', b'DATA']:
            s.sendall(c + b'\r\n')
            replies.append(f.readline()[:3])
        s.sendall(b'Subject: demo\r\n\r\nhi\r\n.\r\nQUIT\r\n')
        replies.append(f.readline()[:3])
        s.close()
        report(replies == [b'250', b'250', b'250', b'354', b'250'], 'delivers', replies)
        time.sleep(0.2)
        report(len(os.listdir(os.path.join(home, 'Maildir', 'new'))) == 1, 'mail_in_maildir')
        os.write(fd, b'\x03')
        end, status = time.time() + 10, None
        while time.time() < end:
            r, st = os.waitpid(pid, os.WNOHANG)
            if r:
                status = st
                break
            read_until(fd, b'\0', 0.1)
        report(status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
               'ctrl_c_ends_with_status_0', 'wait status %r' % status)
        try:
            socket.create_connection(('127.0.0.1', port), 1).close()
            report(False, 'tcpserver_stopped', 'port %d still answers' % port)
        except OSError:
            report(True, 'tcpserver_stopped')
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
        try:
            os.kill(int(open(os.path.join(home, 'tcpserver.pid')).read()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        os.close(fd)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == '__main__':
    main()
