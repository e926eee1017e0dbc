#!/usr/bin/python3
"""Integration: mxguard-front, the persistent listener in place of tcpserver. Everything real:
the front on a loopback port, the real mxguard-smtpd as its program (the harness's per-
connection script, the same one the harness's real tcpserver runs), the real tcpserver, tcprules,
ipsvd-cdb and dnsmasq, daemontools' supervise for the restart. Clients connect from 127.0.0.1,
127.0.0.2, ... (Linux routes all of 127/8 on lo). Children are counted by a wrapper program
that appends a line to a file before it execs the real program."""
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

FRONT = os.path.join(MXG_BIN, 'mxguard-front')
T = tempfile.mkdtemp(prefix='mxit-frontx.')
COUNT = os.path.join(T, 'children')
WRAP = os.path.join(T, 'wrap')
DNS = {}


def penv(srv, extra=None):
    env = {'PATH': '/usr/bin:/bin:/usr/sbin:/sbin', 'COUNTFILE': COUNT}
    for k in ('ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS'):
        if k in os.environ:
            env[k] = os.environ[k]
    env.setdefault('ASAN_OPTIONS', 'detect_leaks=0:abort_on_error=0:exitcode=97')
    env.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1:halt_on_error=1:exitcode=98')
    env['QMAILHOME'] = srv.home
    env.update(extra or {})
    return env


class Listener:
    """mxguard-front (or the real tcpserver) on a free loopback port; its stderr in a file"""

    def __init__(self, srv, args, prog, env=None, tcpserver=False, host='127.0.0.1'):
        self.log = os.path.join(T, 'front.%d.log' % time.time_ns())
        ready = b'status: 0/' if tcpserver else b'status=listening'
        if tcpserver and '-v' not in args:
            args = ['-v'] + args
        for attempt in range(5):
            self.port = free_port()
            with open(self.log, 'wb') as lf:
                cmd = ['tcpserver' if tcpserver else FRONT] + args + [host, str(self.port)] + prog
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=lf, env=penv(srv, env), cwd=T)
            deadline = time.time() + 5
            while time.time() < deadline and self.proc.poll() is None:
                if ready in self.text():
                    return
                time.sleep(0.01)
            self.stop()
        raise AssertionError('listener did not start: %r' % self.text()[-300:])

    def text(self):
        with open(self.log, 'rb') as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, etype, *a):
        self.stop()
        txt = self.text()
        for marker in (b'AddressSanitizer', b'runtime error:', b'LeakSanitizer'):
            i = txt.find(marker)
            if i >= 0 and etype is None:
                raise AssertionError('sanitizer: %r' % txt[max(0, i - 20):i + 300])


class From(Session):
    """a raw client connecting from a chosen loopback address"""

    def __init__(self, port, src='127.0.0.1', timeout=5):
        self.sock = socket.socket()
        self.sock.bind((src, 0))
        self.sock.settimeout(timeout)
        self.sock.connect(('127.0.0.1', port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b''
        self.eof = False


def children():
    try:
        with open(COUNT) as f:
            return len(f.read().split())
    except FileNotFoundError:
        return 0


def reset_children():
    with open(COUNT, 'w'):
        pass


def smtpd(srv):
    """the harness's per-connection script (the smtpd with the case's environment) behind the
    child-counting wrapper"""
    return [WRAP, '/bin/sh', srv.runscript]


def norm(x):
    return re.sub(rb'250 ok \d+ qp \d+', b'250 ok T qp P', x)


def whole_session(port, src='127.0.0.1'):
    """banner, EHLO, MAIL, RCPT, DATA, QUIT: every byte the server sent, and the time the
    banner took"""
    t0 = time.time()
    s = From(port, src)
    got = s.reply()
    t = time.time() - t0
    got += s.cmd('EHLO client.test')
    got += s.cmd('MAIL FROM:<a@x.test>')
    got += s.cmd('RCPT TO:<u@example.test>')
    got += s.cmd('DATA')
    s.send(b'Subject: t\r\n\r\nhello\r\n.\r\n')
    got += s.reply()
    got += s.cmd('QUIT')
    got += s.read_until_close()
    s.close()
    return got, t


# ---------------------------------------------------------------------------------- cases

@case
def test_session_identical_to_tcpserver(srv):
    reset_children()
    with Listener(srv, ['-R', '-H', '-l', LOCALNAME], smtpd(srv)) as f:
        a, _ = whole_session(f.port)
    b_, _ = whole_session(srv.port)
    eq(norm(a), norm(b_), 'the session through the front vs. under tcpserver')
    queued(re.search(rb'250 ok \d+ qp \d+\r\n', a).group(0))
    m = srv.stored(2)
    ra, rest_a = split_received(m[0]['msg'])
    rb_, rest_b = split_received(m[1]['msg'])
    eq(rest_a, rest_b, 'the stored messages after Received')
    eq(re.sub(rb';.*', b'', ra), re.sub(rb';.*', b'', rb_), 'the Received lines without the date')
    eq(m[0]['env'], m[1]['env'], 'the envelopes')
    eq(children(), 1, 'children of the front')


@case
def test_environment_identical_to_tcpserver(srv):
    envs = []
    for ts in (False, True):
        with Listener(srv, ['-R', '-H', '-l', 'local.test'], ['/usr/bin/env'],
                      env={'TCPREMOTEHOST': 'stale', 'TCPREMOTEINFO': 'stale', 'FOO': 'x'},
                      tcpserver=ts) as f:
            s = From(f.port)
            out = s.read_until_close()
            lport, rport = f.port, s.sock.getsockname()[1]
            s.close()
        e = dict(l.split('=', 1) for l in out.decode().splitlines())
        eq(e.get('TCPLOCALPORT'), str(lport), 'TCPLOCALPORT')
        eq(e.get('TCPREMOTEPORT'), str(rport), 'TCPREMOTEPORT')
        del e['TCPLOCALPORT'], e['TCPREMOTEPORT']
        envs.append(e)
    eq(envs[0], envs[1], 'the environment of the front\'s child vs. tcpserver\'s')
    check('TCPREMOTEHOST' not in envs[0] and envs[0]['PROTO'] == 'TCP' and
          envs[0]['TCPLOCALHOST'] == 'local.test', 'tcpserver variables: %r' % envs[0])


@case
def test_ipv6_and_privileges(srv):
    prog = ['/bin/sh', '-c', 'echo "$TCPLOCALIP $TCPREMOTEIP $(id -u) $(id -g)"']
    with Listener(srv, [], prog, host='::1') as f:
        s = socket.create_connection(('::1', f.port), timeout=5)
        out = b''
        while True:
            d = s.recv(100)
            if not d:
                break
            out += d
        s.close()
        eq(out, b'::1 ::1 %d %d\n' % (os.getuid(), os.getgid()), 'IPv6 client')
    if os.getuid() == 0:
        with Listener(srv, ['-u', '65534', '-g', '65533'], prog) as f:
            with From(f.port) as s:
                eq(s.read_until_close(), b'127.0.0.1 127.0.0.1 65534 65533\n', '-u and -g')
        with Listener(srv, ['-U'], prog, env={'UID': '65532', 'GID': '65531'}) as f:
            with From(f.port) as s:
                eq(s.read_until_close(), b'127.0.0.1 127.0.0.1 65532 65531\n', '-U')


ECHO = ['/bin/sh', '-c', 'echo "hi $TCPCONCURRENCY $FOO"; read x']


@case
def test_total_concurrency(srv):
    reset_children()
    with Listener(srv, ['-c', '1'], [WRAP] + ECHO) as f:
        a = From(f.port)
        eq(a.readline(), b'hi  \n', 'first client')
        b_ = From(f.port)
        try:
            b_.readline(timeout=0.6)
            raise AssertionError('a second child ran at -c 1')
        except Timeout:
            pass
        eq(children(), 1, 'children while at the limit')
        a.send(b'bye\n')
        a.read_until_close()
        eq(b_.readline(timeout=3), b'hi  \n', 'second client after the first ended')
        b_.send(b'x\n')
        b_.close()
        a.close()
    # two clients held at once (a delay) at -c 1: the second waits in the front's queue for
    # the first child to end
    with Listener(srv, ['-c', '1'], [WRAP] + ECHO, env={'GREETDELAY': '300ms'}) as f:
        a, b_ = From(f.port), From(f.port, '127.0.0.2')
        eq(a.readline(), b'hi  \n', 'first client')
        try:
            b_.readline(timeout=0.6)
            raise AssertionError('a second child ran at -c 1')
        except Timeout:
            pass
        f.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 3
        while b'event=summary' not in f.text() and time.time() < deadline:
            time.sleep(0.01)
        check(b' ready=1 children=1' in f.text(), 'the second client is not in the queue: %r'
              % f.text()[-300:])
        a.send(b'bye\n')
        eq(b_.readline(timeout=3), b'hi  \n', 'second client after the first ended')
        b_.send(b'x\n')
        for s in (a, b_):
            s.close()


@case
def test_per_ip_concurrency(srv):
    reset_children()
    with Listener(srv, ['-v', '-C', '2:busy\\r\\n'], [WRAP] + ECHO) as f:
        s1, s2 = From(f.port), From(f.port)
        eq(s1.readline(), b'hi 1 \n', 'first from 127.0.0.1 (TCPCONCURRENCY)')
        eq(s2.readline(), b'hi 2 \n', 'second from 127.0.0.1')
        s3 = From(f.port)
        s3.closed_after(b'busy\r\n', what='third from 127.0.0.1')
        s4 = From(f.port, '127.0.0.2')
        eq(s4.readline(), b'hi 1 \n', 'first from 127.0.0.2')
        eq(children(), 3, 'children (none for the refused one)')
        for s in (s1, s2, s4):
            s.send(b'x\n')
            s.read_until_close()
            s.close()
        deadline = time.time() + 3  # the children are reaped (counts go down)
        while f.text().count(b'event=end ') < 3 and time.time() < deadline:
            time.sleep(0.01)
        s5 = From(f.port)
        eq(s5.readline(), b'hi 1 \n', 'a new one after the others ended')
        s5.send(b'x\n')
        s5.close()
        check(b'event=refuse' in f.text() and b'reason=perip' in f.text(), 'no refusal logged')


@case
def test_tcprules_cdb(srv):
    reset_children()
    src = os.path.join(T, 'rules.txt')
    cdb = os.path.join(T, 'rules.cdb')
    with open(src, 'w') as fh:
        fh.write('127.0.0.2:deny\n127.0.0.3:allow,FOO="slow",GREETDELAY="1"\n'
                 '127.0.0.:allow,FOO="bar"\n:allow,FOO="other"\n')
    with open(src) as fh:
        r = subprocess.run(['tcprules', cdb, cdb + '.tmp'], stdin=fh)
    eq(r.returncode, 0, 'tcprules')
    prog = [WRAP, '/bin/sh', '-c', 'echo "hi $FOO ${GREETDELAY-unset}"; read x']
    with Listener(srv, ['-x', cdb], prog) as f:
        s = From(f.port, '127.0.0.2')
        s.closed_after(b'', what='denied client')
        s = From(f.port, '127.0.0.1')
        eq(s.readline(), b'hi bar unset\n', 'variable of the 127.0.0. prefix')
        s.send(b'x\n')
        s.close()
        # a greeting delay from the cdb: waited out in the front, then removed
        t0 = time.time()
        s = From(f.port, '127.0.0.3')
        eq(s.readline(), b'hi slow unset\n', 'GREETDELAY of the cdb, waited out by the front')
        check(0.95 <= time.time() - t0 < 1.6, 'child after %.2f s, expected 1 s' % (time.time() - t0))
        s.send(b'x\n')
        s.close()
        eq(children(), 2, 'children (none for the denied client)')


@case
def test_instruct_cdb(srv):
    reset_children()
    peers = os.path.join(T, 'peers')
    shutil.rmtree(peers, ignore_errors=True)
    os.mkdir(peers)
    for name, text, mode in (('127.0.0.1', '+FOO=baz\n+TCPLOCALIP=over\nC1:one only\\r\\n\n', 0o644),
                             ('127.0.0.3', '', 0o000), ('127.0.0.4', 'echo run by X\n', 0o744),
                             ('0', '+FOO=zero\n', 0o644)):
        p = os.path.join(peers, name)
        with open(p, 'w') as fh:
            fh.write(text)
        os.chmod(p, mode)
    cdb = os.path.join(T, 'peers.cdb')
    eq(subprocess.run(['ipsvd-cdb', cdb, cdb + '.tmp', peers]).returncode, 0, 'ipsvd-cdb')
    prog = [WRAP, '/bin/sh', '-c', 'echo "$FOO $TCPLOCALIP"; read x']
    with Listener(srv, ['-i', cdb, '-C', '5'], prog) as f:
        s = From(f.port)
        eq(s.readline(), b'baz over\n', '+ lines applied after tcpsvd\'s variables')
        s2 = From(f.port)
        s2.closed_after(b'one only\r\n', what='the C1 line of 127.0.0.1')
        s.send(b'x\n')
        s.close()
        s = From(f.port, '127.0.0.3')
        s.closed_after(b'', what='D entry')
        s = From(f.port, '127.0.0.4')
        s.closed_after(b'run by X\n', what='X entry')
        s = From(f.port, '127.0.0.5')
        eq(s.readline(), b'zero 127.0.0.1\n', 'entry 0')
        s.send(b'x\n')
        s.close()
        eq(children(), 2, 'children (none for D and the C limit; X runs sh, not the wrapper)')


def start_dns():
    for attempt in range(5):
        port = free_port()
        conf = os.path.join(T, 'dnsmasq.conf')
        with open(conf, 'w') as fh:
            fh.write('listen-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\n'
                     'pid-file=\ncache-size=0\naddress=/#/\nport=%d\n'
                     'host-record=2.0.0.127.fbl.test,127.0.0.2\n'
                     'host-record=3.0.0.127.fbl.test,127.0.0.2\n'
                     'host-record=3.0.0.127.fwl.test,127.0.0.5\n'
                     'host-record=4.0.0.127.fbl.test,10.0.0.1\n' % port
                     + ('user=root\n' if os.getuid() == 0 else ''))
        dm = subprocess.Popen(['dnsmasq', '--conf-file=' + conf, '--keep-in-foreground'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if dm.poll() is not None:
                break
            r = subprocess.run(['dig', '@127.0.0.1', '-p', str(port), '+short', '+time=1',
                                '+tries=1', '2.0.0.127.fbl.test'], stdout=subprocess.PIPE)
            if r.stdout.strip() == b'127.0.0.2':
                DNS.update(port=port, proc=dm)
                return
            time.sleep(0.02)
        dm.kill()
        dm.wait()
    raise RuntimeError('dnsmasq did not start')


def dns_env(extra=None):
    e = {'DNSSERVERS': '127.0.0.1:%d' % DNS['port'], 'FRONTDNSBUDGET': '1500'}
    e.update(extra or {})
    return e


@case
def test_dnsbl_refused_without_child(srv):
    reset_children()
    srv.write_control('frontdnsbl', 'fbl.test\nfwl.test*-1\n')
    with Listener(srv, ['-v'], smtpd(srv), env=dns_env()) as f:
        s = From(f.port, '127.0.0.2')
        eq(s.reply(), b'554 5.7.1 Service unavailable; client [127.0.0.2] blocked using fbl.test\r\n',
           'greeting to a listed client')
        eq(s.cmd('EHLO bot.test')[:4], b'503 ', 'EHLO after the refusal')
        eq(s.cmd('QUIT'), b'221 2.0.0 closing connection\r\n', 'QUIT')
        s.read_until_close()
        s.close()
        # a bot that keeps talking is closed after a few commands
        s = From(f.port, '127.0.0.2')
        s.reply()
        s.send(b'NOOP\r\n' * 10)
        out = s.read_until_close()
        eq(out.count(b'503 '), 5, '503 replies before the close')
        eq(children(), 0, 'children for listed clients')
        # listed too, but on the DNSWL: handed on; an answer outside 127/8 does not list
        for ip in ('127.0.0.3', '127.0.0.4', '127.0.0.1'):
            with From(f.port, ip) as s:
                eq(s.reply(), banner(), 'banner for %s' % ip)
                s.cmd('QUIT')
        eq(children(), 3, 'children for the clients handed on')
        f.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 3
        while b'event=summary' not in f.text() and time.time() < deadline:
            time.sleep(0.01)
        check(re.search(rb'event=summary accepted=5 handed=3 refused_dnsbl=2 .* held=0 ready=0 ',
                        f.text()), 'summary at SIGHUP: %r' % f.text()[-400:])
        txt = f.text()
        eq(txt.count(b'event=refuse ip=127.0.0.2'), 2, 'refusal log lines')
        check(b'reason=dnsbl:fbl.test' in txt, 'reason in the log: %r' % txt[-500:])
    sm = re.search(rb'event=exit accepted=(\d+) handed=(\d+) refused_dnsbl=(\d+)', f.text())
    check(sm and sm.groups() == (b'5', b'3', b'2'), 'counters at exit: %r' % f.text()[-400:])


@case
def test_refusal_deadline_is_total(srv):
    srv.write_control('frontdnsbl', 'fbl.test\n')
    with Listener(srv, [], smtpd(srv), env=dns_env({'FRONTREFUSEWAIT': '1'})) as f:
        s = From(f.port, '127.0.0.2')
        t0 = time.time()
        eq(s.reply()[:4], b'554 ', 'refusal')
        closed = False
        while time.time() - t0 < 3:  # a byte every 0.1 s, never a whole line
            try:
                s.send(b'N')
            except OSError:
                closed = True
                break
            try:
                s.sock.settimeout(0.1)
                if s.sock.recv(100) == b'':
                    closed = True
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = True
                break
        t = time.time() - t0
        s.close()
        check(closed and 0.9 <= t < 1.8, 'closed=%s after %.2f s, expected about 1 s' % (closed, t))


@case
def test_refusals_short_when_crowded(srv):
    # -m 4: with two refused bots still talking (3 of 4 slots with the third), the third
    # is closed right after its 554
    srv.write_control('frontdnsbl', 'fbl.test\n')
    with Listener(srv, ['-m', '4'], smtpd(srv), env=dns_env()) as f:
        bots = [From(f.port, '127.0.0.2') for _ in range(2)]
        for b_ in bots:
            eq(b_.reply()[:4], b'554 ', 'refusal')
        s = From(f.port, '127.0.0.2')
        t0 = time.time()
        eq(s.read_until_close(timeout=3)[:4], b'554 ', 'third refusal')
        check(time.time() - t0 < 1, 'the third bot was held')
        eq(bots[0].cmd('NOOP')[:4], b'503 ', 'the first bot still has its dialogue')
        for b_ in bots + [s]:
            b_.close()


@case
def test_held_connections_bounded(srv):
    # -m 1: while one client waits out the delay, the next stays in the kernel's backlog
    with Listener(srv, ['-m', '1'], smtpd(srv), env={'GREETDELAY': '1'}) as f:
        t0 = time.time()
        a = From(f.port)
        b_ = From(f.port)
        eq(a.reply(), banner(), 'first banner')
        eq(b_.reply(), banner(), 'second banner')
        t = time.time() - t0
        check(1.9 <= t < 3, 'second banner after %.2f s, expected about 2 s' % t)
        a.cmd('QUIT')
        b_.cmd('QUIT')
        a.close()
        b_.close()


@case
def test_smtpd_dnswl_not_delayed(srv):
    # a client on a DNSWL of the smtpd's control/dnsbl: the smtpd would not delay it, so the
    # front hands it on at once and leaves GREETDELAY to the smtpd, which does not wait either
    srv.configure(env=dns_env(), control={'me': ME, 'dnsbl': 'fwl.test*-1\n'})
    with Listener(srv, [], smtpd(srv), env=dns_env({'GREETDELAY': '1'})) as f:
        _, t = whole_session(f.port, '127.0.0.3')
        check(t < 0.6, 'DNSWL client: banner after %.2f s' % t)
        _, t = whole_session(f.port, '127.0.0.1')
        check(0.95 <= t < 1.6, 'other client: banner after %.2f s' % t)


def front_children(pid):
    out = []
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open('/proc/%s/stat' % d) as fh:
                    st = fh.read()
            except OSError:
                continue
            if int(st[st.rindex(')') + 2:].split()[1]) == pid:
                out.append(int(d))
    return out


@case
def test_spares_session_identical(srv):
    # -s 2: two smtpd processes started before any client; a client's session is handed to
    # one (its socket and its environment over the handoff socket) and is byte for byte the
    # session under tcpserver, Received line and envelope included
    with Listener(srv, ['-s', '2', '-R', '-H', '-l', LOCALNAME], smtpd(srv)) as f:
        deadline = time.time() + 5
        while len(front_children(f.proc.pid)) < 2 and time.time() < deadline:
            time.sleep(0.02)
        before = front_children(f.proc.pid)
        eq(len(before), 2, 'spare processes before any client')
        a, _ = whole_session(f.port)
        with open(srv.logfile, 'rb') as fh:
            m = re.search(rb'pid=(\d+) event=end ', fh.read())
        check(m and int(m.group(1)) in before, 'the session was served by a process started '
              'before the client came: %r not in %r' % (m and m.group(1), before))
        spares = front_children(f.proc.pid)
    b_, _ = whole_session(srv.port)
    eq(norm(a), norm(b_), 'the session through a spare vs. under tcpserver')
    m = srv.stored(2)
    ra, rest_a = split_received(m[0]['msg'])
    rb_, rest_b = split_received(m[1]['msg'])
    eq(rest_a, rest_b, 'the stored messages after Received')
    eq(re.sub(rb';.*', b'', ra), re.sub(rb';.*', b'', rb_), 'the Received lines without the date')
    eq(m[0]['env'], m[1]['env'], 'the envelopes')
    # the front ended: its spares see the handoff socket close and end too
    deadline = time.time() + 3
    while any(os.path.exists('/proc/%d' % p) and open('/proc/%d/stat' % p).read().split()[2] != 'Z'
              for p in spares) and time.time() < deadline:
        time.sleep(0.02)
    for p in spares:
        check(not os.path.exists('/proc/%d' % p) or open('/proc/%d/stat' % p).read().split()[2] == 'Z',
              'spare %d still running after the front ended' % p)


@case
def test_spares_get_the_cdb_environment(srv):
    # the cdb's variables reach the spare: RELAYCLIENT for 127.0.0.2 only
    src = os.path.join(T, 'relay.txt')
    cdb = os.path.join(T, 'relay.cdb')
    with open(src, 'w') as fh:
        fh.write('127.0.0.2:allow,RELAYCLIENT=""\n:allow\n')
    with open(src) as fh:
        eq(subprocess.run(['tcprules', cdb, cdb + '.tmp'], stdin=fh).returncode, 0, 'tcprules')
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'}, env={'LOGLEVEL': '3'})
    with Listener(srv, ['-s', '1', '-x', cdb], smtpd(srv), env={'LOGLEVEL': '3'}) as f:
        for src_ip, want in (('127.0.0.2', b'250 '), ('127.0.0.1', b'553 '), ('127.0.0.2', b'250 ')):
            time.sleep(0.2)  # a spare is ready again
            s = From(f.port, src_ip)
            eq(s.reply(), banner(), 'banner')
            s.cmd('HELO c.test')
            s.cmd('MAIL FROM:<a@x.test>')
            r = s.cmd('RCPT TO:<x@elsewhere.test>')
            eq(r[:4], want, 'relaying from %s' % src_ip)
            s.cmd('QUIT')
            s.close()
        deadline = time.time() + 5  # the last session logs its end after its 221
        while True:
            with open(srv.logfile, 'rb') as fh:
                pids = re.findall(rb'pid=(\d+) event=end ', fh.read())
            if len(pids) >= 3 or time.time() > deadline:
                break
            time.sleep(0.02)
        eq(len(pids), 3, 'sessions')
        eq(f.text().count(b'spare=yes'), 3, 'sessions handed to a spare process')


@case
def test_spares_off_for_a_program_without_handoff(srv):
    # a program that greets at once does not take its client from the front: the front sees
    # its bytes on the handoff socket, logs it, stops pre-starting and starts a process per
    # client as without -s
    with Listener(srv, ['-s', '1'], ECHO) as f:
        deadline = time.time() + 5
        while b'what=spare' not in f.text() and time.time() < deadline:
            time.sleep(0.02)
        check(b'event=error what=spare' in f.text(), 'no error line: %r' % f.text()[-300:])
        s = From(f.port)
        eq(s.readline(), b'hi  \n', 'a process of its own for the client')
        s.send(b'x\n')
        s.close()


@case
def test_limitexempt_not_delayed(srv):
    # control/limitexempt, as tarpit.c reads it (one test for both): a client inside a listed
    # network is handed on at once, one outside waits; the smtpd does not delay it either
    srv.configure(control={'me': ME, 'limitexempt': '127.0.0.4/31\n::1\n'})
    with Listener(srv, [], smtpd(srv), env={'GREETDELAY': '1'}) as f:
        _, t = whole_session(f.port, '127.0.0.5')
        check(t < 0.6, 'exempt client 127.0.0.5: banner after %.2f s' % t)
        _, t = whole_session(f.port, '127.0.0.6')
        check(0.95 <= t < 1.6, 'client 127.0.0.6 outside 127.0.0.4/31: banner after %.2f s' % t)


@case
def test_connrate_in_the_front(srv):
    # CONNRATE taken by the front in the smtpd's LMDB bucket: the third connection in the
    # window gets the smtpd's 421 from the front, without a process; the children do not
    # count again (else the second would already be refused)
    reset_children()
    srv.configure(files={'state/.keep': ''})
    with Listener(srv, [], smtpd(srv), env={'CONNRATE': '2/60'}) as f:
        for i in range(2):
            with From(f.port, '127.0.0.6') as s:
                eq(s.reply(), banner(), 'banner %d' % (i + 1))
                s.cmd('QUIT')
        s = From(f.port, '127.0.0.6')
        a = s.read_until_close()
        s.close()
        with From(f.port, '127.0.0.7') as s:
            eq(s.reply(), banner(), 'another address has its own bucket')
            s.cmd('QUIT')
        check(b'reason=connrate' in f.text(), 'no refusal logged: %r' % f.text()[-300:])
    eq(children(), 3, 'children')
    srv.configure(files={'state/.keep': ''}, env={'CONNRATE': '2/60'})
    for i in range(2):
        with srv.session() as s:
            s.reply()
            s.cmd('QUIT')
    s = srv.session()
    eq(a, s.read_until_close(), 'the front\'s 421 vs. the smtpd\'s')
    s.close()


@case
def test_dns_down_hands_on(srv):
    reset_children()
    dead = free_port()
    with Listener(srv, [], smtpd(srv), env={'FRONTDNSBL': 'fbl.test', 'FRONTDNSBUDGET': '400',
                                            'DNSSERVERS': '127.0.0.1:%d' % dead}) as f:
        t0 = time.time()
        with From(f.port, '127.0.0.2') as s:
            eq(s.reply(), banner(), 'banner with the DNS down')
            check(time.time() - t0 < 1.5, 'held longer than the budget')
            s.cmd('QUIT')
    eq(children(), 1, 'children')


@case
def test_early_talker_refused_like_the_smtpd(srv):
    reset_children()
    with Listener(srv, [], smtpd(srv), env={'GREETDELAY': '2'}) as f:
        s = From(f.port)
        s.send(b'EHLO bot.test\r\n')
        a = s.read_until_close(timeout=4)
        s.close()
        check(b'event=earlytalker' in f.text(), 'no earlytalker line')
    srv.configure(env={'GREETDELAY': '2'})
    s = From(srv.port)
    s.send(b'EHLO bot.test\r\n')
    b_ = s.read_until_close(timeout=4)
    s.close()
    eq(a, b'554 5.5.0 SMTP protocol violation\r\n', 'the front\'s refusal')
    eq(a, b_, 'the front\'s refusal vs. the smtpd\'s')
    eq(children(), 0, 'children for an early talker')


@case
def test_greetdelay_waited_by_the_front(srv):
    reset_children()
    # the delay is in the front's environment (its cdbs would do as well): the smtpd sees it
    # only if the front did not wait
    with Listener(srv, ['-l', LOCALNAME], smtpd(srv), env={'GREETDELAY': '1'}) as f:
        a, t = whole_session(f.port)
        check(0.95 <= t < 1.6, 'banner after %.2f s, expected about 1 s (not 2: the smtpd must '
              'not wait again)' % t)
    eq(children(), 1, 'children')
    # DROPRUSHGREET=0: an early talker is only logged, and served after the delay
    with Listener(srv, ['-l', LOCALNAME], smtpd(srv), env={'GREETDELAY': '1', 'DROPRUSHGREET': '0'}) as f:
        s = From(f.port)
        t0 = time.time()
        s.send(b'HELO early.test\r\n')
        eq(s.reply(), banner(), 'banner')
        check(time.time() - t0 >= 0.95, 'banner before the delay')
        eq(s.reply()[:4], b'250 ', 'HELO sent early is answered')
        s.cmd('QUIT')
        s.close()
        check(b'act=logged' in f.text(), 'no earlytalker line')
    srv.configure(env={'GREETDELAY': '1'})
    b_, t = whole_session(srv.port)
    eq(norm(a), norm(b_), 'the delayed session through the front vs. under tcpserver')


@case
def test_restart_under_supervise(srv):
    """the shipped service/mxguard-front under real supervise: the front restarted (svc -t)
    while a session is open; that session still queues its message, a new one reaches the
    new front"""
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'})  # mxguard-check wants it
    port = free_port()
    d = os.path.join(T, 'svc')
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(os.path.join(MXG_SRC, 'service', 'mxguard-front'), d)
    os.makedirs(os.path.join(srv.home, 'bin'), exist_ok=True)
    for p in ('mxguard-front', 'mxguard-smtpd', 'mxguard-check'):
        os.symlink(os.path.join(MXG_BIN, p), os.path.join(srv.home, 'bin', p))
    env = {'IP': '127.0.0.1', 'PORT': str(port), 'QMAILHOME': srv.home, 'SMTPDUSER': 'root',
           'SMTPDGROUP': 'root', 'LOCALNAME': LOCALNAME, 'QMAILQUEUE': RECORDER, 'QQ_DIR': srv.qq,
           'TCPRULES': os.path.join(T, 'none.cdb'), 'MAXPERIP': '5'}
    if os.path.realpath(MXG_BIN) != os.path.realpath(MXG_SRC):
        env['SOFTLIMIT'] = '100000000000000'  # ASan reserves terabytes of address space
    for k, v in env.items():
        with open(os.path.join(d, 'env', k), 'w') as fh:
            fh.write(v + '\n')
    logf = open(os.path.join(d, 'front.log'), 'wb')
    sv = subprocess.Popen(['supervise', d], stdin=subprocess.DEVNULL, stdout=logf,
                          env=penv(srv), start_new_session=True)
    logf.close()

    def pid():
        r = subprocess.run(['svstat', d], capture_output=True)
        m = re.search(rb'up \(pid (\d+)\)', r.stdout)
        return int(m.group(1)) if m else None

    try:
        deadline = time.time() + 10

        def logtext():
            with open(os.path.join(d, 'front.log'), 'rb') as fh:
                return fh.read()
        while b'status=listening' not in logtext():
            check(time.time() < deadline, 'the front did not start under supervise: %r'
                  % logtext()[-500:])
            time.sleep(0.05)
        old = pid()
        s = Session(port, timeout=10)
        eq(s.reply(), banner(), 'banner')
        s.cmd('HELO c.test')
        eq(s.cmd('MAIL FROM:<a@x.test>'), b'250 ok\r\n', 'MAIL')
        subprocess.run(['svc', '-t', d], check=True)
        deadline = time.time() + 8
        while time.time() < deadline and pid() in (old, None):
            time.sleep(0.05)
        check(pid() not in (old, None), 'no new front after svc -t')
        eq(s.cmd('RCPT TO:<u@example.test>'), b'250 ok\r\n', 'RCPT after the restart')
        eq(s.cmd('DATA'), b'354 go ahead\r\n', 'DATA after the restart')
        s.send(b'Subject: across\r\n\r\nrestart\r\n.\r\n')
        queued(s.reply())
        s.cmd('QUIT')
        s.close()
        deadline = time.time() + 5
        while True:  # the new front binds at once (SO_REUSEADDR), the old session still open
            try:
                s = Session(port, timeout=5)
                break
            except OSError:
                check(time.time() < deadline, 'the new front does not listen')
                time.sleep(0.05)
        eq(s.reply(), banner(), 'banner from the new front')
        queued(send_message(s))
        s.close()
        srv.stored(2)
    finally:
        subprocess.run(['svc', '-dx', d], capture_output=True)
        try:
            sv.wait(5)
        except subprocess.TimeoutExpired:
            sv.kill()
            sv.wait()


def main():
    with open(WRAP, 'w') as fh:
        fh.write('#!/bin/sh\necho $$ >> "$COUNTFILE"\nexec "$@"\n')
    os.chmod(WRAP, 0o755)
    if not os.access(FRONT, os.X_OK):
        print('FAIL front.start: %s is missing (build it first)' % FRONT)
        return
    try:
        start_dns()
        run('front')
    finally:
        if 'proc' in DNS:
            DNS['proc'].terminate()
            DNS['proc'].wait()
        if not os.environ.get("MXT_KEEP"): shutil.rmtree(T, ignore_errors=True)


if __name__ == '__main__':
    main()
