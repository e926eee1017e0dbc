#!/usr/bin/python3
"""Integration: the qmail-ldap and sagredo switches (switches.c, policy.md A7) under the real
tcpserver, each set twice: in the environment and through an instruct cdb built by the real
ipsvd-cdb (a file 127.0.0.1 with "+NAME=value" lines). Replies are compared byte for byte with
the texts of qmail-ldap's and sagredo's qmail-smtpd.c. tcpserver runs with -H, so
TCPREMOTEHOST is unset and every client is "unknown" (badmailfrom-unknown applies)."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

OK = b'250 ok\r\n'
GO = b'354 go ahead\r\n'
BYE = b'221 %s\r\n' % ME.encode()
BADSEQ = b'503 bad sequence of commands (#5.5.1)\r\n'
NOTALLOWED = b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n"
BASE = {'me': ME, 'rcpthosts': 'example.test\nvirt.example\n'}


def setups(srv, switches, control=None, files=None):
    """configure the switches through the environment, then through an instruct cdb; yields
    the way used ('env' or 'instruct') with the server configured that way"""
    c = dict(BASE)
    c.update(control or {})
    # names like 550GREETING are not shell identifiers: tcprules sets them, here env(1) does
    plain = {k: v for k, v in switches.items() if re.fullmatch(r'[A-Za-z_]\w*', k)}
    odd = ' '.join(shlex.quote('%s=%s' % kv) for kv in switches.items() if kv[0] not in plain)
    shell = ('exec env %s %s' % (odd, shlex.quote(SMTPD)),) if odd else ()
    srv.configure(control=c, env=plain, files=files, shell=shell)
    yield 'env'
    srv.configure(control=c, files=files)
    peers = os.path.join(srv.dir, 'peers')
    shutil.rmtree(peers, ignore_errors=True)
    os.mkdir(peers)
    with open(os.path.join(peers, '127.0.0.1'), 'w') as f:
        f.write(''.join('+%s=%s\n' % kv for kv in switches.items()))
    os.chmod(os.path.join(peers, '127.0.0.1'), 0o644)
    cdb = os.path.join(srv.control, 'instruct.cdb')
    p = subprocess.run(['ipsvd-cdb', cdb, cdb + '.tmp', peers], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    check(p.returncode == 0, 'ipsvd-cdb failed: %r' % p.stdout)
    yield 'instruct'


def dialogue(srv, steps, how, closes=False):
    """[(command, expected reply)] after the banner (None: the 220 banner); the server must
    close after the last step when closes"""
    with srv.session() as s:
        first = steps[0]
        if first[0] is None:
            eq(s.reply(), first[1], 'greeting (%s)' % how)
            steps = steps[1:]
        else:
            eq(s.reply(), banner(), 'banner (%s)' % how)
        for i, (cmd, want) in enumerate(steps):
            if closes and i == len(steps) - 1:
                s.send(b(cmd) + CRLF)
                s.closed_after(want, what='%s then close (%s)' % (cmd, how))
            else:
                eq(s.cmd(cmd), want, '%s (%s)' % (cmd, how))


@case
def test_no_switch_is_stock(srv):
    """what qmail-ldap or sagredo would refuse, stock qmail-smtpd accepts: byte for byte"""
    srv.configure(control=dict(BASE))
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        eq(s.cmd('HELO friend'), b'250 %s\r\n' % ME.encode(), 'HELO')
        eq(s.cmd('MAIL FROM:<>'), OK, 'null sender')
        eq(s.cmd('RCPT TO:<a%b@example.test>'), OK, 'percent')
        eq(s.cmd('RCPT TO:<c@example.test>'), OK, 'second recipient of a bounce')
        eq(s.cmd('DATA'), GO, 'DATA')
        s.send(b'Subject: t\r\n\r\nhi\r\n.\r\n')
        queued(s.reply())
        eq(s.cmd('MAIL FROM:<noat>'), OK, 'sender without @')
        eq(s.cmd('RCPT TO:<x!y@example.test>'), OK, 'bang path')
        eq(s.cmd('RCPT TO:<u@elsewhere.test>'), NOTALLOWED, 'relay')
        eq(s.cmd('QUIT'), BYE, 'QUIT')
    m = srv.stored(1)[0]
    eq(m['env'], envelope('', 'a%b@example.test', 'c@example.test'), 'envelope')
    eq(split_received(m['msg'])[1], b'Subject: t\n\nhi\n', 'message after Received')
    eq(events(srv.log_lines(), 'switch'), [], 'no switch log line')
    eq(events(srv.log_lines(), 'error'), [], 'no error log line')


@case
def test_550greeting(srv):
    for how in setups(srv, {'550GREETING': ''}):
        dialogue(srv, [(None, b'554 mx.test Sorry, your mail was administratively denied. (#5.7.1)\r\n'),
                       ('EHLO x', BADSEQ), ('MAIL FROM:<a@x.test>', BADSEQ), ('NOOP', BADSEQ),
                       ('QUIT', BYE)], how, closes=True)
    srv.nothing_stored(runs=0)
    for how in setups(srv, {'550GREETING': 'go away', '421GREETING': ''}):
        dialogue(srv, [(None, b'554 mx.test go away\r\n'),
                       ('HELO x', b'421 Service temporarily not available (#4.3.2)\r\n'),
                       ('RCPT TO:<u@example.test>', BADSEQ), ('QUIT', BYE)], how, closes=True)
    for how in setups(srv, {'550GREETING': 'go away', 'SMTP550DISCONNECT': ''}):
        with srv.session() as s:
            s.closed_after(b'554 mx.test go away\r\n', what='554 then close (%s)' % how)


@case
def test_greeting_timeout_is_20s(srv):
    """qmail-ldap sets the timeout to 20 s after such a greeting, whatever timeoutsmtpd says"""
    for how in setups(srv, {'550GREETING': ''}, control={'timeoutsmtpd': '1\n'}):
        with srv.session() as s:
            eq(s.reply()[:4], b'554 ', 'greeting (%s)' % how)
            time.sleep(1.5)
            s.send(b'QUIT\r\n')
            s.closed_after(BYE, what='QUIT after 1.5 s (%s)' % how)


@case
def test_421greeting(srv):
    for how in setups(srv, {'421GREETING': ''}):
        dialogue(srv, [(None, b'421 mx.test Service temporarily not available (#4.3.2)\r\n'),
                       ('EHLO x', b'421 Service temporarily not available (#4.3.2)\r\n'),
                       ('DATA', BADSEQ), ('QUIT', BYE)], how, closes=True)
    ev = events(srv.log_lines(), 'reject') + events(srv.log_lines(), 'defer')
    check(any(e.get('reason') == b'greeting421' for e in ev), 'greeting logged: %r' % ev)


@case
def test_smtp550disconnect(srv):
    for how in setups(srv, {'SMTP550DISCONNECT': ''}):
        dialogue(srv, [('MAIL FROM:<a@x.test>', OK), ('RCPT TO:<u@elsewhere.test>', NOTALLOWED)],
                 how, closes=True)
        dialogue(srv, [('BOGUS', b'502 unimplemented (#5.5.1)\r\n')], how, closes=True)


@case
def test_sanitycheck(srv):
    for how in setups(srv, {'SANITYCHECK': ''}, control={'goodmailfrom': 'ok@nodot\n'}):
        dialogue(srv, [('MAIL FROM:<noat>', b'554 mailfrom without @ is administratively denied\r\n'),
                       ('MAIL FROM:<""@x.test>', b'554 mailfrom without user or domain part is '
                                               b'administratively denied\r\n'),
                       ('MAIL FROM:<u@localhost>', b'554 mailfrom without . in domain part is '
                                                   b'administratively denied\r\n'),
                       ('MAIL FROM:<ok@nodot>', OK), ('MAIL FROM:<>', OK),
                       ('MAIL FROM:<u@x.test>', OK)], how)


@case
def test_nobounce(srv):
    for how in setups(srv, {'NOBOUNCE': '0'}):  # qmail-ldap: any value is on, even 0
        dialogue(srv, [('MAIL FROM:<>', b'554 RFC2821 bounces are administratively denied\r\n'),
                       ('MAIL FROM:<#@[]>', b'554 RFC2821 bounces are administratively denied\r\n'),
                       ('MAIL FROM:<u@x.test>', OK)], how)


@case
def test_one_recipient_bounces(srv):
    for how in setups(srv, {'BLOCKRELAYPROBE': ''}):  # a qmail-ldap client
        dialogue(srv, [('MAIL FROM:<>', OK), ('RCPT TO:<a@example.test>', OK),
                       ('RCPT TO:<b@example.test>', b"550 sorry, I don't accept bounce messages with "
                        b"more than one recipient. Go read RFC2821. (#5.7.1)\r\n"),
                       ('RSET', b'250 flushed\r\n'), ('MAIL FROM:<>', OK),
                       ('RCPT TO:<b@example.test>', OK)], how)
    for how in setups(srv, {'QMAILLDAP': '1'}):
        dialogue(srv, [('MAIL FROM:<>', OK), ('RCPT TO:<a@example.test>', OK),
                       ('RCPT TO:<b@example.test>', b"550 sorry, I don't accept bounce messages with "
                        b"more than one recipient. Go read RFC2821. (#5.7.1)\r\n")], how)


@case
def test_blockrelayprobe(srv):
    probe = b"553 sorry, we don't relay for [127.0.0.1] (#5.7.1)\r\n"
    for how in setups(srv, {'BLOCKRELAYPROBE': '', 'RELAYCLIENT': ''}):  # before the relay test
        dialogue(srv, [('MAIL FROM:<a@x.test>', OK), ('RCPT TO:<a%b@example.test>', probe),
                       ('RCPT TO:<a@b@example.test>', probe), ('RCPT TO:<h!a@example.test>', probe),
                       ('RCPT TO:<u@elsewhere.test>', OK)], how)
    for how in setups(srv, {}, control={'rejectrelaytest': '1\n'}):  # sagredo's control file
        dialogue(srv, [('MAIL FROM:<a@x.test>', OK),
                       ('RCPT TO:<a%b@example.test>', b"553 we don't relay (#5.7.1)\r\n")], how)


def users_cdb(home):
    """users/cdb (qmail-newu's format, through tinycdb's cdb -c) with a wildcard for virt-"""
    rec = (b'!virt-', b'\0'.join([b'virt', b'1006', b'1006', b(home + '/h/virt'), b'-', b'']))
    wild = (b'', b'-')
    data = b''.join(b'+%d,%d:%s->%s\n' % (len(k), len(v), k, v) for k, v in (rec, wild)) + b'\n'
    os.makedirs(home + '/users', exist_ok=True)
    with open(home + '/users/in', 'wb') as f:
        f.write(data)
    subprocess.run(['cdb', '-c', '-t', home + '/users/cdb.tmp', home + '/users/cdb',
                    home + '/users/in'], check=True)


@case
def test_sendercheck(srv):
    files = {'h/virt/.qmail-bob': './Maildir/\n'}
    control = {'virtualdomains': 'virt.example:virt\n', 'goodmailaddr': 'carol@virt.example\n'}
    unknown = b'554 Sorry, no mailbox here by that name. (#5.1.1)\r\n'
    local = b'554 refused mailfrom because valid local sender address required\r\n'
    for mode, remote_ok, rcpthost_ok in (('', OK, OK), ('loose', local, OK), ('STRICT', local, local)):
        for how in setups(srv, {'SENDERCHECK': mode}, control=control, files=files):
            users_cdb(srv.home)
            dialogue(srv, [('MAIL FROM:<bob@virt.example>', OK),
                           ('MAIL FROM:<dave@virt.example>', unknown),
                           ('MAIL FROM:<carol@virt.example>', OK),  # goodmailaddr
                           ('MAIL FROM:<>', OK),
                           ('MAIL FROM:<u@elsewhere.test>', remote_ok),
                           ('MAIL FROM:<u@example.test>', rcpthost_ok)], '%s %s' % (how, mode))
    # the user database cannot be read: 451, or pass with LDAPSOFTOK
    for soft, want in (({}, b'451 temporary failure verifying the sender address (#4.3.0)\r\n'),
                       ({'LDAPSOFTOK': ''}, OK)):
        for how in setups(srv, dict({'SENDERCHECK': ''}, **soft), control=control, files=files):
            os.makedirs(srv.home + '/users/cdb')  # a directory: a read error
            dialogue(srv, [('MAIL FROM:<bob@virt.example>', want)], how)


@case
def test_badmailfrom_unknown(srv):
    want = (b'553 sorry, your mail from a host [127.0.0.1] without valid reverse DNS was '
            b'administratively denied (#5.7.1)\r\n')
    for how in setups(srv, {}, control={'badmailfrom-unknown': '@spam.test\nbad@\n',
                                        'goodmailfrom': 'good@spam.test\n'}):
        dialogue(srv, [('MAIL FROM:<x@spam.test>', want), ('MAIL FROM:<bad@any.test>', want),
                       ('MAIL FROM:<good@spam.test>', OK), ('MAIL FROM:<x@ok.test>', OK)], how)


@case
def test_badrcptto(srv):
    want = b'553 sorry, mail to that recipient is not accepted (#5.7.1)\r\n'
    for how in setups(srv, {}, control={'badrcptto': 'abuse@example.test\n@bad.test\npostmaster@\n'}):
        dialogue(srv, [('MAIL FROM:<a@x.test>', OK), ('RCPT TO:<abuse@example.test>', want),
                       ('RCPT TO:<x@bad.test>', want), ('RCPT TO:<postmaster@example.test>', want),
                       ('RCPT TO:<abuse@example.testx>', NOTALLOWED),
                       ('RCPT TO:<u@example.test>', OK)], how)


@case
def test_badhelo(srv):
    want = b'553 sorry, your HELO host name has been denied (#5.7.1)\r\n'
    for how in setups(srv, {}, control={'badhelo': '^friend$\n!\\.\n'}):
        dialogue(srv, [('HELO Friend', b'250 mx.test\r\n'), ('MAIL FROM:<a@x.test>', OK),
                       ('RCPT TO:<u@example.test>', want), ('RCPT TO:<v@example.test>', want),
                       ('HELO nodots', b'250 mx.test\r\n'), ('MAIL FROM:<a@x.test>', OK),
                       ('RCPT TO:<u@example.test>', want),
                       ('HELO mail.example.test', b'250 mx.test\r\n'), ('MAIL FROM:<a@x.test>', OK),
                       ('RCPT TO:<u@example.test>', OK)], how)


@case
def test_qregex(srv):
    control = {'badmailfrom': '^spam@\n', 'badrcptto': '^abuse@\n'}
    for how in setups(srv, {'QREGEX': '1'}, control=control):
        dialogue(srv, [('MAIL FROM:<SPAM@x.test>', OK),
                       ('RCPT TO:<u@example.test>', b'553 sorry, your envelope sender has been denied (#5.7.1)\r\n'),
                       ('MAIL FROM:<a@x.test>', OK),
                       ('RCPT TO:<abuse@example.test>',
                        b'553 sorry, your envelope recipient has been denied (#5.7.1)\r\n'),
                       ('RCPT TO:<u@example.test>', OK)], how)
    for how in setups(srv, {'QREGEX': '1', 'LOGREGEX': ''}, control=control):
        dialogue(srv, [('MAIL FROM:<spam@x.test>', OK),
                       ('RCPT TO:<u@example.test>', b'553 sorry, your envelope sender has been denied (#5.7.1)\r\n')],
                 how)
        ev = events(srv.log_lines(), 'qregex')
        eq([(e['file'], e['pattern'], e['text']) for e in ev],
           [(b'control/badmailfrom', b'^spam@', b'spam@x.test')], 'LOGREGEX line (%s)' % how)
    for how in setups(srv, {'QREGEX': '1'}, control=dict(control, badmailfromnorelay='^norelay@\n')):
        dialogue(srv, [('MAIL FROM:<norelay@x.test>', OK),
                       ('RCPT TO:<u@example.test>', b'553 sorry, your envelope sender has been denied (#5.7.1)\r\n')],
                 how)
    for how in setups(srv, {'QREGEX': '1', 'RELAYCLIENT': ''}, control=dict(control, badmailfromnorelay='^norelay@\n')):
        dialogue(srv, [('MAIL FROM:<norelay@x.test>', OK), ('RCPT TO:<u@example.test>', OK)], how)
    for how in setups(srv, {'QREGEX': '1', 'DISABLE_BADMAILFROM': ''}, control=control):
        dialogue(srv, [('MAIL FROM:<spam@x.test>', OK), ('RCPT TO:<u@example.test>', OK)], how)
    # without QREGEX, badmailfrom is stock qmail's exact list
    stock = b'553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n'
    for how in setups(srv, {}, control={'badmailfrom': '^spam@\n@spam.test\n'}):
        dialogue(srv, [('MAIL FROM:<spam@x.test>', OK), ('RCPT TO:<u@example.test>', OK),
                       ('MAIL FROM:<a@spam.test>', OK), ('RCPT TO:<u@example.test>', stock)], how)


@case
def test_rejectnullsenders(srv):
    for how in setups(srv, {'REJECTNULLSENDERS': '1'}):
        dialogue(srv, [('MAIL FROM:<a@x.test>', OK),
                       ('MAIL FROM:<>', b'421 null senders temporarily denied (#4.3.0)\r\n')],
                 how, closes=True)
    for how in setups(srv, {}, control={'rejectnullsenders': '1\n'}):
        dialogue(srv, [('MAIL FROM:<>', b'421 null senders temporarily denied (#4.3.0)\r\n')],
                 how, closes=True)


@case
def test_brtlimit(srv):
    for how in setups(srv, {'BRTLIMIT': '2'}):
        dialogue(srv, [('MAIL FROM:<a@x.test>', OK), ('RCPT TO:<u@elsewhere.test>', NOTALLOWED),
                       ('RCPT TO:<u@example.test>', OK), ('RCPT TO:<v@elsewhere.test>', NOTALLOWED),
                       ('RCPT TO:<w@example.test>', b'421 too many invalid addresses, goodbye (#4.3.0)\r\n')],
                 how, closes=True)


@case
def test_unimplemented_logged(srv):
    for how in setups(srv, {'NOLOCAL': '', 'SPFBEHAVIOR': '3', 'CHKUSER_MBXQUOTA': '90'}):
        dialogue(srv, [('QUIT', BYE)], how, closes=True)
        ev = events(srv.log_lines(), 'switch')
        eq(sorted((e['name'], e['act'], e['why']) for e in ev),
           [(b'CHKUSER_MBXQUOTA', b'ignored', b'not implemented'),
            (b'NOLOCAL', b'ignored', b'not implemented'), (b'SPFBEHAVIOR', b'ignored', b'not implemented')],
           'one line per name (%s)' % how)


if __name__ == '__main__':
    sys.exit(run('switches'))
