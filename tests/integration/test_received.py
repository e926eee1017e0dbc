#!/usr/bin/python3
"""Integration: the Received line the smtpd writes first on qmail-queue's fd 0, byte for byte
(qmail-smtpd-compat.md §5, §9.4), with the date matched by a regular expression."""
import os
import sys
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

OK = b'250 ok\r\n'
BODY = b'Subject: r\r\n\r\nbody\r\n'


def received(srv, helos=(), env=None, body=BODY):
    """the Received line of a message sent after the given HELO/EHLO lines"""
    srv.configure(env=env)
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        for h in helos:
            r = s.cmd(h)
            check(r.startswith(b'250'), '%r got %r' % (h, r))
        queued(send_message(s, body=body))
    rec, rest = split_received(srv.stored(1)[0]['msg'])
    eq(rest, body.replace(b'\r\n', b'\n'), 'message after the Received line')
    return rec


@case
def test_no_helo(srv):
    check_received(received(srv), 'unknown (127.0.0.1)')


@case
def test_helo_shown(srv):
    check_received(received(srv, ['HELO client.test']), 'unknown (HELO client.test) (127.0.0.1)')


@case
def test_ehlo_shown(srv):
    check_received(received(srv, ['EHLO client.test']), 'unknown (HELO client.test) (127.0.0.1)')


@case
def test_last_helo_wins(srv):
    check_received(received(srv, ['HELO first.test', 'EHLO second.test']),
                   'unknown (HELO second.test) (127.0.0.1)')


@case
def test_helo_unknown_matches_missing_remotehost(srv):
    check_received(received(srv, ['HELO unknown']), 'unknown (127.0.0.1)')
    check_received(received(srv, ['HELO UnKnOwN']), 'unknown (127.0.0.1)')


@case
def test_empty_helo(srv):
    check_received(received(srv, ['HELO']), 'unknown (HELO ) (127.0.0.1)')
    check_received(received(srv, ['EHLO   ']), 'unknown (HELO ) (127.0.0.1)')


@case
def test_helo_same_as_remotehost_case_insensitive(srv):
    env = {'TCPREMOTEHOST': 'client.example.net'}
    check_received(received(srv, ['HELO CLIENT.Example.NET'], env), 'client.example.net (127.0.0.1)')
    check_received(received(srv, [], env), 'client.example.net (127.0.0.1)')
    check_received(received(srv, ['HELO other.test'], env),
                   'client.example.net (HELO other.test) (127.0.0.1)')
    check_received(received(srv, ['HELO client.example.net.'], env),
                   'client.example.net (HELO client.example.net.) (127.0.0.1)')


@case
def test_remoteinfo_prefix(srv):
    env = {'TCPREMOTEHOST': 'client.example.net', 'TCPREMOTEINFO': 'identuser'}
    check_received(received(srv, [], env), 'client.example.net (identuser@127.0.0.1)')
    check_received(received(srv, ['HELO other.test'], env),
                   'client.example.net (HELO other.test) (identuser@127.0.0.1)')


@case
def test_by_tcplocalhost_then_tcplocalip(srv):
    check_received(received(srv, [], {'TCPLOCALHOST': 'local.example.test'}), 'unknown (127.0.0.1)',
                   by='local.example.test')
    check_received(received(srv, [], {'TCPLOCALHOST': None}), 'unknown (127.0.0.1)', by='127.0.0.1')
    check_received(received(srv, [], {'TCPLOCALHOST': None, 'TCPLOCALIP': None}),
                   'unknown (127.0.0.1)', by='unknown')


@case
def test_remoteip_unknown(srv):
    check_received(received(srv, [], {'TCPREMOTEIP': None}), 'unknown (unknown)')


@case
def test_unsafe_helo_bytes(srv):
    check_received(received(srv, ['HELO a b  c']), 'unknown (HELO a?b??c) (127.0.0.1)')
    check_received(received(srv, [b'HELO "x" (y);\xff\x01\t<>!#$&*,_~\\\'\r']),
                   'unknown (HELO ?x???y%s) (127.0.0.1)' % ('?' * 18))


@case
def test_safe_helo_bytes_kept(srv):
    check_received(received(srv, ['HELO Az09.@%+/=:-[]']), 'unknown (HELO Az09.@%+/=:-[]) (127.0.0.1)')
    check_received(received(srv, ['HELO [192.0.2.1]']), 'unknown (HELO [192.0.2.1]) (127.0.0.1)')


@case
def test_unsafe_environment_bytes(srv):
    env = {'TCPREMOTEHOST': 'bad host(x)', 'TCPREMOTEINFO': 'id user;', 'TCPLOCALHOST': 'loc al\xff',
           'TCPREMOTEIP': '192.0.2.1 x'}
    check_received(received(srv, ['HELO bad host(x)'], env),
                   'bad?host?x? (id?user?@192.0.2.1?x)', by='loc?al?')


@case
def test_received_is_first_and_client_received_follows(srv):
    body = b'Received: from elsewhere\r\n  by somewhere; date\r\nSubject: r\r\n\r\nbody\r\n'
    rec = received(srv, ['HELO client.test'], body=body)
    check_received(rec, 'unknown (HELO client.test) (127.0.0.1)')


@case
def test_each_message_gets_its_own(srv):
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('HELO one.test', b'250 mx.test\r\n')
        queued(send_message(s))
        s.expect('EHLO two.test', b'250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n')
        queued(send_message(s))
    m = srv.stored(2)
    check_received(split_received(m[0]['msg'])[0], 'unknown (HELO one.test) (127.0.0.1)')
    check_received(split_received(m[1]['msg'])[0], 'unknown (HELO two.test) (127.0.0.1)')


if __name__ == '__main__':
    sys.exit(run('received'))
