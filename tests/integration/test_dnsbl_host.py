#!/usr/bin/python3
"""Integration: the RHSBL of the client's host name is asked also when tcpserver ran without
-H and exported TCPREMOTEHOST (issue 12 item 6), against the real dnsmasq of test_dnsbl.py."""
import os
import sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxtest
import test_dnsbl as td  # its cases register themselves: forget them, keep its helpers
del mxtest.CASES[:]
from mxtest import *  # noqa: F401,F403

OK = b'250 ok\r\n'
LISTED = b'553 sorry, your host name listedptr.test is rejected by rhs.test (#5.7.1)\r\n'


@case
def test_rhsbl_of_tcpremotehost(srv):
    # 192.0.2.14's PTR is listedptr.test: asked by us (tcpserver -H), or given by tcpserver
    td.conf(srv, ip='192.0.2.14', control={'rhsbl': 'rhs.test=127.0.0.3\n'})
    eq(td.rcpt(srv)[0], LISTED, 'PTR name looked up by mxguard')
    td.conf(srv, ip='192.0.2.14', control={'rhsbl': 'rhs.test=127.0.0.3\n'},
            env={'TCPREMOTEHOST': 'listedptr.test'})
    eq(td.rcpt(srv)[0], LISTED, 'PTR name from TCPREMOTEHOST')
    td.conf(srv, ip='192.0.2.10', control={'rhsbl': 'rhs.test=127.0.0.3\n'},
            env={'TCPREMOTEHOST': 'clean.example.test'})
    eq(td.rcpt(srv)[0], OK, 'a name that is not listed')


@case
def test_dnsservers_commas_and_spaces(srv):
    """DNSSERVERS accepts commas, spaces or both between servers (a dead one first)"""
    for sep in (', ', ' ', '  ,\t'):
        td.conf(srv, dnsbl='bl.test\n', servers='127.0.0.1:9%s127.0.0.1:%d' % (sep, td.DNS['port']))
        r, _ = td.rcpt(srv)
        check(r.startswith(b'553 '), 'DNSSERVERS with %r: %r' % (sep, r))
        check(not [e for e in events(srv.log_lines(), 'error') if e.get('reason') == b'dns'],
              'no dns error with %r' % sep)


if __name__ == '__main__':
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp(prefix='mxit-dnsh.')
    try:
        td.start_dns(tmp)
    except Exception as e:
        print('FAIL dnsbl_host.start: %s' % e)
        td.stop_dns()
        sys.exit(0)
    try:
        run('dnsbl_host')
    finally:
        td.stop_dns()
        shutil.rmtree(tmp, ignore_errors=True)
