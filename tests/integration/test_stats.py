#!/usr/bin/python3
"""Integration: mxguard-stats on the log of real sessions (the real smtpd under tcpserver),
read plain, through multilog t (@tai64n) and through svlogd -tt: the counts equal what the
test did; the --html page parses as XML, its SVG charts' numbers equal the text report's;
log lines of events from other parts (observe, dns, valuser errors, verdicts) are counted in
their tables; a long line and garbage do not disturb the counts."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

STATS = os.path.join(MXG_BIN, 'mxguard-stats')
SVG = '{http://www.w3.org/2000/svg}'
HTML = '{http://www.w3.org/1999/xhtml}'


def stats(*args, stdin=None):
    r = subprocess.run([STATS] + list(args), input=stdin, capture_output=True, timeout=30)
    eq(r.returncode, 0, 'mxguard-stats exit (%r)' % r.stderr[-300:])
    return r.stdout.decode()


def count(report, label):
    m = re.search(r'^ +(\d+)  %s\b' % re.escape(label), report, re.M)
    check(m, 'no "%s" line in %r' % (label, report[:600]))
    return int(m.group(1))


def table(report, title):
    """{name: [numbers]} of a table in the text report"""
    m = re.search(r'^%s[^\n]*\n((?:  \S[^\n]*\n)*)' % re.escape(title), report, re.M)
    check(m, 'no table %r' % title)
    out = {}
    for l in m.group(1).splitlines():
        p = l.split()
        out[p[0]] = [int(x) for x in p[1:] if x.isdigit()]
    return out


def top(report, title):
    m = re.search(r'^%s\n((?:  [^\n]*\n)*)' % re.escape(title), report, re.M)
    check(m, 'no list %r' % title)
    return [(l.split()[1], int(l.split()[0])) for l in m.group(1).splitlines() if '(none)' not in l]


def traffic(srv):
    """what the test does: 6 sessions, 4 messages (one with 2 recipients: 5 recipients
    accepted), 3 recipients refused by rcpthosts, one session with nothing in it"""
    srv.configure(control={'me': ME, 'rcpthosts': 'example.test\n'})
    for i in range(3):
        with Session(srv.port) as s:
            s.reply()
            s.cmd('HELO c.test')
            rc = ('<u@example.test>', '<v@example.test>') if i == 0 else ('<u@example.test>',)
            queued(send_message(s, mail='<s%d@x.test>' % (i % 2), rcpts=rc))
            s.cmd('QUIT')
    with Session(srv.port) as s:
        s.reply()
        s.cmd('HELO c.test')
        s.cmd('MAIL FROM:<s0@x.test>')
        for r in ('<a@elsewhere.test>', '<b@elsewhere.test>', '<a@elsewhere.test>'):
            eq(s.cmd('RCPT TO:%s' % r)[:3], b'553', 'rcpthosts refusal')
        eq(s.cmd('RCPT TO:<w@example.test>'), b'250 ok\r\n', 'RCPT')
        eq(s.cmd('DATA'), b'354 go ahead\r\n', 'DATA')
        s.send(b'Subject: x\r\n\r\nx\r\n.\r\n')
        queued(s.reply())
        s.cmd('QUIT')
    with Session(srv.port) as s:
        s.reply()
        s.cmd('QUIT')
    with Session(srv.port) as s:
        s.reply()
        s.cmd('HELO c.test')
        s.cmd('QUIT')
    srv.wait_idle()
    return srv.log()


def check_report(rep, what):
    eq(count(rep, 'sessions'), 6, what + ': sessions')
    eq(count(rep, 'messages accepted'), 4, what + ': messages')
    eq(count(rep, 'recipients accepted'), 5, what + ': recipients accepted')
    eq(count(rep, 'recipients refused'), 3, what + ': recipients refused')
    eq(count(rep, 'refusals'), 3, what + ': refusals')
    eq(table(rep, 'refusals by reason').get('rcpthosts'), [3, 0], what + ': rcpthosts refusals')
    eq(top(rep, 'top clients'), [('127.0.0.1', 6)], what + ': top clients')
    eq(top(rep, 'top senders (accepted messages)'), [('<s0@x.test>', 3), ('<s1@x.test>', 1)], what + ': senders')
    eq(top(rep, 'top refused recipients'), [('<a@elsewhere.test>', 2), ('<b@elsewhere.test>', 1)],
       what + ': refused recipients')
    check(re.search(r'p50 \d+  p90 \d+  p99 \d+  max \d+  \(6 sessions\)', rep), what + ': latency line')


def main():
    srv = Server('stats')
    T = tempfile.mkdtemp(prefix='mxit-stats.')
    try:
        srv.start()
        log = traffic(srv)
        eq(log.count(b' event=connect '), 6, 'connect lines in the smtpd log')
    except Exception as e:
        print('FAIL stats.traffic: %s' % e)
        srv.cleanup()
        return
    srv.cleanup()
    try:
        plain = os.path.join(T, 'plain')
        with open(plain, 'wb') as f:
            f.write(log)
        check_report(stats(plain), 'plain')
        check_report(stats(stdin=log), 'stdin')
        print('PASS stats.plain')
    except Exception as e:
        print('FAIL stats.plain: %s' % e)
    try:
        subprocess.run(['multilog', 't', os.path.join(T, 'ml')], input=log, check=True, timeout=10)
        cur = os.path.join(T, 'ml', 'current')
        check(open(cur, 'rb').read().startswith(b'@4000'), 'multilog did not stamp')
        rep = stats(cur)
        check_report(rep, 'multilog')
        hours = {time.strftime('%Y-%m-%d %H:00', time.gmtime(time.time() + d)) for d in (-120, 0)}
        m = re.search(r'^per hour \(UTC\).*\n  (\d{4}-\d\d-\d\d \d\d:00) +6 +4 +3$', rep, re.M)
        check(m and m.group(1) in hours, 'per-hour line (TAI64N read as UTC now, %r): %r' % (hours, rep[-400:]))
        check_report(stats(os.path.join(T, 'ml')), 'multilog directory')
        rep = stats('--since', '2100-01-01', cur)
        eq(count(rep, 'sessions'), 0, 'sessions after --since in the future')
        rep = stats('--until', '2100-01-01T00:00:00', cur)
        eq(count(rep, 'sessions'), 6, 'sessions with --until in the future')
        print('PASS stats.multilog')
    except Exception as e:
        print('FAIL stats.multilog: %s' % e)
    try:
        os.makedirs(os.path.join(T, 'sv'))
        subprocess.run(['svlogd', '-tt', os.path.join(T, 'sv')], input=log, check=True, timeout=10)
        cur = os.path.join(T, 'sv', 'current')
        check(re.match(rb'\d{4}-\d\d-\d\d_\d\d:\d\d:\d\d\.\d{5} pid=', open(cur, 'rb').read()), 'svlogd -tt stamps')
        html = os.path.join(T, 'r.html')
        rep = stats('--html', html, cur)
        check_report(rep, 'svlogd')
        doc = ET.parse(html).getroot()  # raises unless it is well-formed XML
        check(not doc.findall('.//' + HTML + 'script'), 'a script in the page')
        check(b'http' not in re.sub(rb'xmlns="[^"]*"', b'', open(html, 'rb').read()), 'a link out of the page')
        summary = {td.get('id'): int(td.text) for td in doc.iter(HTML + 'td') if td.get('id')}
        eq(summary['messages'], 4, 'html summary messages')
        eq(summary['sessions'], 6, 'html summary sessions')
        svgs = {s.get('class'): s for s in doc.iter(SVG + 'svg')}
        check({'accepted-vs-refused', 'refusals-by-reason', 'top-clients'} <= set(svgs), 'charts: %r' % list(svgs))
        bars = [r for r in svgs['accepted-vs-refused'].iter(SVG + 'rect') if r.get('data-series')]
        eq(sum(int(r.get('data-value')) for r in bars if r.get('data-series') == 'accepted'), 4, 'accepted bars')
        eq(sum(int(r.get('data-value')) for r in bars if r.get('data-series') == 'refused'), 3, 'refused bars')
        stack = [r for r in svgs['refusals-by-reason'].iter(SVG + 'rect') if r.get('data-series')]
        eq({(r.get('data-series'), int(r.get('data-value'))) for r in stack}, {('rcpthosts', 3)}, 'stacked bars')
        tops = [(r.get('data-label'), int(r.get('data-value'))) for r in svgs['top-senders'].iter(SVG + 'rect')]
        eq(tops, top(rep, 'top senders (accepted messages)'), 'sender bars vs the text report')
        print('PASS stats.svlogd_html')
    except Exception as e:
        print('FAIL stats.svlogd_html: %s' % e)
    try:
        # events from other parts, by the documented log format; plus noise
        extra = (b'pid=7 event=observe cmd=RCPT code=550 reason=greylist rule=grey1 ip=192.0.2.9\n'
                 b'pid=7 event=reject cmd=RCPT code=550 reason=policy rule=grey1 ip=192.0.2.9\n'
                 b'pid=7 event=observe cmd=RCPT code=550 reason=rcpthosts ip=192.0.2.9\n'
                 b'pid=7 event=dns ip=192.0.2.9 dnsbl=bl.test:127.0.0.2,zen.test:127.0.0.4 score=2 '
                 b'dnsbl_fail=slow.test dns_ms=40\n'
                 b'pid=7 event=dns ip=192.0.2.9 dnsbl=bl.test:127.0.0.3 score=1 dns_ms=4\n'
                 b'pid=7 event=reject cmd=RCPT code=550 esc=5.1.1 reason=nouser:vpopmail ip=192.0.2.9 to=<x@d.test>\n'
                 b'pid=7 event=error reason=valuser backend=sql why=connect\n'
                 b'pid=7 event=content verdict=virus ip=192.0.2.9\n'
                 b'tcpserver: status: 1/50\n' + b'pid=8 event=connect ' + b'x' * 10000 + b'\n'
                 b'garbage without fields\n')
        rep = stats(stdin=log + extra)
        eq(table(rep, 'refusals by reason').get('greylist'), [0, 1], 'observe-only reason')
        eq(table(rep, 'refusals by reason').get('rcpthosts'), [3, 1], 'rcpthosts real and observed')
        eq(count(rep, 'observed'), 2, 'observed')
        eq(table(rep, 'refusals by rule'), {'grey1': [1, 1]}, 'refusals by rule')
        eq(table(rep, 'DNSBL lists'), {'bl.test': [2, 0], 'zen.test': [1, 0], 'slow.test': [0, 1]}, 'DNSBL table')
        eq(table(rep, 'recipient check by backend'), {'vpopmail': [1, 0], 'sql': [0, 1]}, 'backends')
        eq(table(rep, 'content verdicts'), {'virus': [1]}, 'verdicts')
        eq(count(rep, 'sessions'), 7, 'sessions with the long connect line')
        print('PASS stats.other_events')
    except Exception as e:
        print('FAIL stats.other_events: %s' % e)
    try:
        # two days of svlogd lines: the daily chart matches the per-day table
        days = (b'2026-11-27_10:00:00.00000 pid=1 event=connect ip=192.0.2.1 host=unknown relay=no\n'
                b'2026-11-27_10:00:01.00000 pid=1 event=accept ip=192.0.2.1 qp=2 size=10 nrcpt=1 from=<a@b.test>\n'
                b'2026-11-28_23:59:59.00000 pid=3 event=connect ip=192.0.2.1 host=unknown relay=no\n'
                b'2026-11-28_23:59:59.50000 pid=3 event=reject cmd=RCPT code=553 esc=5.7.1 reason=rcpthosts ip=192.0.2.1\n'
                b'2026-11-28_23:59:59.60000 pid=3 event=defer cmd=RCPT code=451 esc=4.3.0 reason=dns ip=192.0.2.1\n')
        html = os.path.join(T, 'd.html')
        rep = stats('--html', html, stdin=days)
        check(re.search(r'^  2026-11-27 +1 +1 +0 +0$', rep, re.M) and re.search(r'^  2026-11-28 +1 +0 +2 +0$', rep, re.M),
              'per-day table: %r' % rep[-600:])
        svg = [x for x in ET.parse(html).getroot().iter(SVG + 'svg') if x.get('class') == 'daily']
        eq(len(svg), 1, 'daily chart')
        bars = {(r.get('data-day'), r.get('data-series')): int(r.get('data-value')) for r in svg[0].iter(SVG + 'rect')}
        eq(bars, {('2026-11-27', 'accepted'): 1, ('2026-11-27', 'refused'): 0, ('2026-11-28', 'accepted'): 0,
                  ('2026-11-28', 'refused'): 2}, 'daily bars')
        print('PASS stats.daily')
    except Exception as e:
        print('FAIL stats.daily: %s' % e)
    try:
        # more distinct keys than the top-k structure holds: the heavy hitters stay exact
        lines = []
        for i in range(6000):
            lines.append('pid=%d event=connect ip=10.%d.%d.%d host=unknown relay=no' % (i, i // 65536, i // 256 % 256, i % 256))
            if i % 40 == 0:
                lines += ['pid=1 event=connect ip=2001:db8:5::%x host=unknown relay=no' % i] * 5
                lines += ['pid=1 event=connect ip=192.0.2.7 host=unknown relay=no'] * 3
        rep = stats(stdin=('\n'.join(lines) + '\n').encode())
        eq(count(rep, 'sessions'), 6000 + 150 * 8, 'sessions')
        t = top(rep, 'top clients')
        eq(t[0], ('192.0.2.7', 450), 'heaviest client, exact despite 6000 other keys')
        n = top(rep, 'top networks')
        eq(n[:2], [('2001:db8:5::/48', 750), ('192.0.2.0/24', 450)], 'networks (IPv6 /48, IPv4 /24)')
        print('PASS stats.topk_bounded')
    except Exception as e:
        print('FAIL stats.topk_bounded: %s' % e)
    shutil.rmtree(T, ignore_errors=True)


if __name__ == '__main__':
    main()
