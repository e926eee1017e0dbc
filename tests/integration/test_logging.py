#!/usr/bin/python3
"""Integration: the log on stderr (DESIGN.md §6, STYLE.md §7, log.c): one key=value line per
event starting pid=N event=NAME, a connect line, reject/defer lines with their context, an
accept line, exactly one end line per session, client strings escaped so a line can never be
forged or split, and LOGLEVEL."""
import os
import re
import sys
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

OK = b'250 ok\r\n'
GO = b'354 go ahead\r\n'
NOTALLOWED = b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n"
RCPTHOSTS = {'me': ME, 'rcpthosts': 'example.test\n'}


def lines(srv):
    """the smtpd's log lines (the recorder's own diagnostics left out), each checked for
    shape: printable ASCII only, pid= event= first, key=value fields, no key twice"""
    out = []
    for l in srv.log_lines():
        if l.startswith(b'qq-recorder: '):
            continue
        bad = [c for c in l if c < 0x20 or c > 0x7e]
        check(not bad, 'raw byte %r in log line %r' % (bytes(bad[:1]), l))
        keys = [k for k, _ in log_fields(l)]
        check(len(keys) == len(set(keys)), 'a key twice in log line %r' % l)
        out.append(l)
    return out


def fields(line):
    return log_fields(line)


def only(lst, what):
    eq(len(lst), 1, 'number of %s lines' % what)
    return lst[0]


@case
def test_connect_line(srv):
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.send('QUIT\r\n')
        s.read_until_close()
    (pid, st), = srv.sessions()
    l = lines(srv)
    eq(fields(l[0]), [('pid', b'%d' % pid), ('event', b'connect'), ('ip', b'127.0.0.1'),
                      ('host', b'unknown'), ('relay', b'no')], 'connect line')


@case
def test_connect_line_relay_and_host(srv):
    srv.configure(env={'RELAYCLIENT': '', 'TCPREMOTEHOST': 'client.example.net'})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
    c = only(events(lines(srv), 'connect'), 'connect')
    eq((c['host'], c['relay']), (b'client.example.net', b'yes'), 'host, relay')


@case
def test_every_line_has_the_session_pid(srv):
    srv.configure(control=dict(RCPTHOSTS))
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('HELO client.test', b'250 mx.test\r\n')
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@other.test>', NOTALLOWED)
        queued(send_message(s))
        s.send('QUIT\r\n')
        s.read_until_close()
    (pid, st), = srv.sessions()
    l = lines(srv)
    check(len(l) >= 4, 'log lines: %r' % l)
    for x in l:
        check(x.startswith(b'pid=%d event=' % pid), 'line without the session pid: %r' % x)


@case
def test_reject_line(srv):
    srv.configure(control=dict(RCPTHOSTS))
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('HELO client.test', b'250 mx.test\r\n')
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@other.test>', NOTALLOWED)
    r = only([fields(x) for x in lines(srv) if b' event=reject ' in x], 'reject')
    eq([k for k, _ in r], ['pid', 'event', 'cmd', 'code', 'esc', 'reason', 'ip', 'helo', 'from', 'to'],
       'keys of the reject line, in order')
    eq(dict(r), dict(r, event=b'reject', cmd=b'RCPT', code=b'553', esc=b'5.7.1', reason=b'rcpthosts',
                     ip=b'127.0.0.1', helo=b'client.test', to=b'<u@other.test>'),
       'reject line')
    eq(dict(r)['from'], b'<a@x.test>', 'from')


@case
def test_badmailfrom_reject_line(srv):
    srv.configure(control={'me': ME, 'badmailfrom': '@evil.test\n'})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<x@evil.test>', OK)
        s.cmd('RCPT TO:<u@example.test>')
    r = only(events(lines(srv), 'reject'), 'reject')
    eq((r['cmd'], r['code'], r['reason'], r['from'], r['to']),
       (b'RCPT', b'553', b'badmailfrom', b'<x@evil.test>', b'<u@example.test>'), 'reject line')


@case
def test_accept_line(srv):
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        pid = queued(send_message(s, rcpts=['<u@example.test>', '<v@example.test>'],
                                  body=b'Subject: x\r\n\r\n..dot\r\n'))
    a = only([fields(x) for x in lines(srv) if b' event=accept ' in x], 'accept')
    d = dict(a)
    eq((d['qp'], d['size'], d['nrcpt']), (b'%d' % pid, b'%d' % len(b'Subject: x\n\n.dot\n'), b'2'),
       'qp, size (converted, without Received), nrcpt')
    eq(d['from'], b'<a@x.test>', 'from')
    check([k for k, _ in a][:3] == ['pid', 'event', 'ip'], 'accept line starts pid event ip')


@case
def test_defer_line_for_qq_failure(srv):
    srv.configure(env={'QQ_EXIT': '71'})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        send_message(s)
    d = only(events(lines(srv), 'defer'), 'defer')
    eq((d['cmd'], d['code'], d['reason']), (b'DATA', b'451', b'qq'), 'defer line')
    eq(events(lines(srv), 'accept'), [], 'accept lines')


@case
def test_one_end_line_per_session(srv):
    srv.configure(control=dict(RCPTHOSTS))
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@other.test>', NOTALLOWED)
        s.expect('RCPT TO:<v@other.test>', NOTALLOWED)
        queued(send_message(s, rcpts=['<u@example.test>', '<w@example.test>'], body=b'12345\r\n'))
        s.expect('XYZZY', b'502 unimplemented (#5.5.1)\r\n')
        s.send('QUIT\r\n')
        s.read_until_close()
    e = only(events(lines(srv), 'end'), 'end')
    eq((e['status'], e['ip'], e['msgs'], e['bytes'], e['rcpt_ok'], e['rcpt_bad'], e['errors']),
       (b'quit', b'127.0.0.1', b'1', b'6', b'2', b'2', b'3'), 'end line')
    eq(e['reasons'], b'rcpthosts:2,unimplemented:1', 'reasons')
    check(re.fullmatch(rb'\d+', e['ms']), 'ms=%r' % e['ms'])
    check(lines(srv)[-1].split(b' ')[1] == b'event=end', 'the end line is the last line')


def end_status(srv, control=None, env=None, script=()):
    srv.configure(control=control, env=env)
    with srv.session(5) as s:
        for x in script:
            if isinstance(x, bytes):
                s.send(x)
            else:
                x(s)
        s.read_until_close(5)
    return only(events(lines(srv), 'end'), 'end')['status']


@case
def test_end_status_for_each_way_out(srv):
    got = {
        'quit': end_status(srv, script=[b'QUIT\r\n']),
        'eof': end_status(srv, script=[b'NOOP\r\n', lambda s: s.shutdown_write()]),
        'timeout': end_status(srv, control={'me': ME, 'timeoutsmtpd': '1'}),
        'barelf': end_status(srv, script=[b'MAIL FROM:<a@x.test>\r\nRCPT TO:<u@example.test>\r\n'
                                          b'DATA\r\nbare\n']),
        'longline': end_status(srv, script=[b'x' * 3000 + b'\r\n'] * 3),
        'control': end_status(srv, control={'me': ME, 'rcpthosts': DIR}),
    }
    want = {'quit': b'quit', 'eof': b'eof', 'timeout': b'timeout', 'barelf': b'barelf',
            'longline': b'longline', 'control': b'control'}
    eq(got, want, 'end status per way out')


@case
def test_control_error_logged(srv):
    srv.configure(control={'me': ME, 'badmailfrom': DIR})
    with srv.session() as s:
        s.closed_after(CONTROLS_421)
    e = only(events(lines(srv), 'error'), 'error')
    eq((e['reason'], e['file']), (b'control', b'control/badmailfrom'), 'error line')
    d = only(events(lines(srv), 'defer'), 'defer')
    eq((d['code'], d['reason']), (b'421', b'control'), 'defer line for the 421')


@case
def test_helo_escaped(srv):
    helo = b'a"b=c\xff\\ d\re\x01 event=accept qp=1'
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect(b'HELO ' + helo, b'250 mx.test\r\n')
        s.expect('RCPT TO:<u@example.test>', b'503 MAIL first (#5.5.1)\r\n')
    r = only(events(lines(srv), 'reject'), 'reject')
    eq(r['helo'], b'a\\x22b\\x3dc\\xff\\x5c d\\x0de\\x01 event\\x3daccept qp\\x3d1', 'helo value')
    eq(events(lines(srv), 'accept'), [], 'no forged accept line')


@case
def test_addresses_escaped(srv):
    srv.configure(control=dict(RCPTHOSTS))
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.send(b'MAIL FROM:<"x\ry\r\npid=1 event=accept"@y.test>\r\n')
        eq(s.replies(2), [OK, b'502 unimplemented (#5.5.1)\r\n'], 'the LF ends the MAIL line')
        s.expect(b'RCPT TO:<"\xe9 > \\\\"@other.test>', NOTALLOWED)
    r = only([e for e in events(lines(srv), 'reject') if e['cmd'] == b'RCPT'], 'RCPT reject')
    eq(r['from'], b'<x\\x0dy>', 'from (one CR before the LF removed)')
    eq(r['to'], b'<\\xe9 > \\x5c@other.test>', 'to')


@case
def test_long_client_strings_cut(srv):
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect(b'HELO ' + b'h' * 1500, b'250 mx.test\r\n')
        s.expect('RCPT TO:<u@example.test>', b'503 MAIL first (#5.5.1)\r\n')
    r = only(events(lines(srv), 'reject'), 'reject')
    eq(r['helo'], b'h' * 200, 'helo cut to 200 bytes')


@case
def test_rcpt_503_logs_no_stale_address(srv):
    # the RCPT refused with 503 was never parsed: its log line must not name another address
    # (the sender of the reset transaction) as to=
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<sender@x.test>', OK)
        s.expect('RSET', b'250 flushed\r\n')
        s.expect('RCPT TO:<rcpt@example.test>', b'503 MAIL first (#5.5.1)\r\n')
    r = only(events(lines(srv), 'reject'), 'reject')
    check(r.get('to') in (None, b'<rcpt@example.test>'),
          'reject line for the 503 names to=%r' % r.get('to'))


@case
def test_mail_555_logs_no_stale_sender(srv):
    # a MAIL refused with 555 must not be logged as if it came from the previous sender
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<old@x.test>', OK)
        s.expect('MAIL FROM:<%s@x.test>' % ('n' * 900), b'555 syntax error (#5.5.4)\r\n')
    r = only(events(lines(srv), 'reject'), 'reject')
    check(r.get('from') != b'<old@x.test>', 'reject line for the refused MAIL says from=%r'
          % r.get('from'))


def busy_session(srv):
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('NOOP', OK)
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@other.test>', NOTALLOWED)
        queued(send_message(s))
        s.send('QUIT\r\n')
        s.read_until_close()


@case
def test_loglevel_0_nothing(srv):
    srv.configure(control=dict(RCPTHOSTS), env={'LOGLEVEL': '0'})
    busy_session(srv)
    eq(srv.log(), b'', 'log')
    srv.configure(control={'me': DIR}, env={'LOGLEVEL': '0'})
    with srv.session() as s:
        s.closed_after(CONTROLS_421)
    eq(srv.log(), b'', 'log of a control error')


@case
def test_loglevel_1_errors_only(srv):
    srv.configure(control=dict(RCPTHOSTS), env={'LOGLEVEL': '1'})
    busy_session(srv)
    eq(srv.log(), b'', 'log of a session without errors of our own')
    srv.configure(control={'me': DIR}, env={'LOGLEVEL': '1'})
    with srv.session() as s:
        s.closed_after(CONTROLS_421)
    eq([x.split(b' ')[1] for x in lines(srv)], [b'event=error'], 'events')


@case
def test_loglevel_2_default(srv):
    srv.configure(control=dict(RCPTHOSTS))
    busy_session(srv)
    eq([x.split(b' ')[1] for x in lines(srv)],
       [b'event=connect', b'event=reject', b'event=rcpt', b'event=accept', b'event=end'], 'events')


@case
def test_loglevel_3_replies(srv):
    srv.configure(control=dict(RCPTHOSTS), env={'LOGLEVEL': '3'})
    busy_session(srv)
    ev = [(d[1][1], dict(d).get('cmd'), dict(d).get('code')) for d in map(fields, lines(srv))]
    eq(ev, [(b'connect', None, None), (b'reply', b'CONNECT', b'220'), (b'reply', b'NOOP', b'250'),
            (b'reply', b'MAIL', b'250'), (b'reject', b'RCPT', b'553'), (b'reply', b'MAIL', b'250'),
            (b'rcpt', None, None), (b'reply', b'RCPT', b'250'), (b'reply', b'DATA', b'354'), (b'accept', None, None),
            (b'reply', b'DATA', b'250'), (b'reply', b'QUIT', b'221'), (b'end', None, None)],
       'events')


@case
def test_loglevel_4_commands(srv):
    srv.configure(control=dict(RCPTHOSTS), env={'LOGLEVEL': '4'})
    busy_session(srv)
    cmds = [(d['verb'], d['arg']) for d in events(lines(srv), 'command')]
    eq(cmds, [(b'NOOP', b''), (b'MAIL', b'FROM:<a@x.test>'), (b'RCPT', b'TO:<u@other.test>'),
              (b'MAIL', b'FROM:<a@x.test>'), (b'RCPT', b'TO:<u@example.test>'), (b'DATA', b''),
              (b'QUIT', b'')], 'logged commands')


if __name__ == '__main__':
    sys.exit(run('logging'))
