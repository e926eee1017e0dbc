#!/usr/bin/python3
"""Integration: rcpthosts, morercpthosts.cdb, RELAYCLIENT and badmailfrom
(qmail-smtpd-compat.md §2.1-2.4, §3, §4.6, §9.1, §9.2, §9.6, §9.7)."""
import os
import subprocess
import sys
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

OK = b'250 ok\r\n'
NOTALLOWED = b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n"
BADMAILFROM = b'553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n'
MSG = b'Subject: t\r\n\r\nhello\r\n'


def rcpt_replies(srv, rcpts, mail='<a@x.test>'):
    """{recipient: reply} for RCPTs after one MAIL"""
    out = {}
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        eq(s.cmd('MAIL FROM:%s' % mail), OK, 'MAIL reply')
        for r in rcpts:
            out[r] = s.cmd('RCPT TO:<%s>' % r)
    return out


def expect_rcpts(srv, allowed, refused, mail='<a@x.test>', refusal=NOTALLOWED):
    got = rcpt_replies(srv, list(allowed) + list(refused), mail)
    bad = []
    for r in allowed:
        if got[r] != OK:
            bad.append('%s: expected 250 ok, got %r' % (r, got[r]))
    for r in refused:
        if got[r] != refusal:
            bad.append('%s: expected %r, got %r' % (r, refusal, got[r]))
    check(not bad, '; '.join(bad))


def make_cdb(srv, name, keys):
    path = os.path.join(srv.control, name)
    data = ''.join('%s x\n' % k for k in keys).encode()
    subprocess.run(['cdb', '-c', '-m', path, '-'], input=data, check=True)


@case
def test_exact_and_suffix_entries(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n.sub.test\n'})
    expect_rcpts(srv, allowed=['u@example.test', 'u@x.sub.test', 'u@a.b.sub.test'],
                 refused=['u@a.example.test', 'u@sub.test', 'u@xsub.test', 'u@example.testx',
                          'u@other.test', 'u@'])


@case
def test_case_insensitive(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'Example.TEST\n.Sub.Test\n'})
    expect_rcpts(srv, allowed=['u@example.test', 'u@EXAMPLE.TEST', 'U@eXaMpLe.TeSt', 'u@X.SUB.TEST'],
                 refused=['u@Other.Test'])


@case
def test_last_at_only(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'})
    expect_rcpts(srv, allowed=['u@remote.test@example.test', 'u%remote.test@example.test',
                               'remote.test!u@example.test'],
                 refused=['u@example.test@remote.test'])


@case
def test_no_trailing_dot_folding(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'})
    expect_rcpts(srv, allowed=['u@example.test'], refused=['u@example.test.', 'u@.example.test'])


@case
def test_domain_literal_is_a_string(srv):
    srv.configure(control={'me': ME, 'rcpthosts': '[192.0.2.1]\n'})
    expect_rcpts(srv, allowed=['u@[192.0.2.1]'], refused=['u@[192.0.2.2]', 'u@192.0.2.1'])


@case
def test_missing_rcpthosts_allows_everything(srv):
    expect_rcpts(srv, allowed=['u@example.test', 'u@anything.invalid', 'u@[192.0.2.1]', 'u@'],
                 refused=[])


@case
def test_no_at_and_null_recipient_allowed(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<postmaster>', OK)
        s.expect('RCPT TO:<>', OK)
        s.expect('RCPT', OK, 'bare RCPT')
        s.expect('RCPT TO:<u@other.test>', NOTALLOWED)


@case
def test_morercpthosts_cdb(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'})
    make_cdb(srv, 'morercpthosts.cdb', ['dom.test', '.wild.test'])
    expect_rcpts(srv, allowed=['u@example.test', 'u@dom.test', 'u@DOM.Test', 'u@a.wild.test'],
                 refused=['u@x.dom.test', 'u@wild.test', 'u@other.test'])


@case
def test_morercpthosts_with_empty_rcpthosts(srv):
    srv.configure(control={'me': ME, 'rcpthosts': ''})
    make_cdb(srv, 'morercpthosts.cdb', ['dom.test'])
    expect_rcpts(srv, allowed=['u@dom.test'], refused=['u@example.test', 'u@other.test'])


@case
def test_morercpthosts_ignored_without_rcpthosts(srv):
    make_cdb(srv, 'morercpthosts.cdb', ['dom.test'])
    expect_rcpts(srv, allowed=['u@dom.test', 'u@other.test'], refused=[])


@case
def test_crlf_rcpthosts_silently_does_not_match(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\r\nother.test\n'})
    expect_rcpts(srv, allowed=['u@other.test'], refused=['u@example.test'])


@case
def test_rcpthosts_leading_blank_kept_trailing_stripped(srv):
    srv.configure(control={'me': ME, 'rcpthosts': ' lead.test\ntrail.test \t \n\tlead2.test\n'})
    expect_rcpts(srv, allowed=['u@trail.test'], refused=['u@lead.test', 'u@lead2.test'])


@case
def test_rcpthosts_comments_and_blank_lines(srv):
    srv.configure(control={'me': ME,
                           'rcpthosts': '# example.test\n#other.test\n\n\nok.test\n # x.test\n'})
    expect_rcpts(srv, allowed=['u@ok.test'],
                 refused=['u@example.test', 'u@other.test', 'u@x.test', 'u@#other.test'])
    expect_rcpts(srv, allowed=['u@ # x.test'], refused=[])


@case
def test_relayclient_skips_rcpthosts(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'}, env={'RELAYCLIENT': ''})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        queued(send_message(s, rcpts=['<u@remote.test>', '<v@example.test>']))
    eq(srv.stored(1)[0]['env'], envelope('a@x.test', 'u@remote.test', 'v@example.test'), 'envelope')


@case
def test_relayclient_suffix_appended(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'},
                  env={'RELAYCLIENT': '@relay.suffix'})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        queued(send_message(s, mail='<>', rcpts=['<u@remote.test>', '<>', '<postmaster>']))
    eq(srv.stored(1)[0]['env'],
       envelope('', 'u@remote.test@relay.suffix', '@relay.suffix', 'postmaster@relay.suffix'),
       'envelope')


@case
def test_relayclient_suffix_after_length_check(srv):
    # 899 bytes pass the 555 check; the suffix makes 1099, which qmail-queue refuses (exit 11)
    srv.configure(env={'RELAYCLIENT': '@' + 's' * 199})
    long = 'a' * 887 + '@remote.test'
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<%s>' % long, OK, 'RCPT of 899 bytes')
        s.expect('DATA', b'354 go ahead\r\n')
        s.send(MSG + b'.\r\n')
        eq(s.reply(), b'554 envelope address too long for qq (#5.1.3)\r\n', 'reply after the dot')
    r = srv.nothing_stored(1)
    eq(r[0]['exit'], 11, 'recorder exit')


@case
def test_badmailfrom_answered_at_rcpt(srv):
    srv.configure(control={'me': ME, 'badmailfrom': 'bad@evil.test\n'})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<bad@evil.test>', OK, 'MAIL from a bad sender is accepted')
        s.expect('RCPT TO:<u@example.test>', BADMAILFROM, 'first RCPT')
        s.expect('RCPT TO:<v@example.test>', BADMAILFROM, 'second RCPT')
        s.expect('DATA', b'503 RCPT first (#5.5.1)\r\n')
        s.expect('MAIL FROM:<good@evil.test>', OK)
        s.expect('RCPT TO:<u@example.test>', OK, 'the next MAIL is checked afresh')
    srv.nothing_stored(0)


@case
def test_badmailfrom_matching(srv):
    srv.configure(control={'me': ME, 'badmailfrom': 'bad@evil.test\n@spam.test\n@\n'})
    cases = {'<bad@evil.test>': True, '<BAD@Evil.TEST>': True, '<x@spam.test>': True,
             '<x@SPAM.test>': True, '<x@sub.spam.test>': False, '<bad@evil.test.>': False,
             '<other@evil.test>': False, '<spam.test>': False, '<x@y@spam.test>': True,
             '<x@spam.test@y.test>': False, '<foo@>': True, '<>': False}
    bad = []
    for mail, refused in cases.items():
        got = rcpt_replies(srv, ['u@example.test'], mail)['u@example.test']
        want = BADMAILFROM if refused else OK
        if got != want:
            bad.append('%s: expected %r, got %r' % (mail, want, got))
    check(not bad, '; '.join(bad))


@case
def test_badmailfrom_relayclient_does_not_bypass(srv):
    srv.configure(control={'me': ME, 'badmailfrom': '@evil.test\n'}, env={'RELAYCLIENT': ''})
    expect_rcpts(srv, allowed=[], refused=['u@example.test'], mail='<x@evil.test>',
                 refusal=BADMAILFROM)


@case
def test_badmailfrom_before_rcpthosts(srv):
    srv.configure(control={'me': ME, 'badmailfrom': '@evil.test\n', 'rcpthosts': 'example.test\n'})
    expect_rcpts(srv, allowed=[], refused=['u@other.test', 'u@example.test'], mail='<x@evil.test>',
                 refusal=BADMAILFROM)


@case
def test_badmailfrom_crlf_and_comments(srv):
    srv.configure(control={'me': ME, 'badmailfrom': 'crlf@evil.test\r\n#hash@evil.test\n'
                                                    ' lead@evil.test\ntrail@evil.test  \n'})
    bad = []
    for mail, refused in {'<crlf@evil.test>': False, '<#hash@evil.test>': False,
                          '<lead@evil.test>': False, '<trail@evil.test>': True}.items():
        got = rcpt_replies(srv, ['u@example.test'], mail)['u@example.test']
        want = BADMAILFROM if refused else OK
        if got != want:
            bad.append('%s: expected %r, got %r' % (mail, want, got))
    check(not bad, '; '.join(bad))


if __name__ == '__main__':
    sys.exit(run('rcpthosts'))
