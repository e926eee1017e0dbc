#!/usr/bin/python3
"""Integration: the SMTP dialogue reply for reply (qmail-smtpd-compat.md §1.2, §1.3, §4.1-4.4),
through a raw socket, Python's smtplib and swaks."""
import os
import sys
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

MAIL_FIRST = b'503 MAIL first (#5.5.1)\r\n'
RCPT_FIRST = b'503 RCPT first (#5.5.1)\r\n'
UNIMPL = b'502 unimplemented (#5.5.1)\r\n'
OK = b'250 ok\r\n'
EHLO = b'250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n'
MSG = b'Subject: t\r\n\r\nhello\r\n'


def connect(srv, greeting=ME):
    s = srv.session()
    eq(s.reply(), banner(greeting), 'banner')
    return s


@case
def test_banner_from_me(srv):
    with connect(srv) as s:
        s.send('QUIT\r\n')
        s.closed_after(b'221 mx.test\r\n', what='QUIT reply and close')
    eq(srv.exit_statuses(), [0], 'exit status after QUIT (wait status)')


@case
def test_exit_status_1_after_eof(srv):
    with connect(srv) as s:
        s.expect('NOOP', OK)
        s.shutdown_write()
        s.closed_after(b'', what='nothing after EOF')
    eq(srv.exit_statuses(), [256], 'exit status after client EOF (wait status)')


@case
def test_smtpgreeting_overrides_me(srv):
    g = 'greet.test  Welcome, be nice'
    srv.configure(control={'me': ME, 'smtpgreeting': g + ' \t \n second line\n'})
    with connect(srv, g) as s:
        s.expect('HELO client.test', '250 %s\r\n' % g)
        s.expect('EHLO client.test', '250-%s\r\n250-PIPELINING\r\n250 8BITMIME\r\n' % g)
        s.send('QUIT\r\n')
        s.closed_after('221 %s\r\n' % g)


@case
def test_smtpgreeting_without_me(srv):
    srv.configure(control={'smtpgreeting': 'only.greeting.test\n'})
    with connect(srv, 'only.greeting.test') as s:
        s.expect('HELO x', b'250 only.greeting.test\r\n')


@case
def test_me_first_line_only_trailing_blanks_stripped(srv):
    srv.configure(control={'me': 'first.test \t\nsecond.test\n'})
    with connect(srv, 'first.test') as s:
        s.expect('HELO x', b'250 first.test\r\n')


@case
def test_no_me_no_smtpgreeting_421(srv):
    srv.configure(control={})
    with srv.session() as s:
        s.closed_after(CONTROLS_421, what='reply instead of the banner')
    eq(srv.exit_statuses(), [256], 'exit status')


@case
def test_helo_reply(srv):
    with connect(srv) as s:
        s.expect('HELO client.test', b'250 mx.test\r\n')
        s.expect('HELO', b'250 mx.test\r\n', 'HELO without argument')


@case
def test_ehlo_reply(srv):
    with connect(srv) as s:
        s.expect('EHLO client.test', EHLO)
        s.expect('EHLO', EHLO, 'EHLO without argument')


@case
def test_noop_vrfy_help_rset_quit(srv):
    with connect(srv) as s:
        s.expect('NOOP', OK)
        s.expect('NOOP ignored arguments', OK)
        s.expect('VRFY postmaster', b"252 send some mail, i'll try my best\r\n")
        s.expect('VRFY', b"252 send some mail, i'll try my best\r\n")
        s.expect('HELP', b'214 notqmail home page: https://notqmail.org\r\n')
        s.expect('HELP MAIL', b'214 notqmail home page: https://notqmail.org\r\n')
        s.expect('RSET', b'250 flushed\r\n')
        s.expect('RSET x', b'250 flushed\r\n')
        s.send('QUIT now\r\n')
        s.closed_after(b'221 mx.test\r\n')


@case
def test_unknown_verbs_502(srv):
    with connect(srv) as s:
        for c in ['EXPN root', 'ETRN x', 'TURN', 'BDAT 10 LAST', 'AUTH PLAIN AGFhAGI=', 'STARTTLS',
                  'XYZZY', '', ' NOOP', 'NOOPX', 'DATAX', 'MAILX FROM:<a@x.test>', 'RCPTTO:<u@x>',
                  'HELO\tx', 'NOOP\tx', 'QUIT\t']:
            s.expect(c + '\r\n', UNIMPL, 'reply to %r' % c)
        s.expect('NOOP', OK, 'session still fine')


@case
def test_noop_cr_cr_lf_502(srv):
    with connect(srv) as s:
        s.expect(b'NOOP\r\r\n', UNIMPL, 'only one CR is removed')
        s.expect(b'NOOP\r\n', OK)


@case
def test_bare_lf_ends_command_line(srv):
    with connect(srv) as s:
        s.expect(b'NOOP\n', OK)
        s.expect(b'HELO client.test\n', b'250 mx.test\r\n')
        s.expect(b'MAIL FROM:<a@x.test>\n', OK)
        s.expect(b'RCPT TO:<u@example.test>\n', OK)
        s.expect(b'DATA\n', b'354 go ahead\r\n')
        s.send(MSG + b'.\r\n')
        queued(s.reply())
    m = srv.stored(1)[0]
    eq(m['env'], envelope('a@x.test', 'u@example.test'), 'envelope')


@case
def test_nul_truncates_command_line(srv):
    with connect(srv) as s:
        s.expect(b'NOOP\0garbage\r\n', OK)
        s.expect(b'\0NOOP\r\n', UNIMPL, 'NUL first: empty verb')
        s.expect(b'NO\0OP\r\n', UNIMPL, 'NUL inside the verb')
        s.expect(b'MAIL FROM:<a@x.test>\0<evil@x.test>\r\n', OK)
        s.expect(b'RCPT TO:<u@example.test>\0, <v@evil.test>\r\n', OK)
        s.send(b'DATA\0junk\r\n')
        eq(s.reply(), b'354 go ahead\r\n', 'DATA with NUL')
        s.send(MSG + b'.\r\n')
        queued(s.reply())
        s.send(b'QUIT\0\r\n')
        s.closed_after(b'221 mx.test\r\n')
    eq(srv.stored(1)[0]['env'], envelope('a@x.test', 'u@example.test'), 'envelope')


@case
def test_verbs_case_insensitive(srv):
    with connect(srv) as s:
        s.expect('noop', OK)
        s.expect('NoOp', OK)
        s.expect('helo x', b'250 mx.test\r\n')
        s.expect('eHlO x', EHLO)
        s.expect('mail from:<a@x.test>', OK)
        s.expect('rCpT tO:<u@example.test>', OK)
        s.expect('dAtA', b'354 go ahead\r\n')
        s.send(MSG + b'.\r\n')
        queued(s.reply())
        s.expect('vrfy', b"252 send some mail, i'll try my best\r\n")
        s.expect('rset', b'250 flushed\r\n')
        s.send('qUiT\r\n')
        s.closed_after(b'221 mx.test\r\n')
    srv.stored(1)


@case
def test_no_helo_needed(srv):
    with connect(srv) as s:
        queued(send_message(s))
    srv.stored(1)


@case
def test_mail_xyz_is_null_sender(srv):
    with connect(srv) as s:
        s.expect('MAIL xyz', OK)
        s.expect('RCPT TO:<u@example.test>', OK)
        s.expect('MAIL', OK, 'bare MAIL')
        s.expect('RCPT TO:<v@example.test>', OK)
        s.expect('DATA', b'354 go ahead\r\n')
        s.send(MSG + b'.\r\n')
        queued(s.reply())
        s.expect('MAIL xyz', OK)
        s.expect('RCPT TO:<w@example.test>', OK)
        s.expect('DATA', b'354 go ahead\r\n')
        s.send(MSG + b'.\r\n')
        queued(s.reply())
    m = srv.stored(2)
    eq(m[0]['env'], envelope('', 'v@example.test'), 'envelope after bare MAIL')
    eq(m[1]['env'], envelope('', 'w@example.test'), 'envelope after MAIL xyz')


@case
def test_rcpt_before_mail_503(srv):
    with connect(srv) as s:
        s.expect('RCPT TO:<u@example.test>', MAIL_FIRST)
        s.expect('HELO x', b'250 mx.test\r\n')
        s.expect('RCPT TO:<u@example.test>', MAIL_FIRST, 'after HELO')


@case
def test_data_before_mail_503(srv):
    with connect(srv) as s:
        s.expect('DATA', MAIL_FIRST)
        s.expect('NOOP', OK, 'no 354 was sent, session goes on')


@case
def test_data_without_rcpt_503(srv):
    with connect(srv) as s:
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('DATA', RCPT_FIRST)
        s.expect('RCPT TO:<u@example.test>', OK, 'a 503 DATA changes nothing')
        s.expect('DATA', b'354 go ahead\r\n')
        s.send(MSG + b'.\r\n')
        queued(s.reply())
    srv.stored(1)


@case
def test_rejected_rcpt_does_not_count(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'})
    with connect(srv) as s:
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@other.test>',
                 b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n")
        s.expect('DATA', RCPT_FIRST)
    srv.nothing_stored(0)


@case
def test_second_data_after_finished_one_503(srv):
    with connect(srv) as s:
        queued(send_message(s))
        s.expect('DATA', MAIL_FIRST, 'second DATA')
        s.expect('RCPT TO:<v@example.test>', MAIL_FIRST, 'RCPT after the message')
    srv.stored(1)


@case
def test_helo_ehlo_rset_clear_seenmail(srv):
    with connect(srv) as s:
        for clear in ('HELO x', 'EHLO x', 'RSET'):
            s.expect('MAIL FROM:<a@x.test>', OK)
            s.expect('RCPT TO:<u@example.test>', OK)
            s.cmd(clear)
            s.expect('RCPT TO:<v@example.test>', MAIL_FIRST, 'RCPT after MAIL + %s' % clear)
            s.expect('DATA', MAIL_FIRST, 'DATA after MAIL RCPT + %s' % clear)
    srv.nothing_stored(0)


@case
def test_next_mail_clears_rcpt_list(srv):
    with connect(srv) as s:
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@example.test>', OK)
        s.expect('RSET', b'250 flushed\r\n')
        s.expect('MAIL FROM:<b@x.test>', OK)
        s.expect('DATA', RCPT_FIRST, 'recipients of the old transaction are gone')


@case
def test_second_mail_restarts_transaction(srv):
    with connect(srv) as s:
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@example.test>', OK)
        s.expect('MAIL FROM:<b@x.test>', OK)
        s.expect('RCPT TO:<v@example.test>', OK)
        s.expect('DATA', b'354 go ahead\r\n')
        s.send(MSG + b'.\r\n')
        queued(s.reply())
    eq(srv.stored(1)[0]['env'], envelope('b@x.test', 'v@example.test'), 'envelope')


@case
def test_several_messages_one_session(srv):
    with connect(srv) as s:
        p1 = queued(send_message(s, '<a@x.test>', ['<u@example.test>'], b'one\r\n'))
        p2 = queued(send_message(s, '<b@x.test>', ['<v@example.test>', '<w@example.test>'], b'two\r\n'))
        s.send('QUIT\r\n')
        s.closed_after(b'221 mx.test\r\n')
    m = srv.stored(2)
    eq([x['pid'] for x in m], [p1, p2], 'qp of each message')
    eq(m[0]['env'], envelope('a@x.test', 'u@example.test'), 'first envelope')
    eq(m[1]['env'], envelope('b@x.test', 'v@example.test', 'w@example.test'), 'second envelope')
    eq(split_received(m[0]['msg'])[1], b'one\n', 'first body')
    eq(split_received(m[1]['msg'])[1], b'two\n', 'second body')


@case
def test_pipelined_session_in_one_write(srv):
    with connect(srv) as s:
        s.send(b'EHLO client.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<u@example.test>\r\n'
               b'RCPT TO:<v@example.test>\r\nDATA\r\n' + MSG + b'.\r\nNOOP\r\nQUIT\r\n')
        eq(s.reply(), EHLO, 'EHLO')
        eq(s.replies(4), [OK, OK, OK, b'354 go ahead\r\n'], 'MAIL RCPT RCPT DATA')
        queued(s.reply())
        eq(s.reply(), OK, 'NOOP after the dot')
        s.closed_after(b'221 mx.test\r\n')
    eq(srv.stored(1)[0]['env'], envelope('a@x.test', 'u@example.test', 'v@example.test'), 'envelope')


@case
def test_smtplib_session(srv):
    c = srv.smtplib(local_hostname='client.test')
    try:
        eq(c.ehlo(), (250, b'mx.test\nPIPELINING\n8BITMIME'), 'smtplib ehlo')
        check(c.has_extn('pipelining') and c.has_extn('8bitmime'), 'extensions seen by smtplib')
        check(not c.has_extn('size') and not c.has_extn('starttls') and not c.has_extn('auth'),
              'no SIZE/STARTTLS/AUTH advertised')
        eq(c.noop(), (250, b'ok'), 'noop')
        eq(c.verify('postmaster'), (252, b"send some mail, i'll try my best"), 'vrfy')
        eq(c.help(), b'notqmail home page: https://notqmail.org', 'help')
        eq(c.rset(), (250, b'flushed'), 'rset')
        eq(c.mail('sender@x.test'), (250, b'ok'), 'mail')
        eq(c.rcpt('u@example.test'), (250, b'ok'), 'rcpt')
        msg = b'Subject: via smtplib\r\n\r\n.leading dot\r\nline two\r\n'
        code, text = c.data(msg)
        eq(code, 250, 'data code')
        pid = queued(b'250 ' + text + b'\r\n')
        eq(c.quit(), (221, b'mx.test'), 'quit')
    finally:
        c.close()
    m = srv.stored(1)[0]
    eq(m['pid'], pid, 'qp is the pid of qmail-queue')
    eq(m['env'], envelope('sender@x.test', 'u@example.test'), 'envelope')
    rec, rest = split_received(m['msg'])
    check_received(rec, 'unknown (HELO client.test) (127.0.0.1)')
    eq(rest, b'Subject: via smtplib\n\n.leading dot\nline two\n', 'message after smtplib dot-stuffing')


@case
def test_smtplib_sendmail_two_recipients(srv):
    c = srv.smtplib(local_hostname='client.test')
    try:
        refused = c.sendmail('a@x.test', ['u@example.test', 'v@example.test'],
                             b'Subject: s\r\n\r\nbody\r\n')
        eq(refused, {}, 'refused recipients')
        c.quit()
    finally:
        c.close()
    eq(srv.stored(1)[0]['env'], envelope('a@x.test', 'u@example.test', 'v@example.test'), 'envelope')


@case
def test_swaks_send(srv):
    body = os.path.join(srv.dir, 'swaks-msg')
    with open(body, 'wb') as f:
        f.write(b'Subject: swaks test\r\nX-Test: 1\r\n\r\nline one\r\n.dot line\r\n..two dots\r\n')
    rc, out = srv.swaks('-f', 'from@x.test', '-t', 'to@example.test', '--helo', 'swaks.test',
                        '--data', '@' + body)
    eq(rc, 0, 'swaks exit code (output %r)' % out[-500:])
    check(re.search(rb'<-  250 ok \d+ qp \d+', out), 'swaks saw 250 ok TIME qp PID: %r' % out[-500:])
    m = srv.stored(1)[0]
    eq(m['env'], envelope('from@x.test', 'to@example.test'), 'envelope')
    rec, rest = split_received(m['msg'])
    check_received(rec, 'unknown (HELO swaks.test) (127.0.0.1)')
    # swaks ends --data with an empty line of its own before the dot
    eq(rest, b'Subject: swaks test\nX-Test: 1\n\nline one\n.dot line\n..two dots\n\n', 'message')


@case
def test_swaks_pipeline(srv):
    rc, out = srv.swaks('-f', 'a@x.test', '-t', 'u@example.test,v@example.test', '--helo', 'c.test',
                        '--pipeline', '--data', 'Subject: p\r\n\r\npipelined\r\n')
    eq(rc, 0, 'swaks --pipeline exit code (output %r)' % out[-500:])
    m = srv.stored(1)[0]
    eq(m['env'], envelope('a@x.test', 'u@example.test', 'v@example.test'), 'envelope')
    eq(split_received(m['msg'])[1], b'Subject: p\n\npipelined\n\n', 'message (swaks adds an empty line)')


@case
def test_swaks_rejected_rcpt_exit_24(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'})
    rc, out = srv.swaks('-f', 'a@x.test', '-t', 'u@elsewhere.test', '--helo', 'c.test')
    eq(rc, 24, 'swaks exit code when no RCPT is accepted (output %r)' % out[-300:])
    check(b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)" in out,
          'swaks saw the 553: %r' % out[-300:])
    srv.nothing_stored(0)


@case
def test_swaks_rejected_after_data_exit_26(srv):
    srv.configure(env={'QQ_EXIT': '31'})
    rc, out = srv.swaks('-f', 'a@x.test', '-t', 'u@example.test', '--helo', 'c.test')
    eq(rc, 26, 'swaks exit code for a 554 after the dot (output %r)' % out[-300:])
    check(b'554 mail server permanently rejected message (#5.3.0)' in out, 'swaks saw the 554')
    srv.nothing_stored(1)


if __name__ == '__main__':
    sys.exit(run('protocol'))
