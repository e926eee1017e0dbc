#!/usr/bin/python3
"""Integration: MAIL/RCPT address parsing (qmail-smtpd-compat.md §4.5, §9.5), checked on the
exact envelope bytes qmail-queue receives."""
import os
import sys
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

OK = b'250 ok\r\n'
SYNTAX = b'555 syntax error (#5.5.4)\r\n'
NOTALLOWED = b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n"
MSG = b'Subject: t\r\n\r\nhello\r\n'


def transactions(srv, txs):
    """run each (MAIL line, [RCPT lines]) as a message in one session; the stored envelopes"""
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        for mail, rcpts in txs:
            s.expect(mail, OK)
            for r in rcpts:
                s.expect(r, OK)
            s.expect('DATA', b'354 go ahead\r\n')
            s.send(MSG + b'.\r\n')
            queued(s.reply())
    return [m['env'] for m in srv.stored(len(txs))]


def one(srv, mail, *rcpts):
    return transactions(srv, [(mail, list(rcpts))])[0]


@case
def test_angle_brackets_and_keyword(srv):
    envs = transactions(srv, [
        ('MAIL FROM:<a@x.test>', ['RCPT TO:<u@example.test>']),
        ('MAIL <b@x.test>', ['RCPT <v@example.test>']),
        ('MAIL FROM:c@x.test', ['RCPT TO:w@example.test']),
        ('MAIL FROM:   d@x.test', ['RCPT TO:  z@example.test']),
    ])
    eq(envs, [envelope('a@x.test', 'u@example.test'), envelope('b@x.test', 'v@example.test'),
              envelope('c@x.test', 'w@example.test'), envelope('d@x.test', 'z@example.test')],
       'envelopes')


@case
def test_quotes_removed(srv):
    env = one(srv, 'MAIL FROM:<"quoted local"@x.test>', 'RCPT TO:<"u s e r"@example.test>',
              'RCPT TO:<"a>b"@example.test>')
    eq(env, envelope('quoted local@x.test', 'u s e r@example.test', 'a>b@example.test'), 'envelope')


@case
def test_source_route_dropped(srv):
    env = one(srv, 'MAIL FROM:<@hop1.test:a@x.test>', 'RCPT TO:<@hop1,@hop2:u@example.test>')
    eq(env, envelope('a@x.test', 'u@example.test'), 'envelope')


@case
def test_missing_closing_bracket(srv):
    env = one(srv, 'MAIL FROM:<a@x.test', 'RCPT TO:<u@example.test')
    eq(env, envelope('a@x.test', 'u@example.test'), 'envelope')


@case
def test_parameters_after_address_ignored(srv):
    envs = transactions(srv, [
        ('MAIL FROM: a@x.test SIZE=10', ['RCPT TO:<u@example.test> NOTIFY=NEVER']),
        ('MAIL FROM:<b@x.test> SIZE=999999999 BODY=8BITMIME', ['RCPT TO:v@example.test ORCPT=rfc822;x']),
    ])
    eq(envs, [envelope('a@x.test', 'u@example.test'), envelope('b@x.test', 'v@example.test')],
       'envelopes')


@case
def test_backslash_escapes(srv):
    env = one(srv, r'MAIL FROM:<a\>b@x.test>', r'RCPT TO:<c\\d@example.test>',
              r'RCPT TO:<"e\"f"@example.test>', r'RCPT TO:g\ h@example.test')
    eq(env, envelope('a>b@x.test', r'c\d@example.test', 'e"f@example.test', 'g h@example.test'),
       'envelope')


@case
def test_other_bytes_pass_through(srv):
    env = one(srv, b'MAIL FROM:<#@[]>', b'RCPT TO:<\xe9l\xe8ve@example.test>',
              b'RCPT TO:<u v@example.test>', b'RCPT TO:<u@example.test.>')
    eq(env, envelope(b'#@[]', b'\xe9l\xe8ve@example.test', b'u v@example.test',
                     b'u@example.test.'), 'envelope')


@case
def test_case_preserved(srv):
    env = one(srv, 'MAIL FROM:<MiXeD@X.Test>', 'RCPT TO:<QTest@EXAMPLE.TEST>')
    eq(env, envelope('MiXeD@X.Test', 'QTest@EXAMPLE.TEST'), 'envelope')


@case
def test_duplicates_and_order_kept(srv):
    env = one(srv, 'MAIL FROM:<a@x.test>', 'RCPT TO:<u@example.test>', 'RCPT TO:<v@example.test>',
              'RCPT TO:<u@example.test>')
    eq(env, envelope('a@x.test', 'u@example.test', 'v@example.test', 'u@example.test'), 'envelope')


@case
def test_empty_addresses(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'})
    env = one(srv, 'MAIL FROM:<>', 'RCPT TO:<>', 'RCPT', 'RCPT TO:postmaster')
    eq(env, envelope('', '', '', 'postmaster'), 'envelope')


@case
def test_localiphost_rewrite(srv):
    srv.configure(control={'me': ME, 'localiphost': 'lip.test\n'})
    env = one(srv, 'MAIL FROM:<a@[127.0.0.1]>', 'RCPT TO:<u@[127.0.0.1]>',
              'RCPT TO:<u@[127.000.000.001]>', 'RCPT TO:<u@[0.0.0.0]>',
              'RCPT TO:<u@[127.0.0.1]x>', 'RCPT TO:<u@[192.0.2.1]>', 'RCPT TO:<u@[127.0.0.1]@[127.0.0.1]>',
              'RCPT TO:<u@[127.0.0]>')
    eq(env, envelope('a@lip.test', 'u@lip.test', 'u@lip.test', 'u@lip.test', 'u@[127.0.0.1]x',
                     'u@[192.0.2.1]', 'u@[127.0.0.1]@lip.test', 'u@[127.0.0]'), 'envelope')


@case
def test_localiphost_defaults_to_me(srv):
    # u@mx.test is local: without the recipient check (no such user here) it is taken
    srv.configure(env={'RCPTCHECK': '0'})
    env = one(srv, 'MAIL FROM:<a@[127.0.0.1]>', 'RCPT TO:<u@[127.0.0.1]>')
    eq(env, envelope('a@mx.test', 'u@mx.test'), 'envelope')


@case
def test_localiphost_off_without_me(srv):
    srv.configure(control={'smtpgreeting': 'greet.test'})
    with srv.session() as s:
        eq(s.reply(), banner('greet.test'), 'banner')
        s.expect('MAIL FROM:<a@[127.0.0.1]>', OK)
        s.expect('RCPT TO:<u@[127.0.0.1]>', OK)
        s.expect('DATA', b'354 go ahead\r\n')
        s.send(MSG + b'.\r\n')
        queued(s.reply())
    eq(srv.stored(1)[0]['env'], envelope('a@[127.0.0.1]', 'u@[127.0.0.1]'), 'envelope')


@case
def test_localiphost_before_rcpthosts(srv):
    srv.configure(control={'me': ME, 'localiphost': 'lip.test', 'rcpthosts': 'lip.test\n'})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<u@[127.0.0.1]>', OK, 'rewritten, then allowed by rcpthosts')
        s.expect('RCPT TO:<u@[192.0.2.1]>', NOTALLOWED, 'not ours: not rewritten')


def addr_of(n, domain='@example.test'):
    return 'a' * (n - len(domain)) + domain


@case
def test_899_bytes_ok_900_syntax_error(srv):
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<%s>' % addr_of(900, '@x.test'), SYNTAX, 'MAIL, 900 bytes')
        s.expect('RCPT TO:<u@example.test>', b'503 MAIL first (#5.5.1)\r\n',
                 'a refused MAIL does not start a transaction')
        s.expect('MAIL FROM:<%s>' % addr_of(899, '@x.test'), OK, 'MAIL, 899 bytes')
        s.expect('RCPT TO:<%s>' % addr_of(900), SYNTAX, 'RCPT, 900 bytes')
        s.expect('RCPT TO:<%s>' % addr_of(899), OK, 'RCPT, 899 bytes')
        s.expect('RCPT TO:<"%s">' % addr_of(899), OK, 'quotes are not counted')
        s.expect('DATA', b'354 go ahead\r\n')
        s.send(MSG + b'.\r\n')
        queued(s.reply())
    eq(srv.stored(1)[0]['env'], envelope(addr_of(899, '@x.test'), addr_of(899), addr_of(899)),
       'envelope')


@case
def test_900_bytes_after_localiphost_rewrite(srv):
    # the limit applies to the rewritten address: 886 + "@[127.0.0.1]" (12) = 898 before,
    # 886 + "@" + 14-byte localiphost = 901 after
    srv.configure(control={'me': ME, 'localiphost': 'l' * 14})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<a@x.test>', OK)
        s.expect('RCPT TO:<%s@[127.0.0.1]>' % ('b' * 886), SYNTAX, 'rewritten address too long')


if __name__ == '__main__':
    sys.exit(run('address'))
