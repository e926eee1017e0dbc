#!/usr/bin/python3
"""Integration: hostile and broken clients and configurations (STYLE.md §5, §9;
qmail-smtpd-compat.md §1.2, §2.1, §4.7, §4.9): huge lines, NUL bytes, every bare-LF /
SMTP-smuggling variant, 10 000 recipients, silent and vanishing clients, unreadable control
files, pipelining and parallel sessions."""
import os
import random
import re
import socket
import sys
import threading
import time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

OK = b'250 ok\r\n'
GO = b'354 go ahead\r\n'
LONG = b'500 5.5.2 line too long\r\n'
TOOMANY = b'452 4.5.3 too many recipients\r\n'
TIMEOUT = b'451 timeout (#4.4.2)\r\n'
MSG = b'Subject: t\r\n\r\nhello\r\n'


def connect(srv, timeout=5):
    s = srv.session(timeout)
    eq(s.reply(), banner(), 'banner')
    return s


def start_data(srv, timeout=5):
    s = connect(srv, timeout)
    s.expect('MAIL FROM:<a@x.test>', OK)
    s.expect('RCPT TO:<u@example.test>', OK)
    s.expect('DATA', GO)
    return s


# -- long lines

@case
def test_1mb_command_line(srv):
    with connect(srv) as s:
        s.send(b'NOOP ' + b'x' * (1 << 20) + b'\r\n')
        eq(s.reply(), LONG, 'reply to a 1 MB line')
        s.expect('NOOP', OK, 'the session goes on')
        s.send(b'MAIL FROM:<' + b'a' * (1 << 20) + b'@x.test>\r\n')
        eq(s.reply(), LONG, 'reply to a 1 MB MAIL line')
        s.expect('RCPT TO:<u@example.test>', b'503 MAIL first (#5.5.1)\r\n',
                 'the long MAIL was not executed')
        s.send(b'HELO ' + b'h' * (1 << 20) + b'\n')
        s.closed_after(LONG + b'421 4.7.0 too many long lines, closing connection\r\n', 5,
                       'third long line')
    eq(srv.exit_statuses(), [256], 'exit status')


@case
def test_line_limit_boundary(srv):
    with connect(srv) as s:
        s.expect(b'NOOP ' + b'x' * (2048 - 6) + b'\r\n', OK, '2048 bytes before the LF')
        s.expect(b'NOOP ' + b'x' * (2048 - 5) + b'\n', OK, '2048 bytes, bare LF')
        s.expect(b'NOOP ' + b'x' * (2048 - 5) + b'\r\n', LONG, '2049 bytes before the LF')
        s.expect('NOOP', OK)


@case
def test_long_lines_not_consecutive_still_counted(srv):
    with connect(srv) as s:
        for i in range(2):
            s.expect(b'X' * 5000 + b'\r\n', LONG, 'long line %d' % (i + 1))
            s.expect('NOOP', OK)
        s.send(b'X' * 5000 + b'\r\n')
        s.closed_after(LONG + b'421 4.7.0 too many long lines, closing connection\r\n')


@case
def test_long_line_split_over_many_writes(srv):
    with connect(srv) as s:
        for i in range(50):
            s.send(b'y' * 1000)
            time.sleep(0.001)
        s.send(b'\r\nNOOP\r\n')
        eq(s.reply(), LONG, 'long line')
        eq(s.reply(), OK, 'NOOP right after it')


# -- NUL bytes

@case
def test_nul_cannot_smuggle_a_recipient(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'})
    with connect(srv) as s:
        s.expect(b'HELO good.test\0evil stuff', b'250 mx.test\r\n')
        s.expect(b'MAIL FROM:<a@x.test>', OK)
        s.expect(b'RCPT TO:<u@example.test\0@evil.test>', OK)
        s.expect(b'RCPT TO:<u@evil.test\0@example.test>',
                 b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n")
        s.expect('DATA', GO)
        s.send(b'a\0b\r\n\0\r\n.\r\n')
        queued(s.reply())
    m = srv.stored(1)[0]
    eq(m['env'], envelope('a@x.test', 'u@example.test'), 'envelope')
    rec, body = split_received(m['msg'])
    check_received(rec, 'unknown (HELO good.test) (127.0.0.1)')
    eq(body, b'a\0b\n\0\n', 'NUL passes through DATA')


# -- bare LF and SMTP smuggling

SMUGGLE = (b'MAIL FROM:<smuggler@evil.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n'
           b'Subject: smuggled\r\n\r\nevil')
REAL_END = b'\r\n.\r\nQUIT\r\n'
VARIANTS = [
    ('lf_dot_lf', b'body\n.\n'),
    ('cr_dot_cr', b'body\r.\r'),
    ('lf_dot_crlf', b'body\n.\r\n'),
    ('cr_dot_lf', b'body\r.\n'),
    ('crlf_dot_lf', b'body\r\n.\n'),
    ('crlf_dot_cr', b'body\r\n.\r'),
    ('crlf_dot_cr_cr_lf', b'body\r\n.\r\r\n'),
    ('dot_lf_at_start', b'.\n'),
    ('dot_crlf_lf_at_start', b'\r\n.\n'),
    ('lone_lf_first_byte', b'\n'),
    ('lf_in_middle_of_line', b'body\nmore'),
    ('crlf_lf_dot_crlf', b'body\r\n\n.\r\n'),
    ('crlf_dot_space_crlf', b'body\r\n. \r\n'),
    ('crlf_nul_dot_crlf', b'body\r\n\0.\r\n'),
    ('lf_cr_dot_cr_lf', b'body\n\r.\r\n'),
    ('crlf_dot_dot_lf', b'body\r\n..\n'),
]


# where the variant starts: right after DATA (in the first header line), after a header
# line longer than 9 bytes, or in the body after a few lines
POSITIONS = {
    'start': b'',
    'header': b'Subject: a header line that is long\r\nX-Long: ',
    'body': b'Subject: smuggling test\r\nFrom: <a@x.test>\r\n\r\nfirst body line, long enough\r\n',
}


def smuggle(srv, prefix, chunks=None):
    """send prefix + a smuggled transaction + the real end; check the outcome against qmail's
    own algorithm: either 451 smtplf and close with nothing stored, or exactly one message
    holding all the bytes; the smuggled commands are never executed"""
    data = prefix + SMUGGLE + REAL_END
    how, expected, used = qmail_blast(data)
    check(how in ('end', 'barelf'), 'oracle: %s' % how)
    with start_data(srv) as s:
        try:
            if chunks:
                i = 0
                while i < len(data):
                    s.send(data[i:i + chunks])
                    i += chunks
                    time.sleep(0.0005)
            else:
                s.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server already hung up (451 smtplf)
        got = s.read_until_close(5)
    runs = srv.wait_runs(1)
    msgs = srv.messages()
    check(len(msgs) <= 1, '%d messages stored: %r' % (len(msgs), [m['env'] for m in msgs]))
    check(not any(b'smuggler' in m['env'] or b'victim' in m['env'] for m in msgs),
          'a smuggled envelope was queued: %r' % [m['env'] for m in msgs])
    check(not re.search(rb'(^|\n)354', got), 'a smuggled DATA got 354: %r' % got)
    if how == 'barelf':
        eq(got, SMTPLF, 'replies after the data')
        eq(msgs, [], 'stored messages')
        eq(len(runs), 1, 'qmail-queue runs')
        eq(runs[0]['exit'], 54, 'qmail-queue saw no envelope')
    else:
        rest = data[used:]
        eq(rest, b'QUIT\r\n', 'oracle: only QUIT after the end')
        m = match(rb'250 ok \d+ qp (\d+)\r\n221 mx\.test\r\n', got, 'replies after the data')
        eq(len(msgs), 1, 'stored messages')
        eq(msgs[0]['pid'], int(m.group(1)), 'qp')
        eq(msgs[0]['env'], envelope('a@x.test', 'u@example.test'), 'envelope')
        eq(split_received(msgs[0]['msg'])[1], expected, 'the whole stream is one message')
        check(b'smuggler@evil.test' in expected, 'oracle: the smuggled text is inside the message')


def smuggle_case(name, where, prefix, chunks=None):
    def fn(srv):
        smuggle(srv, POSITIONS[where] + prefix, chunks)
    fn.__name__ = 'test_smuggle_%s_%s%s' % (where, name, '_chunked' if chunks else '')
    return fn


for _where in POSITIONS:
    for _name, _prefix in VARIANTS:
        case(smuggle_case(_name, _where, _prefix))
for _name, _prefix in VARIANTS[:6]:
    case(smuggle_case(_name, 'body', _prefix, chunks=1))


def random_streams(srv, seed, head, count):
    """random streams of CR, LF, '.', NUL and letters after head: the stored message (or the
    451) is always what qmail-smtpd's algorithm gives"""
    rnd = random.Random(seed)
    alphabet = [b'\r', b'\n', b'.', b'\0', b'a', b'\r\n', b'\r\n.', b'\r\n.\r', b'abcdefghijkl']
    bad = []
    for n in range(count):
        body = b''.join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 30)))
        data = head + body + b'\r\n.\r\n'
        how, expected, used = qmail_blast(data)
        srv.configure()
        with start_data(srv) as s:
            s.send(data + b'QUIT\r\n')
            got = s.read_until_close(5)
        srv.wait_runs(1)
        msgs = srv.messages()
        if how == 'barelf':
            ok = got == SMTPLF and not msgs
        else:
            tail = data[used:] + b'QUIT\r\n'
            ok = (len(msgs) == 1 and split_received(msgs[0]['msg'])[1] == expected and
                  got.startswith(b'250 ok ') and got.endswith(b'221 mx.test\r\n'))
            # whatever followed the end is answered as commands: never a second 354
            ok = ok and not re.search(rb'(^|\n)354', got) and tail.endswith(b'QUIT\r\n')
        if not ok:
            bad.append('seed %d stream %d %r: qmail gives %s %r, got replies %r and %d messages %r'
                       % (seed, n, data, how, expected, got, len(msgs),
                          [split_received(m['msg'])[1] for m in msgs]))
            break
    check(not bad, '; '.join(bad))


@case
def test_random_data_streams_match_qmail(srv):
    random_streams(srv, int(os.environ.get('MXT_SEED', '20261122')), b'', 40)


@case
def test_random_body_streams_match_qmail(srv):
    random_streams(srv, int(os.environ.get('MXT_SEED', '20261123')), b'Subject: r\r\n\r\n', 40)


# -- many recipients

@case
def test_10000_rcpts_pipelined(srv):
    n = 10000
    with connect(srv, 30) as s:
        data = (b'MAIL FROM:<a@x.test>\r\n' +
                b''.join(b'RCPT TO:<u%d@example.test>\r\n' % i for i in range(n)) +
                b'DATA\r\n' + MSG + b'.\r\nNOOP\r\n')
        t = threading.Thread(target=s.send, args=(data,))
        t0 = time.time()
        t.start()
        replies = s.replies(n + 1, 30)
        t.join()
        eq(replies[0], OK, 'MAIL')
        eq(replies[1:1001], [OK] * 1000, 'the first 1000 RCPT')
        bad = [r for r in replies[1001:] if r != TOOMANY]
        check(not bad, '%d of the later RCPT replies are not %r, e.g. %r' % (len(bad), TOOMANY,
                                                                            bad[:1]))
        eq(s.reply(30), GO, 'DATA')
        queued(s.reply(30))
        eq(s.reply(), OK, 'NOOP after the message')
        s.expect('NOOP', OK, 'still responsive')
        check(time.time() - t0 < 30, 'took %.1f s' % (time.time() - t0))
    env = srv.stored(1)[0]['env']
    eq(env, envelope('a@x.test', *['u%d@example.test' % i for i in range(1000)]),
       'envelope with exactly the first 1000 recipients')


@case
def test_rcpt_limit_is_per_message(srv):
    with connect(srv, 20) as s:
        for msg in range(2):
            s.send(b'MAIL FROM:<a@x.test>\r\n' +
                   b''.join(b'RCPT TO:<m%d.%d@example.test>\r\n' % (msg, i) for i in range(1001)))
            r = s.replies(1002, 20)
            eq(r[:1001], [OK] * 1001, 'MAIL and 1000 RCPT of message %d' % msg)
            eq(r[1001], TOOMANY, 'RCPT 1001 of message %d' % msg)
            s.expect('DATA', GO)
            s.send(MSG + b'.\r\n')
            queued(s.reply())
    m = srv.stored(2)
    eq([x['env'].count(b'\0T') for x in m], [1000, 1000], 'recipients per message')


# -- silent, vanishing and slow clients

@case
def test_silent_client_in_data_times_out(srv):
    srv.configure(control={'me': ME, 'timeoutsmtpd': '1\n'})
    with start_data(srv) as s:
        s.send(b'Subject: x\r\n\r\npartial line')
        t0 = time.time()
        s.closed_after(TIMEOUT, 5, 'after 1 s of silence')
        took = time.time() - t0
    check(0.8 <= took <= 3.5, 'timeout after %.1f s with timeoutsmtpd 1' % took)
    runs = srv.nothing_stored(1)
    eq(runs[0]['exit'], 54, 'qmail-queue saw no envelope')
    eq(srv.exit_statuses(), [256], 'exit status')


@case
def test_silent_client_at_command_times_out(srv):
    srv.configure(control={'me': ME, 'timeoutsmtpd': '1'})
    with connect(srv) as s:
        s.expect('MAIL FROM:<a@x.test>', OK)
        t0 = time.time()
        s.closed_after(TIMEOUT, 5)
        check(0.8 <= time.time() - t0 <= 3.5, 'timeout after %.1f s' % (time.time() - t0))


@case
def test_timeout_is_per_read(srv):
    srv.configure(control={'me': ME, 'timeoutsmtpd': '1'})
    with connect(srv) as s:
        for i in range(2):
            time.sleep(0.6)
            s.expect('NOOP', OK, 'NOOP %d after 0.6 s' % i)
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@example.test>', OK)
        s.expect('DATA', GO)
        for i in range(2):
            time.sleep(0.6)
            s.send(b'line %d\r\n' % i)
        s.send(b'.\r\n')
        queued(s.reply())
    srv.stored(1)


@case
def test_timeoutsmtpd_zero_is_one(srv):
    srv.configure(control={'me': ME, 'timeoutsmtpd': '0'})
    with connect(srv) as s:
        t0 = time.time()
        s.closed_after(TIMEOUT, 5)
        check(0.8 <= time.time() - t0 <= 3.5, 'timeout after %.1f s' % (time.time() - t0))


@case
def test_eof_in_data_stores_nothing(srv):
    with start_data(srv) as s:
        s.send(b'Subject: x\r\n\r\nbody\r\n')
        s.shutdown_write()
        s.closed_after(b'', 5, 'no reply after EOF')
    runs = srv.nothing_stored(1)
    eq(runs[0]['exit'], 54, 'qmail-queue saw no envelope')
    eq(srv.exit_statuses(), [256], 'exit status')


@case
def test_eof_after_dot_without_crlf_stores_nothing(srv):
    with start_data(srv) as s:
        s.send(b'Subject: x\r\n\r\nbody\r\n.')
        s.shutdown_write()
        s.closed_after(b'', 5, 'no reply after EOF')
    srv.nothing_stored(1)
    with start_data(srv) as s:
        s.send(b'Subject: x\r\n\r\nbody\r\n.\r')
        s.shutdown_write()
        s.closed_after(b'', 5, 'no reply after EOF')
    srv.nothing_stored(2)


@case
def test_eof_right_after_data_command(srv):
    with connect(srv) as s:
        s.send(b'MAIL FROM:<a@x.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n')
        s.shutdown_write()
        s.closed_after(OK + OK + GO, 5)
    srv.nothing_stored(1)


@case
def test_client_vanishes_while_server_writes(srv):
    # replies to 20000 pipelined NOOPs go to a socket that was closed with unread data (RST):
    # the smtpd must end quietly (exit 1), not die of SIGPIPE or hang
    s = connect(srv)
    s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\1\0\0\0\0\0\0\0')
    s.send(b'NOOP\r\n' * 20000)
    time.sleep(0.05)
    s.close()
    eq(srv.exit_statuses(), [256], 'exit status')


# -- unreadable configuration

def control_dir_case(name):
    def fn(srv):
        control = {'me': ME, 'rcpthosts': 'example.test\n'}
        control[name] = DIR
        srv.configure(control=control)
        with srv.session() as s:
            s.closed_after(CONTROLS_421, 5, 'reply instead of the banner')
        eq(srv.exit_statuses(), [256], 'exit status')
    fn.__name__ = 'test_control_dir_%s' % name.replace('.', '_')
    return fn


for _name in ['me', 'smtpgreeting', 'rcpthosts', 'badmailfrom', 'databytes', 'timeoutsmtpd',
              'localiphost', 'instruct.cdb']:
    case(control_dir_case(_name))


@case
def test_control_unreadable_morercpthosts_cdb(srv):
    # an open error other than ENOENT (here ELOOP) is a 421 instead of the banner
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n',
                           'morercpthosts.cdb': ('symlink', 'morercpthosts.cdb')})
    with srv.session() as s:
        s.closed_after(CONTROLS_421, 5, 'reply instead of the banner')


@case
def test_control_dir_morercpthosts_cdb(srv):
    # as in qmail, the cdb is opened at start and read at lookup: a directory opens fine, and
    # the first lookup that needs it fails with 421; it is never a 250 or a 5xx
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n', 'morercpthosts.cdb': DIR})
    with srv.session() as s:
        r = s.reply()
        if r == CONTROLS_421:
            return  # refusing at once is fine too
        eq(r, banner(), 'banner')
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@example.test>', OK, 'found in rcpthosts: the cdb is not read')
        s.send('RCPT TO:<u@other.test>\r\n')
        s.closed_after(CONTROLS_421, 5, 'RCPT that needs the cdb')


@case
def test_control_missing_qmail_home(srv):
    srv.configure(env={'QMAILHOME': os.path.join(srv.dir, 'no-such-home')})
    with srv.session() as s:
        s.closed_after(CONTROLS_421, 5, 'reply instead of the banner')


@case
def test_control_read_once_per_connection(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'})
    with connect(srv) as s:
        s.expect('MAIL FROM:<a@x.test>', OK)
        srv.write_control('rcpthosts', 'other.test\n')
        s.expect('RCPT TO:<u@example.test>', OK, 'old rcpthosts still used in this session')
    with connect(srv) as s:
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@other.test>', OK, 'the next connection reads the new file')


# -- pipelining and parallel sessions

@case
def test_50_messages_pipelined_in_one_write(srv):
    with connect(srv, 20) as s:
        data = b''.join(b'MAIL FROM:<s%d@x.test>\r\nRCPT TO:<u%d@example.test>\r\nDATA\r\n'
                        b'Subject: %d\r\n\r\nmessage %d\r\n.\r\n' % (i, i, i, i) for i in range(50))
        s.send(data + b'QUIT\r\n')
        for i in range(50):
            eq(s.replies(3, 20), [OK, OK, GO], 'MAIL RCPT DATA of message %d' % i)
            queued(s.reply(20), 'message %d' % i)
        s.closed_after(b'221 mx.test\r\n')
    m = srv.stored(50)
    got = sorted((x['env'], split_received(x['msg'])[1]) for x in m)
    want = sorted((envelope('s%d@x.test' % i, 'u%d@example.test' % i),
                   b'Subject: %d\n\nmessage %d\n' % (i, i)) for i in range(50))
    eq(got, want, 'the 50 messages')


@case
def test_parallel_sessions(srv):
    errors = []

    def one(i):
        try:
            with srv.session(15) as s:
                eq(s.reply(15), banner(), 'banner')
                r = send_message(s, '<p%d@x.test>' % i, ['<u%d@example.test>' % i],
                                 b'Subject: %d\r\n\r\n' % i + b'x' * 20000 + b'\r\n')
                queued(r)
                s.send('QUIT\r\n')
                s.closed_after(b'221 mx.test\r\n', 15)
        except Exception as e:
            errors.append('session %d: %s' % (i, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    check(not errors, '; '.join(errors[:3]))
    m = srv.stored(20)
    eq(sorted(x['env'] for x in m),
       sorted(envelope('p%d@x.test' % i, 'u%d@example.test' % i) for i in range(20)), 'envelopes')
    eq(srv.exit_statuses(), [0] * 20, 'exit statuses')


if __name__ == '__main__':
    sys.exit(run('hostile'))
