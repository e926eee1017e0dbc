"""tests/lib/scanners.py - a real spamd (Debian's, shipped rules, --local) started by a test on
a free loopback port and stopped again; shared by test_spamd.py and test_content_postfix.py
(stop_scanner also stops test_clamd.py's clamd).
SPAMD holds proc, dir and addr ("127.0.0.1:PORT") of the one that runs."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

SPAMD = {}


def spamd_ping(addr):
    try:
        c = socket.create_connection(addr, timeout=2)
        c.sendall(b'PING SPAMC/1.5\r\n\r\n')
        r = c.recv(100)
        c.close()
        return r.startswith(b'SPAMD/1.5 0 PONG')
    except OSError:
        return False


def start_spamd():
    d = tempfile.mkdtemp(prefix='mxit-spamd.')
    os.chmod(d, 0o777)
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    cmd = ['spamd', '--listen=127.0.0.1:%d' % port, '--allowed-ips=127.0.0.1', '--local',
           '--nouser-config', '--helper-home-dir=%s' % d, '--min-children=1', '--max-children=1',
           '--pidfile=%s/spamd.pid' % d, '--syslog=%s/spamd.log' % d]
    if os.getuid() == 0:
        cmd.append('--username=nobody')
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    SPAMD.update(proc=p, dir=d, addr='127.0.0.1:%d' % port)
    deadline = time.time() + 60
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError('spamd exited %d' % p.returncode)
        if spamd_ping(('127.0.0.1', port)):
            return
        time.sleep(0.1)
    raise RuntimeError('spamd did not start')


def stop_scanner(state):
    """stops the scanner a start function recorded in state (proc, dir) and removes its dir"""
    p = state.get('proc')
    if p and p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if state.get('dir'):
        shutil.rmtree(state['dir'], ignore_errors=True)


def stop_spamd():
    stop_scanner(SPAMD)
