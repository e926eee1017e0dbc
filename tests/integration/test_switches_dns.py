#!/usr/bin/python3
"""Integration: the switches that ask DNS (switches.c through dnsbl.c's channel): qmail-ldap's
RBL with control/rbllist (at MAIL) and sagredo's control/dnsbllist / DNSBLLIST (at the first
RCPT), against the real dnsmasq of test_dnsbl.py (tests/dns/dnsmasq.conf: 192.0.2.10 is listed
in bl.test with A 127.0.0.2 and a TXT, .11 with 127.0.0.3 and no TXT, .12 in bl.test and
wl.test) and tests/dns/scripted.py for SERVFAIL. Each switch is set in the environment and
through an instruct cdb built by the real ipsvd-cdb; replies are compared byte for byte."""
import os
import shutil
import subprocess
import sys
import tempfile
sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))
sys.path.insert(0, HERE)
import mxtest  # noqa: E402
import test_dnsbl  # noqa: E402  (its dnsmasq set-up; its cases are dropped below)
from mxtest import *  # noqa: F401,F403,E402

del mxtest.CASES[:]
DNS = test_dnsbl.DNS
OK = b'250 ok\r\n'
NOTHING = object()


def setups(srv, ip, switches, control):
    """the switches in the environment, then through an instruct cdb entry for ip"""
    c = {'me': ME, 'rcpthosts': 'example.test\n'}
    c.update(control)
    base = {'TCPREMOTEIP': ip, 'DNSSERVERS': '127.0.0.1:%d' % DNS['port'], 'DNSBUDGET': '1500'}
    srv.configure(control=c, env=dict(base, **switches))
    yield 'env'
    srv.configure(control=c, env=base)
    peers = os.path.join(srv.dir, 'peers')
    shutil.rmtree(peers, ignore_errors=True)
    os.mkdir(peers)
    with open(os.path.join(peers, ip), 'w') as f:
        f.write(''.join('+%s=%s\n' % kv for kv in switches.items()) or '+MXGTEST=1\n')
    cdb = os.path.join(srv.control, 'instruct.cdb')
    p = subprocess.run(['ipsvd-cdb', cdb, cdb + '.tmp', peers], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    check(p.returncode == 0, 'ipsvd-cdb failed: %r' % p.stdout)
    yield 'instruct'


def talk(srv, steps, how, closes=False):
    with srv.session(timeout=10) as s:
        eq(s.reply()[:4], b'220 ', 'banner (%s)' % how)
        for i, (cmd, want) in enumerate(steps):
            if closes and i == len(steps) - 1:
                s.send(b(cmd) + CRLF)
                s.closed_after(want, what='%s then close (%s)' % (cmd, how))
            else:
                eq(s.cmd(cmd), want, '%s (%s)' % (cmd, how))


def mail(srv, ip, switches, control, want, sender='<a@x.test>'):
    for how in setups(srv, ip, switches, control):
        talk(srv, [('MAIL FROM:%s' % sender, want)] + ([('QUIT', b'221 mx.test\r\n')]
                                                       if want[:4] != b'421 ' else []),
             '%s %s' % (ip, how), closes=want[:4] == b'421 ')


# ---- qmail-ldap: RBL, control/rbllist

@case
def test_rbl_reject(srv):
    rbl = {'rbllist': 'bl.test reject any Listed in bl.test\n'}
    mail(srv, '192.0.2.10', {'RBL': ''}, rbl,
         b'553 sorry, your mailserver [192.0.2.10] is rejected by Listed in bl.test\r\n')
    mail(srv, '192.0.2.30', {'RBL': ''}, rbl, OK)
    mail(srv, '192.0.2.10', {}, rbl, OK)  # no RBL: the file is not used
    mail(srv, '192.0.2.10', {'RBL': '', 'RELAYCLIENT': ''}, rbl, OK)
    mail(srv, '192.0.2.10', {'RBL': ''}, dict(rbl, goodmailfrom='@x.test\n'), OK)


@case
def test_rbl_matchon(srv):
    rbl = {'rbllist': 'bl.test reject 127.0.0.3 three\n'}
    mail(srv, '192.0.2.10', {'RBL': '1'}, rbl, OK)
    mail(srv, '192.0.2.11', {'RBL': '1'}, rbl,
         b'553 sorry, your mailserver [192.0.2.11] is rejected by three\r\n')


@case
def test_rbl_soft_errors_pass(srv):
    rbl = {'rbllist': 'servfail.slow.test reject any broken\nbl.test reject any second\n'}
    mail(srv, '192.0.2.10', {'RBL': ''}, rbl,
         b'553 sorry, your mailserver [192.0.2.10] is rejected by second\r\n')
    mail(srv, '192.0.2.30', {'RBL': ''}, {'rbllist': 'servfail.slow.test reject any broken\n'}, OK)


@case
def test_rbl_parse_error(srv):
    mail(srv, '192.0.2.10', {'RBL': ''}, {'rbllist': 'bl.test reject\n'},
         b'421 unable to read controls (#4.3.0)\r\n')


@case
def test_rbl_addheader(srv):
    for switches, rbl, want in (
            ({'RBL': ''}, 'bl.test addheader any tagged here\n', b'X-RBL: (bl.test) tells us tagged here\n'),
            ({'RBL': ''}, 'bl.test addheader 127.0.0.2 two\n',
             b'X-RBL: (bl.test) matches with 127.0.0.2 and tells us two\n'),
            ({'RBL': '', 'RBLONLYHEADER': ''}, 'bl.test reject any would reject\n',
             b'X-RBL: (bl.test) tells us would reject\n')):
        for how in setups(srv, '192.0.2.10', switches, {'rbllist': rbl}):
            with srv.session(timeout=10) as s:
                eq(s.reply()[:4], b'220 ', 'banner')
                queued(send_message(s))
            msg = srv.stored(1)[0]['msg']
            _, rest = split_received(msg)
            check(rest.startswith(want),
                  'header after Received (%s): %r' % (how, rest[:120]))


@case
def test_returnmxcheck(srv):
    """qmail-ldap: set to any value is on, and MAIL is refused"""
    nomx = b'554 refused mailfrom because return MX does not exist\r\n'
    for value in ('', '0', 'yes'):
        mail(srv, '192.0.2.30', {'RETURNMXCHECK': value}, {}, nomx, sender='<a@nosuch.test>')
    mail(srv, '192.0.2.30', {'RETURNMXCHECK': ''}, {}, OK, sender='<a@example.test>')
    mail(srv, '192.0.2.30', {'RETURNMXCHECK': ''}, {}, OK, sender='<>')
    mail(srv, '192.0.2.30', {'RETURNMXCHECK': ''}, {}, b'421 DNS temporary failure at return MX '
         b'check, try again later (#4.3.0)\r\n', sender='<a@servfail.slow.test>')


# ---- sagredo: control/dnsbllist, DNSBLLIST

def rcpts(srv, ip, switches, control, wants, closes=False):
    for how in setups(srv, ip, switches, control):
        steps = [('MAIL FROM:<a@x.test>', OK)] + [('RCPT TO:<u%d@example.test>' % i, w)
                                                  for i, w in enumerate(wants)]
        if not closes:
            steps.append(('QUIT', b'221 mx.test\r\n'))
        talk(srv, steps, '%s %s' % (ip, how), closes=closes)


TXT10 = b'Listed: see http://bl.test/?192.0.2.10'


@case
def test_dnsbllist_defer_and_close(srv):
    rcpts(srv, '192.0.2.10', {}, {'dnsbllist': 'bl.test\n'}, [b'451 ' + TXT10 + b'\r\n'], closes=True)
    rcpts(srv, '192.0.2.30', {}, {'dnsbllist': 'bl.test\n'}, [OK])


@case
def test_dnsbllist_bounce(srv):
    want = b'553 ' + TXT10 + b'\r\n'
    rcpts(srv, '192.0.2.10', {}, {'dnsbllist': '-bl.test\n'}, [want, want])
    rcpts(srv, '192.0.2.10', {}, {'dnsbllist': 'bl.test:-blocked %IP% here\n'},
          [b'553 blocked 192.0.2.10 here\r\n'])
    rcpts(srv, '192.0.2.11', {}, {'dnsbllist': '-bl.test\n'}, [OK])  # TXT mode: no TXT, not listed
    rcpts(srv, '192.0.2.11', {}, {'dnsbllist': '-bl.test:A only\n'}, [b'553 A only\r\n'])


@case
def test_dnsbllist_verdict_stays(srv):
    """the verdict is given at every RCPT, whatever was refused in between"""
    probe = b"553 sorry, we don't relay for [192.0.2.10] (#5.7.1)\r\n"
    for how in setups(srv, '192.0.2.10', {'BLOCKRELAYPROBE': ''}, {'dnsbllist': '-bl.test:go %IP%\n'}):
        talk(srv, [('MAIL FROM:<a@x.test>', OK), ('RCPT TO:<u@example.test>', b'553 go 192.0.2.10\r\n'),
                   ('RCPT TO:<a%b@example.test>', probe),
                   ('RCPT TO:<v@example.test>', b'553 go 192.0.2.10\r\n')], how)


@case
def test_rbl_two_headers(srv):
    rbl = {'rbllist': 'bl.test addheader any one\nbl2.test addheader any two\n'}
    for how in setups(srv, '192.0.2.10', {'RBL': ''}, rbl):
        with srv.session(timeout=10) as s:
            eq(s.reply()[:4], b'220 ', 'banner')
            queued(send_message(s))
        _, rest = split_received(srv.stored(1)[0]['msg'])
        check(rest.startswith(b'X-RBL: (bl.test) tells us one\nX-RBL: (bl2.test) tells us two\n'),
              'two header lines (%s): %r' % (how, rest[:120]))


@case
def test_dnsbllist_first_decision_stops(srv):
    rcpts(srv, '192.0.2.12', {}, {'dnsbllist': '+wl.test:ok\n-bl.test:no\n'}, [OK])
    rcpts(srv, '192.0.2.10', {}, {'dnsbllist': '=bl.test\n-bl2.test:no\n'}, [OK])
    rcpts(srv, '192.0.2.10', {}, {'dnsbllist': 'nothing.test\n-bl2.test:two\n'}, [b'553 two\r\n'])


@case
def test_dnsbllist_env_and_skips(srv):
    files = {'other': '-bl.test:from the other file\n'}
    rcpts(srv, '192.0.2.10', {'DNSBLLIST': 'control/other'}, files, [b'553 from the other file\r\n'])
    for sw in ({'DNSBLSKIP': ''}, {'RELAYCLIENT': ''}, {'RBLSMTPD': ''}):
        rcpts(srv, '192.0.2.10', sw, {'dnsbllist': '-bl.test\n'}, [OK])


@case
def test_dnsbllist_dns_trouble(srv):
    lists = {'dnsbllist': '-servfail.slow.test\n-bl.test:listed\n'}
    # a failed lookup before: 553 becomes 451 and the connection closes (sagredo's mustnotbounce)
    rcpts(srv, '192.0.2.10', {}, lists, [b'451 listed\r\n'], closes=True)
    rcpts(srv, '192.0.2.30', {}, lists, [OK])
    rcpts(srv, '192.0.2.30', {'DNSBLFAILCLOSED': '1'}, lists,
          [b'451 temporary RBL lookup error\r\n'], closes=True)
    rcpts(srv, '192.0.2.30', {}, dict(lists, dnsblfailclosed='1\n'),
          [b'451 temporary RBL lookup error\r\n'], closes=True)


if __name__ == '__main__':
    tmp = tempfile.mkdtemp(prefix='mxit-swdns.')
    try:
        test_dnsbl.start_dns(tmp)
    except Exception as e:
        print('FAIL switches_dns.start: %s' % e)
        test_dnsbl.stop_dns()
        sys.exit(0)
    try:
        run('switches_dns')
    finally:
        test_dnsbl.stop_dns()
        shutil.rmtree(tmp, ignore_errors=True)
