#!/usr/bin/python3
"""Integration: the ipsvd instructions cdb (formats.md §1, instruct.c): built with ipsvd-cdb
from a directory of files (mode 0644 instructions, 0744 a command, 0000 deny), found at
$INSTRUCTCDB or control/instruct.cdb. Under tcpserver the client is 127.0.0.1."""
import os
import shutil
import subprocess
import sys
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

OK = b'250 ok\r\n'
GO = b'354 go ahead\r\n'
NOTALLOWED = b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n"
TOOBIG = b'552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n'
RCPTHOSTS = {'me': ME, 'rcpthosts': 'example.test\n'}


def instruct(srv, entries, control=None, env=None, path='control/instruct.cdb'):
    """configure, then build the cdb at path (below the qmail home) from {name: (text, mode)}"""
    srv.configure(control=control or dict(RCPTHOSTS), env=env)
    peers = os.path.join(srv.dir, 'peers')
    shutil.rmtree(peers, ignore_errors=True)
    os.mkdir(peers)
    for name, (text, mode) in entries.items():
        fn = os.path.join(peers, name)
        with open(fn, 'wb') as f:
            f.write(b(text))
        os.chmod(fn, mode)
    cdb = os.path.join(srv.home, path)
    os.makedirs(os.path.dirname(cdb), exist_ok=True)
    p = subprocess.run(['ipsvd-cdb', cdb, cdb + '.tmp', peers], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    check(p.returncode == 0, 'ipsvd-cdb failed: %r' % p.stdout)


def relay_reply(srv, rcpt='u@remote.test'):
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('MAIL FROM:<a@x.test>', OK)
        return s.cmd('RCPT TO:<%s>' % rcpt)


def instruct_log(srv):
    return events(srv.log_lines(), 'instruct')


@case
def test_exact_ip_sets_relayclient(srv):
    instruct(srv, {'127.0.0.1': ('+RELAYCLIENT=\n', 0o644)})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        queued(send_message(s, rcpts=['<u@remote.test>', '<v@example.test>']))
    eq(srv.stored(1)[0]['env'], envelope('a@x.test', 'u@remote.test', 'v@example.test'), 'envelope')
    ev = instruct_log(srv)
    eq([(e.get('key'), e.get('act')) for e in ev], [(b'127.0.0.1', b'allow')], 'instruct log')


@case
def test_without_entry_rcpthosts_applies(srv):
    instruct(srv, {'10.1.2.3': ('+RELAYCLIENT=\n', 0o644), '127.0.0.2': ('+RELAYCLIENT=\n', 0o644)})
    eq(relay_reply(srv), NOTALLOWED, 'RCPT to a remote domain')
    eq(instruct_log(srv), [], 'instruct log')


@case
def test_prefix_entry(srv):
    instruct(srv, {'127.0.0': ('+RELAYCLIENT=@suffix.test\n', 0o644)})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        queued(send_message(s, rcpts=['<u@remote.test>']))
    eq(srv.stored(1)[0]['env'], envelope('a@x.test', 'u@remote.test@suffix.test'), 'envelope')


@case
def test_short_prefix_entry(srv):
    instruct(srv, {'127': ('+RELAYCLIENT=\n', 0o644), '12': ('+DATABYTES=1\n', 0o644)})
    eq(relay_reply(srv), OK, 'RCPT to a remote domain')


@case
def test_catch_all_zero(srv):
    instruct(srv, {'0': ('+RELAYCLIENT=\n', 0o644), '10': ('+DATABYTES=1\n', 0o644)})
    eq(relay_reply(srv), OK, 'RCPT to a remote domain')
    eq([e.get('key') for e in instruct_log(srv)], [b'0'], 'matched key')


@case
def test_longest_prefix_first_no_merging(srv):
    instruct(srv, {'127.0.0.1': ('+DATABYTES=5\n', 0o644), '127.0': ('+RELAYCLIENT=\n', 0o644),
                   '0': ('+RELAYCLIENT=\n', 0o644)})
    eq(relay_reply(srv), NOTALLOWED, 'only the exact entry applies')
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        eq(send_message(s, body=b'123456\r\n'), TOOBIG, 'DATABYTES=5 from the exact entry')


@case
def test_unset_variable(srv):
    instruct(srv, {'127.0.0.1': ('+RELAYCLIENT\n', 0o644)}, env={'RELAYCLIENT': ''})
    eq(relay_reply(srv), NOTALLOWED, '+RELAYCLIENT unsets the process variable')


@case
def test_instructions_override_process_environment(srv):
    instruct(srv, {'127.0.0.1': ('+DATABYTES=10\n+RELAYCLIENT=@new.test\n', 0o644)},
             env={'DATABYTES': '1000', 'RELAYCLIENT': '@old.test'})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        eq(send_message(s, rcpts=['<u@remote.test>'], body=b'1234567890\r\n'), TOOBIG,
           '11 bytes with DATABYTES=10 from the cdb')
        queued(send_message(s, rcpts=['<v@remote.test>'], body=b'123456789\r\n'))
    eq(srv.stored(1)[0]['env'], envelope('a@x.test', 'v@remote.test@new.test'), 'envelope')


@case
def test_instruction_reaches_qmail_queue(srv):
    instruct(srv, {'127.0.0.1': ('+QQ_EXIT=71\n', 0o644)})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        eq(send_message(s), b'451 mail server temporarily rejected message (#4.3.0)\r\n',
           'reply (QQ_EXIT set by the cdb)')
    srv.nothing_stored(1)


@case
def test_comments_and_empty_lines(srv):
    instruct(srv, {'127.0.0.1': ('# a comment\n\n+RELAYCLIENT=\n#+RELAYCLIENT\n+\n+=x\n', 0o644)})
    eq(relay_reply(srv), OK, 'RCPT to a remote domain')
    eq([e.get('act') for e in instruct_log(srv)], [b'allow'], 'no warnings for comments')


@case
def test_empty_entry_allows(srv):
    instruct(srv, {'127.0.0.1': ('', 0o644), '0': ('+RELAYCLIENT=\n', 0o644)})
    eq(relay_reply(srv), NOTALLOWED, 'an empty entry matches and changes nothing')


@case
def test_deny_entry(srv):
    instruct(srv, {'127.0.0.1': ('', 0o000)})
    with srv.session() as s:
        got = s.read_until_close(5)
    match(rb'5\d\d [^\r\n]*\r\n', got, 'one 5xx line, then close')
    eq(got, b'554 mx.test sorry, your address is not allowed to use this server (#5.7.1)\r\n',
       'deny greeting')
    eq([e.get('act') for e in instruct_log(srv)], [b'deny'], 'instruct log')
    srv.nothing_stored(0)


@case
def test_exec_entry(srv):
    instruct(srv, {'127.0.0.1': ('echo 554 go away\n', 0o744)})
    with srv.session() as s:
        s.closed_after(b'554 go away\n', 5, 'output of the command, then close')
    eq([e.get('act') for e in instruct_log(srv)], [b'exec'], 'instruct log')


@case
def test_exec_entry_sees_environment(srv):
    instruct(srv, {'127.0.0.1': ('printf "421 %s busy\\r\\n" "$TCPREMOTEIP"\n', 0o744)})
    with srv.session() as s:
        s.closed_after(b'421 127.0.0.1 busy\r\n', 5)


@case
def test_missing_cdb_normal_session(srv):
    srv.configure(control=dict(RCPTHOSTS))
    eq(relay_reply(srv), NOTALLOWED, 'RCPT to a remote domain')
    eq(relay_reply(srv, 'u@example.test'), OK, 'RCPT to a local domain')


@case
def test_unreadable_cdb_421(srv):
    srv.configure(control={'me': ME, 'instruct.cdb': DIR})
    with srv.session() as s:
        s.closed_after(CONTROLS_421, 5, 'reply instead of the banner')


@case
def test_corrupt_cdb_421(srv):
    srv.configure(control={'me': ME, 'instruct.cdb': 'not a cdb at all'})
    with srv.session() as s:
        s.closed_after(CONTROLS_421, 5, 'reply instead of the banner')


@case
def test_value_without_type_byte_is_no_entry(srv):
    srv.configure(control=dict(RCPTHOSTS))
    p = subprocess.run(['cdb', '-c', '-m', os.path.join(srv.control, 'instruct.cdb'), '-'],
                       input=b'127.0.0.1 +RELAYCLIENT=\n0 +RELAYCLIENT=\n')
    check(p.returncode == 0, 'cdb -c failed')
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')


@case
def test_instructcdb_path(srv):
    instruct(srv, {'127.0.0.1': ('+RELAYCLIENT=\n', 0o644)}, path='elsewhere/peers.cdb',
             env={'INSTRUCTCDB': os.path.join(srv.dir, 'home', 'elsewhere', 'peers.cdb')})
    eq(relay_reply(srv), OK, 'RCPT to a remote domain')


@case
def test_instructcdb_relative_to_qmail_home(srv):
    instruct(srv, {'127.0.0.1': ('+RELAYCLIENT=\n', 0o644)}, path='elsewhere/peers.cdb',
             env={'INSTRUCTCDB': 'elsewhere/peers.cdb'})
    eq(relay_reply(srv), OK, 'RCPT to a remote domain')


@case
def test_instructcdb_empty_switches_off(srv):
    instruct(srv, {'127.0.0.1': ('', 0o000)}, env={'INSTRUCTCDB': ''})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner although control/instruct.cdb denies')


@case
def test_concurrency_and_dns_lines_ignored(srv):
    instruct(srv, {'127.0.0.1': ('C5:busy\n=gw.example.net:10.1\n+RELAYCLIENT=\n', 0o644)})
    eq(relay_reply(srv), OK, 'session goes on and later lines apply')
    ev = instruct_log(srv)
    ignored = [e for e in ev if e.get('act') == b'ignored']
    eq([e.get('line') for e in ignored], [b'C5:busy', b'\\x3dgw.example.net:10.1'],
       'ignored lines are logged (escaped)')
    eq([e.get('act') for e in ev if e.get('act') != b'ignored'], [b'allow'], 'then the entry')


@case
def test_host_name_entry(srv):
    instruct(srv, {'example.net': ('+RELAYCLIENT=\n', 0o644)},
             env={'TCPREMOTEHOST': 'mx1.Mail.Example.NET'})
    eq(relay_reply(srv), OK, 'parent domain of TCPREMOTEHOST, case-insensitive')


@case
def test_ip_entry_before_host_entry(srv):
    instruct(srv, {'127': ('+DATABYTES=5\n', 0o644), 'mail.example.net': ('+RELAYCLIENT=\n', 0o644)},
             env={'TCPREMOTEHOST': 'mail.example.net'})
    eq(relay_reply(srv), NOTALLOWED, 'the IP prefix wins over the host name')


@case
def test_instruction_sets_loglevel(srv):
    instruct(srv, {'127.0.0.1': ('+LOGLEVEL=0\n', 0o644)})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.expect('RCPT TO:<u@example.test>', b'503 MAIL first (#5.5.1)\r\n')
    eq(srv.log(), b'', 'log with LOGLEVEL=0 from the cdb')


if __name__ == '__main__':
    sys.exit(run('instruct'))
