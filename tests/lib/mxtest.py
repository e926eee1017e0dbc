"""tests/lib/mxtest.py - the integration harness: the real mxguard-smtpd under the real
tcpserver on a free loopback port, a temporary qmail home, tests/qq-recorder as QMAILQUEUE,
and small clients (raw socket, smtplib, swaks).

One tcpserver serves a whole test file. Every connection runs a tiny shell script that sources
an environment file and execs the smtpd with its stderr appended to a log file; since the smtpd
reads its control files and environment afresh for every connection, configure() can give each
case its own control files and environment without restarting anything.

Every case is a function decorated with @case; run() prints "PASS name" or "FAIL name: reason"
for each and always exits 0. After each case the harness also fails it when an smtpd session
ended with anything but exit 0 or 1 (a crash, a sanitizer report) or the log holds a sanitizer
report.

Environment: MXG_BIN (directory with mxguard-smtpd and tests/qq-recorder), MXG_SRC (source
directory), MXT_KEEP=1 keeps the temporary directory, MXT_ONLY=regex runs only matching cases.
Python: Debian's /usr/bin/python3, standard library only.
"""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
MXG_SRC = os.environ.get('MXG_SRC') or os.path.dirname(os.path.dirname(HERE))
MXG_BIN = os.environ.get('MXG_BIN') or MXG_SRC
SMTPD = os.path.join(MXG_BIN, 'mxguard-smtpd')
RECORDER = os.path.join(MXG_BIN, 'tests', 'qq-recorder')
LOCALNAME = 'mx.example.test'     # tcpserver -l: TCPLOCALHOST
ME = 'mx.test'                    # default control/me
DIR = object()                    # configure(control={'me': DIR}): make it a directory

CRLF = b'\r\n'
SMTPLF = b'451 See https://cr.yp.to/docs/smtplf.html.\r\n'
CONTROLS_421 = b'421 unable to read controls (#4.3.0)\r\n'


class Timeout(AssertionError):
    pass


def free_port():
    """a TCP port on 127.0.0.1 that was free a moment ago"""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def b(x):
    """bytes from str (latin-1, so every byte value can be written) or bytes"""
    return x if isinstance(x, bytes) else x.encode('latin-1')


def eq(actual, expected, what='value'):
    if actual == expected:
        return
    if (isinstance(actual, (bytes, str)) and type(actual) == type(expected)
            and max(len(actual), len(expected)) > 200):
        i = 0
        while i < min(len(actual), len(expected)) and actual[i] == expected[i]:
            i += 1
        raise AssertionError('%s: %d bytes expected, %d got; first difference at offset %d: '
                             'expected %r, got %r' % (what, len(expected), len(actual), i,
                                                      expected[max(0, i - 40):i + 80],
                                                      actual[max(0, i - 40):i + 80]))
    raise AssertionError('%s: expected %r, got %r' % (what, expected, actual))


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def match(regex, actual, what='value'):
    m = re.fullmatch(b(regex) if isinstance(actual, bytes) else regex, actual, re.S)
    if not m:
        raise AssertionError('%s: %r does not match %r' % (what, actual, regex))
    return m


# ----------------------------------------------------------------------------------------
# the server

def _cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read()
    except OSError:
        return b''


class Server:
    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix='mxit-%s.' % name)
        self.home = os.path.join(self.dir, 'home')
        self.control = os.path.join(self.home, 'control')
        self.qq = os.path.join(self.dir, 'qq')
        self.logfile = os.path.join(self.dir, 'smtpd.log')
        self.tslog = os.path.join(self.dir, 'tcpserver.log')
        self.envfile = os.path.join(self.dir, 'env.sh')
        self.runscript = os.path.join(self.dir, 'run')
        self.proc = None
        self.port = None
        self.killed = set()
        self.tsoffset = 0
        self.allowed_status = {0, 256}
        for d in (self.home, self.control, self.qq):
            os.makedirs(d, exist_ok=True)
        with open(self.runscript, 'w') as f:
            f.write('exec 2>>%s\n. %s\nexec %s\n' % (shlex.quote(self.logfile),
                                                  shlex.quote(self.envfile), shlex.quote(SMTPD)))
        open(self.logfile, 'wb').close()

    # -- process control
    def start(self):
        for f in (SMTPD, RECORDER):
            if not os.access(f, os.X_OK):
                raise RuntimeError('%s is missing (build it first)' % f)
        self.configure()
        env = {'PATH': '/usr/bin:/bin'}
        for k in ('ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS'):
            if k in os.environ:
                env[k] = os.environ[k]
        env.setdefault('ASAN_OPTIONS', 'detect_leaks=0:abort_on_error=0:exitcode=97')
        env.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1:halt_on_error=1:exitcode=98')
        for attempt in range(8):
            s = socket.socket()
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
            s.close()
            ts = open(self.tslog, 'ab')
            self.proc = subprocess.Popen(
                ['tcpserver', '-v', '-R', '-H', '-l', LOCALNAME, '-c', '50', '127.0.0.1',
                 str(port), '/bin/sh', self.runscript],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=ts, env=env,
                cwd=self.dir)
            ts.close()
            deadline = time.time() + 5
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                if b'status: 0/50' in self._tsread():
                    self.port = port
                    self.tsoffset = len(self._tsread())
                    return
                time.sleep(0.01)
            self.stop()
        raise RuntimeError('tcpserver did not start: %r' % self._tsread()[-300:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        if os.environ.get('MXT_KEEP'):
            sys.stderr.write('kept %s\n' % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _tsread(self):
        try:
            with open(self.tslog, 'rb') as f:
                return f.read()
        except FileNotFoundError:
            return b''

    # -- sessions as tcpserver -v reports them
    def sessions(self):
        """[(pid, status or None)] for the connections since the last configure()"""
        text = self._tsread()[self.tsoffset:].decode('latin-1')
        order, status = [], {}
        for m in re.finditer(r'tcpserver: (?:pid (\d+) from|end (\d+) status (\d+))', text):
            if m.group(1):
                order.append(int(m.group(1)))
                status[int(m.group(1))] = None
            else:
                status[int(m.group(2))] = int(m.group(3))
        return [(p, status[p]) for p in order]

    def wait_idle(self, timeout=5):
        """wait until every connection's process has ended"""
        deadline = time.time() + timeout
        while True:
            s = self.sessions()
            if all(st is not None for _, st in s):
                return s
            if time.time() > deadline:
                return s
            time.sleep(0.01)

    def exit_statuses(self, timeout=5):
        return [st for _, st in self.wait_idle(timeout)]

    # -- configuration
    def configure(self, control=None, env=None, files=None, shell=()):
        """Give the next connections these control files (default: me = mx.test) and this
        environment (added to QMAILHOME, QMAILQUEUE = the recorder, QQ_DIR; None unsets).
        A control value DIR makes a directory, ('symlink', target) a symbolic link,
        (data, mode) a file with that mode. files: the same for paths below the qmail home.
        shell: extra lines for the per-connection script (e.g. 'ulimit -n 7').
        Clears the stored messages, the recorder's run list and the log."""
        self.wait_idle(3)
        self.wait_recorders(3)
        # a fresh queue directory: a recorder still finishing for the previous case cannot
        # write into this one
        old = self.qq
        self.qq = tempfile.mkdtemp(prefix='qq.', dir=self.dir)
        shutil.rmtree(old, ignore_errors=True)
        if control is None:
            control = {'me': ME}
        shutil.rmtree(self.home, ignore_errors=True)
        os.makedirs(self.control)
        for name, value in control.items():
            self._make(os.path.join(self.control, name), value)
        for name, value in (files or {}).items():
            path = os.path.join(self.home, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._make(path, value)
        full = {'QMAILHOME': self.home, 'QMAILQUEUE': RECORDER, 'QQ_DIR': self.qq}
        full.update(env or {})
        lines = []
        for k, v in full.items():
            check(re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*', k), 'bad variable name %r' % k)
            if v is None:
                lines.append('unset %s' % k)
            else:
                v = b(v).decode('latin-1')
                lines.append('%s=%s; export %s' % (k, shlex.quote(v), k))
        lines.extend(shell)
        with open(self.envfile, 'w', encoding='latin-1') as f:
            f.write('\n'.join(lines) + '\n')
        open(self.logfile, 'wb').close()
        self.tsoffset = len(self._tsread())
        self.allowed_status = {0, 256}
        self.killed = set()

    @staticmethod
    def _make(path, value):
        if value is DIR:
            os.mkdir(path)
        elif isinstance(value, tuple) and value[0] == 'symlink':
            os.symlink(value[1], path)
        elif isinstance(value, tuple):
            with open(path, 'wb') as f:
                f.write(b(value[0]))
            os.chmod(path, value[1])
        else:
            with open(path, 'wb') as f:
                f.write(b(value))

    def write_control(self, name, value):
        self._make(os.path.join(self.control, name), value)

    # -- what happened
    def log(self, idle=True):
        if idle:
            self.wait_idle(3)
        with open(self.logfile, 'rb') as f:
            return f.read()

    def log_lines(self, idle=True):
        return [l for l in self.log(idle).split(b'\n') if l]

    def runs(self):
        try:
            with open(os.path.join(self.qq, 'runs'), 'rb') as f:
                text = f.read().decode('latin-1')
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            m = re.match(r'pid=(\d+) result=(\w+) exit=(-?\d+) why=(.*)', line)
            out.append({'pid': int(m.group(1)), 'result': m.group(2), 'exit': int(m.group(3)),
                        'why': m.group(4)})
        return out

    def wait_recorders(self, timeout=3):
        """wait until every recorder that started has ended (or is gone)"""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with open(os.path.join(self.qq, 'started')) as f:
                    pids = [int(x) for x in f.read().split()]
            except FileNotFoundError:
                return
            if not any(os.path.exists('/proc/%d' % p) and
                       b'qq-recorder' in _cmdline(p) for p in pids):
                return
            time.sleep(0.01)

    def wait_runs(self, n, timeout=5):
        """wait until the recorder finished n runs (stored or not)"""
        deadline = time.time() + timeout
        while True:
            r = self.runs()
            if len(r) >= n or time.time() > deadline:
                return r
            time.sleep(0.01)

    def messages(self):
        """stored messages, oldest first: [{'pid', 'msg', 'env'}]"""
        out = []
        for fn in os.listdir(self.qq):
            m = re.fullmatch(r'(\d+)\.env', fn)
            if not m:
                continue
            pid = int(m.group(1))
            with open(os.path.join(self.qq, fn), 'rb') as f:
                env = f.read()
            with open(os.path.join(self.qq, '%d.msg' % pid), 'rb') as f:
                msg = f.read()
            out.append({'pid': pid, 'msg': msg, 'env': env,
                        'mtime': os.stat(os.path.join(self.qq, fn)).st_mtime_ns})
        return sorted(out, key=lambda x: (x['mtime'], x['pid']))

    def stored(self, n=1, what='stored messages'):
        """the recorder has run and exactly n messages are stored; returns them"""
        self.wait_runs(n)
        m = self.messages()
        if len(m) != n:
            raise AssertionError('%s: expected %d, got %d (recorder runs: %r)'
                                 % (what, n, len(m), self.runs()))
        return m

    def nothing_stored(self, runs=1, timeout=5):
        """the recorder ran `runs` times (or no more than that when runs=0) and stored nothing"""
        r = self.wait_runs(runs, timeout) if runs else self.runs()
        if runs:
            check(len(r) >= runs, 'qmail-queue was run %d times, expected %d' % (len(r), runs))
        m = self.messages()
        check(not m, 'a message was stored: %r' % (m[0]['env'] if m else None))
        return r

    # -- clients
    def session(self, timeout=5):
        return Session(self.port, timeout)

    def smtplib(self, **kw):
        import smtplib
        return smtplib.SMTP('127.0.0.1', self.port, timeout=10, **kw)

    def swaks(self, *args, timeout=30, stdin=None):
        """run swaks against the server; (exit code, output)"""
        cmd = ['swaks', '--server', '127.0.0.1:%d' % self.port, '--timeout', '10'] + list(args)
        p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, env={'PATH': '/usr/bin:/bin', 'LC_ALL': 'C'})
        return p.returncode, p.stdout

    def kill_leftovers(self):
        """SIGKILL this server's sessions that are still running and recorder processes that
        are still alive (only processes this harness started, checked by their command line)"""
        pids = [p for p, st in self.sessions() if st is None]
        try:
            with open(os.path.join(self.qq, 'started')) as f:
                pids += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            pass
        for pid in pids:
            try:
                with open('/proc/%d/cmdline' % pid, 'rb') as f:
                    cmd = f.read()
            except OSError:
                continue
            if b'mxguard-smtpd' in cmd or b'qq-recorder' in cmd:
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.killed.add(pid)
                except OSError:
                    pass

    # -- per-case checks made by run()
    def after_case(self):
        problems = []
        for pid, st in self.wait_idle(8):
            if pid in self.killed:
                continue
            if st is None:
                problems.append('session %d still running' % pid)
            elif st not in self.allowed_status:
                problems.append('session %d ended with wait status %d%s' % (
                    pid, st, ' (signal %d)' % (st & 127) if st & 127 else
                    ' (exit %d)' % (st >> 8)))
        log = self.log(False)
        for marker in (b'AddressSanitizer', b'runtime error:', b'LeakSanitizer'):
            i = log.find(marker)
            if i >= 0:
                problems.append('sanitizer: %r' % log[max(0, i - 20):i + 300])
        if problems:
            self.kill_leftovers()
            self.wait_idle(3)
            raise AssertionError('; '.join(problems))


# ----------------------------------------------------------------------------------------
# the raw client

class Session:
    """a raw SMTP client: sends bytes exactly as given, returns replies exactly as received"""

    def __init__(self, port, timeout=5):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b''
        self.eof = False

    def send(self, data):
        self.sock.sendall(b(data))

    def _fill(self, timeout):
        if self.eof:
            return False
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout('no reply within %.1f s (have %r)' % (timeout, self.buf[:300]))
        except ConnectionResetError:
            d = b''
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def readline(self, timeout=None):
        """one line up to and including LF; raises on EOF or timeout"""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.time() + timeout
        while b'\n' not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise Timeout('no complete line within %.1f s (have %r)' % (timeout, self.buf[:300]))
            if not self._fill(left):
                raise AssertionError('connection closed; partial data %r' % self.buf[:300])
        i = self.buf.index(b'\n') + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def reply(self, timeout=None):
        """one complete reply (all its lines) as raw bytes"""
        out = b''
        while True:
            line = self.readline(timeout)
            out += line
            if len(line) < 4 or line[3:4] != b'-':
                return out

    def cmd(self, data, timeout=None):
        """send data (CRLF added when it has no line end) and return the reply"""
        data = b(data)
        if not data.endswith(b'\n'):
            data += CRLF
        self.send(data)
        return self.reply(timeout)

    def expect(self, data, expected, what=None):
        """send a command, assert the exact reply bytes"""
        got = self.cmd(data)
        eq(got, b(expected), what or 'reply to %r' % b(data)[:60])
        return got

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def read_until_close(self, timeout=3):
        """everything until the server closes; raises if it stays open"""
        deadline = time.time() + timeout
        while not self.eof:
            left = deadline - time.time()
            if left <= 0:
                raise Timeout('connection still open after %.1f s (have %r)' % (timeout, self.buf[:300]))
            self._fill(left)
        out, self.buf = self.buf, b''
        return out

    def closed_after(self, expected, timeout=3, what='final reply'):
        """the server sends exactly `expected` and then closes"""
        eq(self.read_until_close(timeout), b(expected), what)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def banner(text=ME):
    return b'220 %s ESMTP\r\n' % b(text)


def send_message(s, mail='<a@x.test>', rcpts=('<u@example.test>',), body=b'Subject: t\r\n\r\nhi\r\n',
                 data_reply=b'354 go ahead\r\n'):
    """MAIL, RCPTs, DATA and the body with its final dot, one step at a time; returns the
    reply after the dot (the MAIL/RCPT/DATA replies must be 250/250/354)"""
    eq(s.cmd('MAIL FROM:%s' % mail), b'250 ok\r\n', 'MAIL reply')
    for r in rcpts:
        eq(s.cmd('RCPT TO:%s' % r), b'250 ok\r\n', 'RCPT reply for %s' % r)
    eq(s.cmd('DATA'), data_reply, 'DATA reply')
    s.send(b(body) + b'.\r\n')
    return s.reply()


def queued(reply, what='reply after the dot'):
    """assert "250 ok TIME qp PID" with TIME close to now; returns PID"""
    m = match(rb'250 ok (\d+) qp (\d+)\r\n', reply, what)
    t = int(m.group(1))
    check(abs(t - time.time()) < 10, '%s: time %d is not now' % (what, t))
    return int(m.group(2))


RECEIVED_DATE = (r'([1-9]|[12][0-9]|3[01]) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) '
                 r'(\d{4}) ([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9]) -0000')


def split_received(msg):
    """(the two-line Received header the smtpd wrote, the rest of the message)"""
    check(msg.startswith(b'Received: from '), 'message does not start with Received: %r' % msg[:80])
    first = msg.index(b'\n') + 1
    second = msg.index(b'\n', first) + 1
    return msg[:second], msg[second:]


def check_received(line, fromto, by=LOCALNAME):
    """line is exactly 'Received: from FROMTO\\n  by BY with SMTP; DATE\\n' with DATE now"""
    m = match(rb'Received: from ' + re.escape(b(fromto)) + rb'\n  by ' + re.escape(b(by)) +
              rb' with SMTP; ' + b(RECEIVED_DATE) + rb'\n', line, 'Received line')
    months = 'Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec'.split()
    t = time.struct_time((int(m.group(3)), months.index(m.group(2).decode()) + 1,
                          int(m.group(1)), int(m.group(4)), int(m.group(5)), int(m.group(6)),
                          0, 0, 0))
    import calendar
    check(abs(calendar.timegm(t) - time.time()) < 60, 'Received date is not now (UTC): %r' % line)


def envelope(sender, *rcpts):
    return b'F' + b(sender) + b'\0' + b''.join(b'T' + b(r) + b'\0' for r in rcpts) + b'\0'


def qmail_blast(data):
    """qmail-smtpd's blast() as a reference: the message qmail-queue gets from the bytes after
    DATA, and how it ends: ('end', message, bytes used), ('barelf', None, bytes used) or
    ('more', message so far, len(data))"""
    out = bytearray()
    state = 1
    for i, ch in enumerate(data):
        if state == 0:
            if ch == 10:
                return 'barelf', None, i + 1
            if ch == 13:
                state = 4
                continue
        elif state == 1:
            if ch == 10:
                return 'barelf', None, i + 1
            if ch == 46:
                state = 2
                continue
            if ch == 13:
                state = 4
                continue
            state = 0
        elif state == 2:
            if ch == 10:
                return 'barelf', None, i + 1
            if ch == 13:
                state = 3
                continue
            state = 0
        elif state == 3:
            if ch == 10:
                return 'end', bytes(out), i + 1
            out += b'.\r'
            if ch == 13:
                state = 4
                continue
            state = 0
        elif state == 4:
            if ch == 10:
                state = 1
            elif ch != 13:
                out += b'\r'
                state = 0
        out.append(ch)
    return 'more', bytes(out), len(data)


def log_fields(line):
    """parse a log line into [(key, value)], honouring double quotes; raises if it does not
    have the shape pid=N event=NAME key=value..."""
    out = []
    i, n = 0, len(line)
    while i < n:
        m = re.compile(rb'([a-z_]+)=').match(line, i)
        if not m:
            raise AssertionError('log line is not key=value at offset %d: %r' % (i, line))
        key = m.group(1)
        i = m.end()
        if i < n and line[i:i + 1] == b'"':
            j = line.find(b'"', i + 1)
            if j < 0:
                raise AssertionError('unterminated quote in log line %r' % line)
            val = line[i + 1:j]
            i = j + 1
        else:
            j = line.find(b' ', i)
            j = n if j < 0 else j
            val = line[i:j]
            i = j
        if i < n:
            if line[i:i + 1] != b' ':
                raise AssertionError('log line: junk after %s=%r: %r' % (key, val, line))
            i += 1
        out.append((key.decode(), val))
    check(len(out) >= 2 and out[0][0] == 'pid' and out[1][0] == 'event',
          'log line does not start with pid= event=: %r' % line)
    return out


def events(lines, name):
    """the parsed log lines of one event"""
    out = []
    for l in lines:
        f = log_fields(l)
        if f[1][1] == b(name):
            out.append(dict(f))
    return out


# ----------------------------------------------------------------------------------------
# cases

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def run(topic):
    """run every @case of the calling file against one server; print PASS/FAIL lines"""
    only = os.environ.get('MXT_ONLY')
    srv = Server(topic)
    try:
        srv.start()
    except Exception as e:
        print('FAIL %s.start: %s' % (topic, str(e).replace('\n', ' ')))
        srv.cleanup()
        return 0
    try:
        for fn in CASES:
            name = '%s.%s' % (topic, fn.__name__[5:] if fn.__name__.startswith('test_') else fn.__name__)
            if only and not re.search(only, name):
                continue
            t0 = time.time()
            try:
                srv.configure()
                fn(srv)
                srv.after_case()
                print('PASS %s' % name)
            except Exception as e:
                why = '%s: %s' % (type(e).__name__, e) if not isinstance(e, AssertionError) else str(e)
                if not isinstance(e, AssertionError):
                    tb = traceback.extract_tb(e.__traceback__)
                    if tb:
                        why += ' (at %s:%d)' % (os.path.basename(tb[-1].filename), tb[-1].lineno)
                else:
                    try:
                        srv.after_case()
                    except AssertionError as e2:
                        why += '; also: %s' % e2
                print('FAIL %s: %s' % (name, why.replace('\n', '\\n')[:2000]))
            if os.environ.get('MXT_TIME'):
                sys.stderr.write('%s %.2fs\n' % (name, time.time() - t0))
            sys.stdout.flush()
    finally:
        srv.cleanup()
    return 0
