#!/usr/bin/python3
"""Integration: the qmail-queue pipe (qmail-smtpd-compat.md §6, §4.8, §9.10): every exit code
of the table in §6.2, notqmail's custom error on fd 6, exec failures, crashes, hangs, and that
nothing is stored whenever the client is not told 250."""
import os
import shlex
import sys
import time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

OK = b'250 ok\r\n'
GO = b'354 go ahead\r\n'
BODY = b'Subject: q\r\n\r\nbody\r\n'

# qmail-smtpd-compat.md §6.2
TABLE = [
    (11, '554 envelope address too long for qq (#5.1.3)'),
    (115, '554 envelope address too long for qq (#5.1.3)'),
    (31, '554 mail server permanently rejected message (#5.3.0)'),
    (12, '554 qq permanent problem (#5.3.0)'),
    (40, '554 qq permanent problem (#5.3.0)'),
    (51, '451 qq out of memory (#4.3.0)'),
    (52, '451 qq timeout (#4.3.0)'),
    (53, '451 qq write error or disk full (#4.3.0)'),
    (54, '451 qq read error (#4.3.0)'),
    (55, '451 qq unable to read configuration (#4.3.0)'),
    (56, '451 qq trouble making network connection (#4.3.0)'),
    (61, '451 qq trouble in home directory (#4.3.0)'),
    (62, '451 qq trouble creating files in queue (#4.3.0)'),
    (63, '451 qq trouble creating files in queue (#4.3.0)'),
    (64, '451 qq trouble creating files in queue (#4.3.0)'),
    (65, '451 qq trouble creating files in queue (#4.3.0)'),
    (66, '451 qq trouble creating files in queue (#4.3.0)'),
    (71, '451 mail server temporarily rejected message (#4.3.0)'),
    (72, '451 connection to mail server timed out (#4.4.1)'),
    (73, '451 connection to mail server rejected (#4.4.1)'),
    (74, '451 communication with mail server failed (#4.4.2)'),
    (81, '451 qq internal bug (#4.3.0)'),
    (91, '451 qq internal bug (#4.3.0)'),
    (120, '451 unable to exec qq (#4.3.0)'),
    (1, '451 qq temporary problem (#4.3.0)'),
    (41, '451 qq temporary problem (#4.3.0)'),
    (50, '451 qq temporary problem (#4.3.0)'),
    (99, '451 qq temporary problem (#4.3.0)'),
    (100, '451 qq temporary problem (#4.3.0)'),
    (111, '451 qq temporary problem (#4.3.0)'),
    (82, '451 qq temporary problem (#4.3.0)'),   # 82 without a text on fd 6
]


def attempt(srv, env=None, body=BODY, control=None, files=None, shell=(), timeout=5):
    """one message with this configuration; the reply after the dot"""
    srv.configure(control=control, env=env, files=files, shell=shell)
    with srv.session(timeout) as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@example.test>', OK)
        s.expect('DATA', GO)
        s.send(body + b'.\r\n')
        r = s.reply()
        s.expect('NOOP', OK, 'session goes on after the reply')
        s.expect('DATA', b'503 MAIL first (#5.5.1)\r\n', 'second DATA')
    return r


@case
def test_exit_0_queued_qp_is_qmail_queue_pid(srv):
    r = attempt(srv)
    pid = queued(r)
    m = srv.stored(1)[0]
    eq(m['pid'], pid, 'qp in "250 ok TIME qp PID" vs the pid qmail-queue saw')
    eq(srv.runs()[0]['pid'], pid, 'recorder run')
    eq(m['env'], envelope('a@x.test', 'u@example.test'), 'envelope')


def exit_case(code, text):
    def fn(srv):
        r = attempt(srv, env={'QQ_EXIT': str(code)})
        eq(r, b(text) + b'\r\n', 'reply for qmail-queue exit %d' % code)
        runs = srv.nothing_stored(1)
        eq(runs[0]['exit'], code, 'the recorder read a good envelope and exited with')
    fn.__name__ = 'test_exit_%d' % code
    return fn


for _code, _text in TABLE:
    case(exit_case(_code, _text))


@case
def test_custom_error_permanent(srv):
    r = attempt(srv, env={'QQ_ERRTEXT': 'Dsorry, custom permanent refusal (#5.7.1)', 'QQ_EXIT': '82'})
    eq(r, b'554 sorry, custom permanent refusal (#5.7.1)\r\n', 'reply')
    srv.nothing_stored(1)


@case
def test_custom_error_temporary(srv):
    r = attempt(srv, env={'QQ_ERRTEXT': 'Ztry again later (#4.3.0)', 'QQ_EXIT': '82'})
    eq(r, b'451 try again later (#4.3.0)\r\n', 'reply')
    srv.nothing_stored(1)


@case
def test_custom_error_other_first_byte_temporary(srv):
    r = attempt(srv, env={'QQ_ERRTEXT': 'Xodd first byte', 'QQ_EXIT': '82'})
    eq(r, b'451 odd first byte\r\n', 'reply')


@case
def test_custom_error_too_short(srv):
    r = attempt(srv, env={'QQ_ERRTEXT': 'Dx', 'QQ_EXIT': '82'})
    eq(r, b'451 qq temporary problem (#4.3.0)\r\n', '2 bytes on fd 6 are not a text')


@case
def test_custom_error_ignored_without_82(srv):
    r = attempt(srv, env={'QQ_ERRTEXT': 'Dcustom', 'QQ_EXIT': '31'})
    eq(r, b'554 mail server permanently rejected message (#5.3.0)\r\n', 'reply')
    r = attempt(srv, env={'QQ_ERRTEXT': 'Dcustom', 'QQ_EXIT': '0'})
    queued(r)


@case
def test_custom_error_cannot_break_the_reply(srv):
    r = attempt(srv, env={'QQ_ERRTEXT': 'Dfirst line\r\n250 ok forged\r\n', 'QQ_EXIT': '82'})
    eq(r, b'554 first line\r\n', 'a CR/LF in the text ends it')
    r = attempt(srv, env={'QQ_ERRTEXT': 'D' + 'x' * 400, 'QQ_EXIT': '82'})
    m = match(rb'554 (x+)\r\n', r, 'long custom text')
    check(200 <= len(m.group(1)) <= 255, 'custom text cut to at most 255 bytes, got %d'
          % len(m.group(1)))


@case
def test_qmailqueue_missing_program(srv):
    srv.configure(env={'QMAILQUEUE': os.path.join(srv.dir, 'no-such-program')})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@example.test>', OK)
        s.expect('DATA', GO, 'the exec failure is not noticed before the 354')
        s.send(BODY)
        try:
            early = s.reply(0.3)
        except Timeout:
            early = None
        eq(early, None, 'no reply before the final dot')
        s.send(b'more\r\n.\r\n')
        eq(s.reply(), b'451 unable to exec qq (#4.3.0)\r\n', 'reply after the dot')
        s.expect('NOOP', OK)
    srv.nothing_stored(0)


@case
def test_qmailqueue_relative_to_qmail_home(srv):
    r = attempt(srv, env={'QMAILQUEUE': 'bin/qq'}, files={'bin/qq': ('symlink', RECORDER)})
    queued(r)
    srv.stored(1)


@case
def test_qmailqueue_unset_uses_bin_qmail_queue(srv):
    r = attempt(srv, env={'QMAILQUEUE': None}, files={'bin/qmail-queue': ('symlink', RECORDER)})
    queued(r)
    srv.stored(1)
    r = attempt(srv, env={'QMAILQUEUE': None})
    eq(r, b'451 unable to exec qq (#4.3.0)\r\n', 'without bin/qmail-queue')


@case
def test_qmailqueue_crash(srv):
    r = attempt(srv, env={'QQ_CRASH': '1'})
    eq(r, b'451 qq crashed (#4.3.0)\r\n', 'reply')
    runs = srv.nothing_stored(1)
    eq(runs[0]['exit'], -11, 'the recorder crashed after reading a good envelope')


@case
def test_qmailqueue_exits_without_reading(srv):
    # /bin/true never reads: writing a message bigger than a pipe fails, and exit 0 is then
    # a read error, not a success
    r = attempt(srv, env={'QMAILQUEUE': '/bin/true'}, body=b'Subject: big\r\n\r\n' +
                (b'x' * 998 + b'\r\n') * 300)
    eq(r, b'451 qq read error (#4.3.0)\r\n', 'reply')


@case
def test_qmailqueue_hang_killed_at_deadline(srv):
    t0 = time.time()
    r = attempt(srv, env={'QQ_SLEEP': '6'}, control={'me': ME, 'timeoutsmtpd': '1'}, timeout=5)
    eq(r, b'451 qq timeout (#4.3.0)\r\n', 'reply')
    check(time.time() - t0 < 4.5, 'reply took %.1f s with timeoutsmtpd 1' % (time.time() - t0))
    time.sleep(0.2)
    eq(srv.messages(), [], 'stored messages')


@case
def test_qmailqueue_hang_after_closing_fd6_killed_at_deadline(srv):
    # a qmail-queue (or QMAILQUEUE wrapper) that closes fd 6 and then never exits must not
    # hold the session: "every write and the wait have a deadline" (queue.c)
    t0 = time.time()
    try:
        r = attempt(srv, env={'QQ_SLEEP': '4', 'QQ_CLOSE6': '1'},
                    control={'me': ME, 'timeoutsmtpd': '1'}, timeout=3.5)
    except Timeout as e:
        raise AssertionError('no reply %.1f s after the dot with timeoutsmtpd 1 (expected '
                             '451 qq timeout (#4.3.0)): %s' % (time.time() - t0, e))
    eq(r, b'451 qq timeout (#4.3.0)\r\n', 'reply')


@case
def test_qmail_queue_stops_reading_killed_at_deadline(srv):
    # a qmail-queue that never reads: once the pipe is full, the first write that cannot
    # finish within timeoutsmtpd must end the attempt (451), not every further 16 kB block
    t0 = time.time()
    try:
        r = attempt(srv, env={'QQ_NOREAD': '25'}, control={'me': ME, 'timeoutsmtpd': '1'},
                    body=b'Subject: big\r\n\r\n' + (b'x' * 998 + b'\r\n') * 250, timeout=5)
    except Timeout as e:
        srv.kill_leftovers()
        raise AssertionError('no reply %.1f s after the dot with timeoutsmtpd 1 (expected '
                             '451 qq timeout (#4.3.0) after about 2 s): %s' % (time.time() - t0, e))
    finally:
        srv.kill_leftovers()
    eq(r, b'451 qq timeout (#4.3.0)\r\n', 'reply')


@case
def test_qmail_queue_gets_only_its_descriptors(srv):
    # qmail-smtpd moves the pipe ends onto 0, 1 (and 6) and closes the originals
    pid = queued(attempt(srv))
    with open(os.path.join(srv.qq, '%d.fds' % pid)) as f:
        eq(f.read(), '0 1 2 6\n', 'descriptors open in qmail-queue')


@case
def test_local_failure_sends_no_envelope(srv):
    r = attempt(srv, control={'me': ME, 'databytes': '5'})
    eq(r, b'552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n', 'reply')
    runs = srv.nothing_stored(1)
    eq(runs[0]['exit'], 54, 'qmail-queue saw no envelope (exit 54, not queued)')


@case
def test_qqt_failure_before_354(srv):
    # too few descriptors for the three pipes: pipe() fails before the fork
    srv.configure(shell=['ulimit -n 6'])
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@example.test>', OK)
        s.expect('DATA', b'451 qqt failure (#4.3.0)\r\n', 'DATA')
        s.expect('DATA', b'503 MAIL first (#5.5.1)\r\n', 'seenmail is cleared')
        s.expect('NOOP', OK)
    srv.nothing_stored(0)


def script(srv, name, body):
    """a QMAILQUEUE shell script below the qmail home (configure() recreates the home, so
    this is passed through files=)"""
    return {'bin/' + name: ('#!/bin/sh\n' + body, 0o755)}


@case
def test_qmailqueue_exits_before_reading_with_custom_error(srv):
    # proc.c's wait: a qmail-queue that gives up before reading a byte; its exit status and
    # its fd 6 text decide, whatever happened to our writes
    files = script(srv, 'qq', 'printf "Dno thanks (#5.7.1)" >&6\nexit 82\n')
    r = attempt(srv, env={'QMAILQUEUE': 'bin/qq'}, files=files)
    eq(r, b'554 no thanks (#5.7.1)\r\n', 'custom text, exit 82 before reading')
    files = script(srv, 'qq', 'exit 31\n')
    r = attempt(srv, env={'QMAILQUEUE': 'bin/qq'}, files=files,
                body=b'Subject: big\r\n\r\n' + (b'x' * 998 + b'\r\n') * 300)
    eq(r, b'554 mail server permanently rejected message (#5.3.0)\r\n',
       'exit 31 before reading a message bigger than a pipe')
    eq(srv.messages(), [], 'stored messages')


def fd6_holder(srv, after):
    """a qmail-queue that leaves a background process holding fd 6 (and nothing else) and then
    runs the recorder: its exit must end the wait, not the holder's"""
    pidfile = os.path.join(srv.dir, 'holder.pid')
    body = ('sleep 4 </dev/null >/dev/null 2>&1 &\necho $! >%s\n%s\n'
            % (shlex.quote(pidfile), after))
    return script(srv, 'qq', body), pidfile


def kill_holder(pidfile):
    try:
        with open(pidfile) as f:
            pid = int(f.read())
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            if f.read().startswith(b'sleep'):
                os.kill(pid, 9)
    except (OSError, ValueError):
        pass


@case
def test_qmailqueue_exits_while_fd6_held_open(srv):
    files, pidfile = fd6_holder(srv, 'exec %s' % shlex.quote(RECORDER))
    try:
        t0 = time.time()
        r = attempt(srv, env={'QMAILQUEUE': 'bin/qq'}, files=files,
                    control={'me': ME, 'timeoutsmtpd': '3'})
        dt = time.time() - t0
        queued(r)
        check(dt < 1.5, '250 after %.2f s: the wait outlasted qmail-queue (timeoutsmtpd 3)' % dt)
        srv.stored(1)
        t0 = time.time()
        r = attempt(srv, env={'QMAILQUEUE': 'bin/qq', 'QQ_ERRTEXT': 'Ztext before exit',
                              'QQ_EXIT': '82'}, files=files, control={'me': ME, 'timeoutsmtpd': '3'})
        dt = time.time() - t0
        eq(r, b'451 text before exit\r\n', 'custom text written before the exit, fd 6 still held')
        check(dt < 1.5, 'reply after %.2f s (timeoutsmtpd 3)' % dt)
    finally:
        kill_holder(pidfile)


@case
def test_qmailqueue_killed_by_signal(srv):
    # reads the message and the envelope, then SIGKILL from outside (not a crash of its own)
    files = script(srv, 'qq', 'cat >/dev/null\ncat <&1 >/dev/null\nkill -KILL $$\nexit 0\n')
    r = attempt(srv, env={'QMAILQUEUE': 'bin/qq'}, files=files)
    eq(r, b'451 qq crashed (#4.3.0)\r\n', 'qmail-queue killed by SIGKILL')
    files = script(srv, 'qq', 'kill -TERM $$\nexit 0\n')
    r = attempt(srv, env={'QMAILQUEUE': 'bin/qq'}, files=files)
    eq(r, b'451 qq crashed (#4.3.0)\r\n', 'qmail-queue killed by SIGTERM before reading')
    eq(srv.messages(), [], 'stored messages')


if __name__ == '__main__':
    sys.exit(run('queue'))
