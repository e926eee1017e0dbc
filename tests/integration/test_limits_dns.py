#!/usr/bin/python3
"""Integration: the greeting delay while DNS answers arrive (tarpit.c with dnsbl.c), against
the real dnsmasq of test_dnsbl.py: the client class changes when the PTR answer comes in
during the delay, and a DNSWL hit that arrives during the delay ends it. The delay is waited
in io.c's poll loop, which keeps serving the DNS sockets."""
import os
import shutil
import sys
import tempfile
import time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mxtest import *  # noqa: F401,F403
import mxtest
_saved = list(mxtest.CASES)
import test_dnsbl  # noqa: E402  (for its DNS server; its cases are not run here)
mxtest.CASES[:] = _saved


def conf(srv, ip, env, control=None):
    c = {'me': ME, 'rcpthosts': 'example.test\n'}
    c.update(control or {})
    e = {'TCPREMOTEIP': ip, 'DNSSERVERS': '127.0.0.1:%d' % test_dnsbl.DNS['port']}
    e.update(env)
    srv.configure(control=c, env=e)


def banner_after(srv):
    t0 = time.time()
    with srv.session(timeout=10) as s:
        eq(s.reply(), banner(), 'banner')
        dt = time.time() - t0
        eq(s.cmd('HELO x'), b'250 mx.test\r\n', 'served afterwards')
    return dt


@case
def test_ptr_answer_during_delay(srv):
    env = {'GREETDELAY_NOPTR': '2', 'REQUIREPTR': '1'}
    conf(srv, '192.0.2.10', env)  # PTR client.example.test: arrives in milliseconds
    dt = banner_after(srv)
    check(dt < 1.0, 'client with a PTR waited %.2f s (the answer came during the delay)' % dt)
    conf(srv, '192.0.2.30', env)  # no PTR
    dt = banner_after(srv)
    check(2.0 <= dt < 3.0, 'client without PTR waited %.2f s, want 2' % dt)


@case
def test_dynamic_ptr_from_dns(srv):
    conf(srv, '192.0.2.10', {'GREETDELAY_DYNAMIC': '1', 'REQUIREPTR': '1'},
         control={'dynamicptr': '^client\\.example\\.test$\n'})
    dt = banner_after(srv)
    check(1.0 <= dt < 2.0, 'dynamic-looking PTR from DNS: %.2f s, want 1' % dt)


@case
def test_dnswl_answer_ends_delay(srv):
    conf(srv, '192.0.2.12', {'GREETDELAY': '2'}, control={'dnsbl': 'wl.test*-1\n'})
    dt = banner_after(srv)
    check(dt < 1.0, 'DNSWL-listed client waited %.2f s' % dt)
    conf(srv, '192.0.2.10', {'GREETDELAY': '2'}, control={'dnsbl': 'wl.test*-1\n'})
    dt = banner_after(srv)
    check(2.0 <= dt < 3.0, 'unlisted client waited %.2f s, want 2' % dt)


if __name__ == '__main__':
    tmp = tempfile.mkdtemp(prefix='mxit-limdns.')
    try:
        test_dnsbl.start_dns(tmp)
    except Exception as e:
        print('FAIL limits_dns.start: %s' % e)
        test_dnsbl.stop_dns()
        sys.exit(0)
    try:
        run('limits_dns')
    finally:
        test_dnsbl.stop_dns()
        shutil.rmtree(tmp, ignore_errors=True)
