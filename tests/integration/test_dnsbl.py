#!/usr/bin/python3
"""Integration: dnsbl.c - DNSBL/DNSWL scores, RBLSMTPD, rDNS and FCrDNS switches and the sender
domain check (RETURNMXCHECK), against a real dnsmasq on a free loopback port (tests/dns/
dnsmasq.conf) and, for what a real server will not do on purpose (slow, silent, SERVFAIL,
garbage), tests/dns/scripted.py behind it (server=/slow.test/). Other client addresses are
given through TCPREMOTEIP, which is what tcpserver exports."""
import os
import socket
import subprocess
import sys
import time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

DNSDIR = os.path.join(MXG_SRC, 'tests', 'dns')
OK = b'250 ok\r\n'
DNS = {}  # 'port', 'slowport', procs


def udp_port():
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(('127.0.0.1', 0))
        p = s.getsockname()[1]
        s.close()
        t = socket.socket()
        try:
            t.bind(('127.0.0.1', p))  # dnsmasq wants TCP too
            t.close()
            return p
        except OSError:
            t.close()
    raise RuntimeError('no free port')


def start_dns(tmp):
    slow = subprocess.Popen(['/usr/bin/python3', os.path.join(DNSDIR, 'scripted.py'), '0'],
                            stdout=subprocess.PIPE)
    # port 0 is not useful to dnsmasq: pick one, then start the responder on it
    slow.kill()
    slow.wait()
    sp = udp_port()
    slow = subprocess.Popen(['/usr/bin/python3', os.path.join(DNSDIR, 'scripted.py'), str(sp)],
                            stdout=subprocess.PIPE)
    if slow.stdout.readline().strip() != b'ready':
        raise RuntimeError('scripted.py did not start')
    for attempt in range(5):
        port = udp_port()
        conf = os.path.join(tmp, 'dnsmasq.conf')
        with open(os.path.join(DNSDIR, 'dnsmasq.conf')) as f:
            text = f.read()
        with open(conf, 'w') as f:
            f.write(text + '\nport=%d\nserver=/slow.test/127.0.0.1#%d\n'
                    'server=/40.2.0.192.in-addr.arpa/127.0.0.1#%d\nlog-facility=%s/dnsmasq.log\n'
                    'log-queries\n' % (port, sp, sp, tmp) + ('user=root\n' if os.getuid() == 0 else ''))
        dm = subprocess.Popen(['dnsmasq', '--conf-file=' + conf, '--keep-in-foreground'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if dm.poll() is not None:
                break
            r = subprocess.run(['dig', '@127.0.0.1', '-p', str(port), '+short', '+time=1',
                                '+tries=1', 'mail.example.test'], stdout=subprocess.PIPE)
            if r.stdout.strip() == b'192.0.2.25':
                DNS.update(port=port, slowport=sp, procs=[dm, slow], log=tmp + '/dnsmasq.log')
                return
            time.sleep(0.02)
        dm.kill()
        dm.wait()
    slow.kill()
    raise RuntimeError('dnsmasq did not start')


def stop_dns():
    for p in DNS.get('procs', []):
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def conf(srv, ip='192.0.2.10', dnsbl=None, env=None, control=None, servers=None):
    c = {'me': ME, 'rcpthosts': 'example.test\n'}
    if dnsbl is not None:
        c['dnsbl'] = dnsbl
    c.update(control or {})
    e = {'TCPREMOTEIP': ip, 'DNSSERVERS': servers or '127.0.0.1:%d' % DNS['port']}
    e.update(env or {})
    srv.configure(control=c, env=e)


def rcpt(srv, mail='<a@example.test>', to='<u@example.test>', helo='client.example.test'):
    """(RCPT reply, seconds from connect to the RCPT reply)"""
    t0 = time.time()
    with srv.session(timeout=10) as s:
        eq(s.reply()[:4], b'220 ', 'banner')
        s.cmd('HELO %s' % helo)
        m = s.cmd('MAIL FROM:%s' % mail)
        eq(m, OK, 'MAIL reply')
        r = s.cmd('RCPT TO:%s' % to)
        el = time.time() - t0
        s.cmd('QUIT')
    return r, el


def mail_reply(srv, mail, helo='client.example.test'):
    """the reply to MAIL FROM (RETURNMXCHECK answers there, as qmail-ldap does)"""
    with srv.session(timeout=10) as s:
        eq(s.reply()[:4], b'220 ', 'banner')
        s.cmd('HELO %s' % helo)
        m = s.cmd('MAIL FROM:%s' % mail)
        if m[:4] != b'421 ':
            s.cmd('QUIT')
    return m


NOMX = b'554 refused mailfrom because return MX does not exist\r\n'
MXTEMP = b'421 DNS temporary failure at return MX check, try again later (#4.3.0)\r\n'


def dnsline(srv):
    ev = events(srv.log_lines(), 'dns')
    check(len(ev) == 1, 'one event=dns line, got %r' % srv.log_lines())
    return ev[0]


@case
def test_no_dns_config_no_change(srv):
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'},
                  env={'TCPREMOTEIP': '192.0.2.10'})
    before = open(DNS['log'], 'rb').read().count(b'query[')
    r, _ = rcpt(srv)
    eq(r, OK)
    check(not events(srv.log_lines(), 'dns'), 'no dns line without configuration')
    time.sleep(0.1)
    eq(open(DNS['log'], 'rb').read().count(b'query['), before, 'queries seen by dnsmasq')


@case
def test_listed_v4_refused_with_txt(srv):
    conf(srv, dnsbl='bl.test\n')
    r, _ = rcpt(srv)
    eq(r, b'553 sorry, your mailserver [192.0.2.10] is rejected by bl.test: '
          b'Listed: see http://bl.test/?192.0.2.10 (#5.7.1)\r\n')
    d = dnsline(srv)
    eq(d['dnsbl'], b'bl.test:127.0.0.2', 'dnsbl=')
    eq(d['rdns'], b'client.example.test', 'rdns=')
    eq(d['fcrdns'], b'ok', 'fcrdns=')
    rej = events(srv.log_lines(), 'reject')
    check(rej and rej[0]['reason'] == b'dnsbl:bl.test', 'reject reason: %r' % rej)


@case
def test_unlisted_v4_and_v6(srv):
    for ip in ('192.0.2.30', '2001:db8::99'):
        conf(srv, ip=ip, dnsbl='bl.test\n')
        r, _ = rcpt(srv)
        eq(r, OK, 'RCPT for %s' % ip)
        d = dnsline(srv)
        check('dnsbl' not in d and d['score'] == b'0', 'unlisted %s: %r' % (ip, d))
        eq(d['rdns'], b'none', 'rdns for %s' % ip)


@case
def test_listed_v6_nibbles(srv):
    conf(srv, ip='2001:db8::10', dnsbl='bl.test\n', env={'REQUIREFCRDNS': '1'})
    r, _ = rcpt(srv)
    eq(r, b'553 sorry, your mailserver [2001:db8::10] is rejected by bl.test: v6 listed (#5.7.1)\r\n')
    eq(dnsline(srv)['fcrdns'], b'ok', 'fcrdns for v6')


@case
def test_return_code_filter(srv):
    conf(srv, ip='192.0.2.11', dnsbl='bl.test=127.0.0.2\n')
    eq(rcpt(srv)[0], OK, '127.0.0.3 outside the filter')
    conf(srv, ip='192.0.2.11', dnsbl='bl.test=127.0.0.[2..3]\n')
    eq(rcpt(srv)[0][:4], b'553 ', '127.0.0.3 inside the filter')
    conf(srv, ip='192.0.2.13', dnsbl='odd.test\n')  # answers outside 127/8 never count
    eq(rcpt(srv)[0], OK, '10.1.2.3 answer')


@case
def test_weights_and_threshold(srv):
    conf(srv, dnsbl='bl.test*2\n', env={'DNSBLTHRESHOLD': '3'})
    eq(rcpt(srv)[0], OK, 'score 2 < 3')
    eq(dnsline(srv)['score'], b'2', 'score')
    conf(srv, dnsbl='bl.test*2\nbl2.test\n', control={'dnsblthreshold': '3\n'})
    r, _ = rcpt(srv)
    eq(r[:4], b'553 ', 'score 3 >= 3')
    check(b'rejected by bl.test:' in r, 'the heaviest list names the refusal: %r' % r)


@case
def test_txt_escaped(srv):
    conf(srv, dnsbl='bl2.test\n')
    r, _ = rcpt(srv)
    check(r.startswith(b'553 sorry, your mailserver [192.0.2.10] is rejected by bl2.test: bad')
          and r.count(b'\r\n') == 1 and all(32 <= c < 127 for c in r[:-2]), 'reply %r' % r)


@case
def test_dnswl_overrides(srv):
    conf(srv, ip='192.0.2.12', dnsbl='bl.test\nwl.test*-5\n', env={'REQUIREPTR': '1'})
    eq(rcpt(srv)[0], OK, 'DNSWL hit permits, even without a PTR')
    eq(dnsline(srv)['score'], b'-4', 'score')
    conf(srv, ip='192.0.2.12', dnsbl='bl.test\n')
    eq(rcpt(srv)[0][:4], b'553 ', 'without the DNSWL')


@case
def test_rblsmtpd(srv):
    conf(srv, dnsbl='bl.test\n', env={'RBLSMTPD': '-go away'})
    eq(rcpt(srv)[0], b'553 go away\r\n')
    conf(srv, ip='192.0.2.30', env={'RBLSMTPD': 'try later'})
    eq(rcpt(srv)[0], b'451 try later\r\n')
    conf(srv, dnsbl='bl.test\n', env={'RBLSMTPD': ''})
    eq(rcpt(srv)[0], OK, 'empty RBLSMTPD: no list lookups')


@case
def test_relayclient_skips(srv):
    conf(srv, dnsbl='bl.test\n', env={'RELAYCLIENT': ''})
    eq(rcpt(srv)[0], OK)
    check(not events(srv.log_lines(), 'dns'), 'no lookups for a relay client')


@case
def test_require_ptr(srv):
    for ip, want in (('192.0.2.10', OK),
                     ('192.0.2.30', b'550 sorry, your address [192.0.2.30] has no PTR record (#5.7.25)\r\n'),
                     ('192.0.2.40', b'451 temporary DNS failure looking up your address [192.0.2.40] (#4.7.25)\r\n'),
                     ('192.0.2.20', OK)):
        conf(srv, ip=ip, control={'requireptr': '1\n'})
        eq(rcpt(srv)[0], want, 'RCPT for %s' % ip)
    conf(srv, ip='192.0.2.40', env={'REQUIREPTR': '1'})
    rcpt(srv)
    eq(dnsline(srv)['rdns'], b'temp', 'rdns=temp')


@case
def test_require_fcrdns(srv):
    for ip, want, fact in (
            ('192.0.2.10', OK, b'ok'),
            ('192.0.2.20', b'550 sorry, the name of your address [192.0.2.20] does not resolve back to it (#5.7.25)\r\n', b'mismatch'),
            ('192.0.2.21', b'550 sorry, the name of your address [192.0.2.21] does not resolve back to it (#5.7.25)\r\n', b'mismatch'),
            ('192.0.2.30', b'550 sorry, your address [192.0.2.30] has no PTR record (#5.7.25)\r\n', b'none'),
            ('192.0.2.40', b'451 temporary DNS failure looking up your address [192.0.2.40] (#4.7.25)\r\n', b'temp')):
        conf(srv, ip=ip, control={'requireptr': 'fcrdns\n'})
        eq(rcpt(srv)[0], want, 'RCPT for %s' % ip)
        eq(dnsline(srv)['fcrdns'], fact, 'fcrdns= for %s' % ip)


@case
def test_sender_domain(srv):
    for mail, want in (('<a@example.test>', OK), ('<a@aonly.test>', OK), ('<>', OK),
                       ('<a@nosuch.test>', NOMX), ('<a@nodata.test>', NOMX),
                       ('<a@servfail.slow.test>', MXTEMP)):
        for value in ('1', '', '0'):  # qmail-ldap: set, to any value, is on
            conf(srv, ip='192.0.2.30', env={'RETURNMXCHECK': value})
            eq(mail_reply(srv, mail), want, 'MAIL FROM:%s with RETURNMXCHECK=%r' % (mail, value))
    conf(srv, ip='192.0.2.30', control={'returnmxcheck': '1\n'})
    eq(mail_reply(srv, '<a@nosuch.test>'), NOMX, 'control/returnmxcheck')
    conf(srv, ip='192.0.2.30', control={'returnmxcheck': '1\n', 'goodmailfrom': '@nosuch.test\n'})
    eq(mail_reply(srv, '<a@nosuch.test>'), OK, 'goodmailfrom skips RETURNMXCHECK')


@case
def test_rhsbl(srv):
    conf(srv, ip='192.0.2.30', control={'rhsbl': 'rhs.test\n'})
    eq(rcpt(srv)[0], OK, 'nothing listed')
    eq(rcpt(srv, mail='<x@spammer.test>')[0],
       b'553 sorry, your envelope sender domain spammer.test is rejected by rhs.test: '
       b'domain listed (#5.7.1)\r\n', 'sender domain')
    eq(rcpt(srv, mail='<>')[0], OK, 'null sender')
    eq(rcpt(srv, helo='bad.helo.test')[0],
       b'553 sorry, your HELO name bad.helo.test is rejected by rhs.test (#5.7.1)\r\n', 'HELO')
    rej = events(srv.log_lines(), 'reject')
    check(rej and rej[-1]['reason'] == b'rhsbl:rhs.test', 'reason: %r' % rej)
    conf(srv, ip='192.0.2.14', control={'rhsbl': 'rhs.test=127.0.0.3\n'})
    eq(rcpt(srv)[0], b'553 sorry, your host name listedptr.test is rejected by rhs.test (#5.7.1)\r\n',
       'PTR name')
    conf(srv, ip='192.0.2.14', control={'rhsbl': 'rhs.test=127.0.0.2\n'})
    eq(rcpt(srv)[0], OK, 'PTR name outside the filter')
    conf(srv, ip='192.0.2.12', control={'rhsbl': 'rhs.test\n', 'dnsbl': 'wl.test*-1\n'})
    eq(rcpt(srv, mail='<x@spammer.test>')[0], OK, 'DNSWL skips RHSBL')


@case
def test_tag_only(srv):
    conf(srv, dnsbl='bl.test\nbl2.test\n', env={'RBLONLYHEADER': '1'})
    with srv.session(timeout=10) as s:
        s.reply()
        s.cmd('HELO client.example.test')
        queued(send_message(s, mail='<a@example.test>'))
    msg = srv.stored(1)[0]['msg']
    check(msg.startswith(b'Received: ') and
          b'\nX-RBL: bl.test (127.0.0.2: Listed: see http://bl.test/?192.0.2.10),\n\t'
          b'bl2.test (127.0.0.4: bad' in msg and b'with??newline)\n' in msg, 'header after our Received: %r' % msg[:300])
    conf(srv, ip='192.0.2.30', dnsbl='bl.test\n', env={'DNSBLTAG': '1'})
    with srv.session(timeout=10) as s:
        s.reply()
        s.cmd('HELO client.example.test')
        queued(send_message(s, mail='<a@example.test>'))
    check(b'X-RBL' not in srv.stored(1)[0]['msg'], 'no header for an unlisted client')


@case
def test_greeting_mode(srv):
    conf(srv, dnsbl='bl.test\n', env={'DNSBLGREETING': '1'})
    with srv.session(timeout=10) as s:
        s.closed_after(b'554 sorry, your mailserver [192.0.2.10] is rejected by bl.test: '
                       b'Listed: see http://bl.test/?192.0.2.10 (#5.7.1)\r\n')
    conf(srv, ip='192.0.2.30', dnsbl='bl.test\n', env={'DNSBLGREETING': '1'})
    eq(rcpt(srv)[0], OK, 'unlisted client greeted')
    conf(srv, ip='192.0.2.40', env={'DNSBLGREETING': '1', 'REQUIREPTR': '1'})
    with srv.session(timeout=10) as s:
        s.closed_after(b'421 temporary DNS failure looking up your address [192.0.2.40] (#4.7.25)\r\n')


@case
def test_silent_list_fails_open_within_budget(srv):
    conf(srv, dnsbl='drop.slow.test\n', env={'DNSBUDGET': '800'})
    r, el = rcpt(srv)
    eq(r, OK, 'a list that never answers is skipped')
    check(0.4 < el < 1.3, 'RCPT reply after %.2f s (budget 0.8 s)' % el)
    eq(dnsline(srv)['dnsbl_fail'], b'drop.slow.test', 'dnsbl_fail=')


@case
def test_silent_list_then_listed(srv):
    conf(srv, dnsbl='drop.slow.test\nbl.test\n', env={'DNSBUDGET': '600'})
    r, el = rcpt(srv)
    eq(r[:4], b'553 ', 'the answering list still counts')
    check(el < 1.4, 'RCPT after %.2f s' % el)


@case
def test_garbage_answers(srv):
    direct = '127.0.0.1:%d' % DNS['slowport']
    for zone in ('garbage.slow.test', 'noise.slow.test'):
        conf(srv, dnsbl=zone + '\n', env={'DNSBUDGET': '600', 'REQUIREFCRDNS': '1'},
             servers=direct)
        r, _ = rcpt(srv, mail='<a@garbage.test>')
        eq(r[:4], b'451 ', 'garbage PTR: 4xx, never 5xx (%s)' % zone)
        conf(srv, dnsbl=zone + '\n', env={'DNSBUDGET': '600'}, servers=direct)
        eq(rcpt(srv)[0], OK, 'garbage list answer skipped (%s)' % zone)
    conf(srv, ip='192.0.2.30', env={'RETURNMXCHECK': '1', 'DNSBUDGET': '600'}, servers=direct)
    eq(mail_reply(srv, '<a@garbage.test>')[:4], b'421 ', 'garbage sender answer')


@case
def test_five_slow_lists_cost_one(srv):
    zones = ''.join('l%d.d300.slow.test\n' % i for i in range(5))
    conf(srv, ip='192.0.2.30', dnsbl=zones, env={'DNSBUDGET': '3000', 'DNSBLTHRESHOLD': '9'})
    r, el = rcpt(srv)
    eq(r, OK)
    check(0.3 < el < 0.9, 'five lists answering after 300 ms: RCPT after %.2f s' % el)
    eq(dnsline(srv)['dnsbl'].count(b'slow.test:127.0.0.2'), 5, 'five hits')


@case
def test_answers_processed_while_client_talks(srv):
    zones = ''.join('l%d.d300.slow.test\n' % i for i in range(3))
    conf(srv, ip='192.0.2.30', dnsbl=zones, env={'DNSBUDGET': '3000', 'DNSBLTHRESHOLD': '9'})
    with srv.session(timeout=10) as s:
        s.reply()
        time.sleep(0.4)
        s.cmd('NOOP')  # the poll loop serves the channel while waiting for this line
        time.sleep(0.6)
        s.cmd('HELO client.example.test')
        eq(s.cmd('MAIL FROM:<a@example.test>'), OK)
        eq(s.cmd('RCPT TO:<u@example.test>'), OK)
    ms = int(dnsline(srv)['dns_ms'])
    check(250 < ms < 800, 'answers taken when they arrived (dns_ms=%d), not at RCPT (1000+)' % ms)


@case
def test_fail_closed(srv):
    conf(srv, ip='192.0.2.30', dnsbl='drop.slow.test\n', env={'DNSBUDGET': '500', 'DNSBLFAILCLOSED': '1'})
    eq(rcpt(srv)[0], b'451 temporary RBL lookup error (#4.7.1)\r\n')


@case
def test_bad_names_answered_at_once(srv):
    long = 'x' * 70
    conf(srv, dnsbl='%s.test\nbl.test\n' % long)  # c-ares refuses the name before sending
    eq(rcpt(srv)[0][:4], b'553 ', 'the other list still decides')
    conf(srv, ip='192.0.2.30', env={'RETURNMXCHECK': '1'})
    eq(mail_reply(srv, '<a@%s.test>' % long), NOMX, 'a name that cannot exist')


@case
def test_servers_from_control(srv):
    conf(srv, dnsbl='bl.test\n', env={'DNSSERVERS': None},
         control={'dnsservers': '# the local cache\n127.0.0.1:%d\n' % DNS['port']})
    eq(rcpt(srv)[0][:4], b'553 ', 'control/dnsservers')


@case
def test_bad_servers_fail_open(srv):
    conf(srv, dnsbl='bl.test\n', servers='not-an-address')
    eq(rcpt(srv)[0], OK, 'DNS trouble never refuses')
    ev = events(srv.log_lines(), 'error')
    check(ev and ev[0]['reason'] == b'dns', 'error logged: %r' % ev)
    conf(srv, servers='not-an-address', env={'REQUIREPTR': '1'})
    eq(rcpt(srv)[0][:4], b'451 ', 'required PTR without DNS: 4xx')


if __name__ == '__main__':
    import tempfile
    tmp = tempfile.mkdtemp(prefix='mxit-dns.')
    try:
        start_dns(tmp)
    except Exception as e:
        print('FAIL dnsbl.start: %s' % e)
        stop_dns()
        sys.exit(0)
    try:
        run('dnsbl')
    finally:
        stop_dns()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
