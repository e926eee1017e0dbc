#!/usr/bin/python3
"""Integration: store.c's Redis backend. A real redis-server on a loopback port (password,
also a Unix socket) and two mxguard "hosts" (two tcpserver instances, each with its own qmail
home) sharing it: a rate reached on one host is enforced on the other, a greylist triplet
passed on one passes on the other, a session killed with SIGKILL leaves no concurrency count,
200 sessions lose no update, a Redis that is down or refuses the password fails open, and a
3-node Redis Cluster (MOVED followed) gives the same answers."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

OK = b'250 ok\r\n'
TMP = tempfile.mkdtemp(prefix='mxit-redis.')
PASSWORD = 'test-secret'
REDIS = {}


def cluster_port():
    """a port whose cluster bus port (+10000) is free and valid too"""
    import random
    for _ in range(200):
        p = random.randint(20000, 30000)
        try:
            for q in (p, p + 10000):
                s = socket.socket()
                s.bind(('127.0.0.1', q))
                s.close()
            return p
        except OSError:
            continue
    raise RuntimeError('no free port pair')


def start_redis(name, extra=(), cluster=False):
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    for attempt in range(5):
        port = cluster_port() if cluster else free_port()
        p = subprocess.Popen(['redis-server', '--bind', '127.0.0.1', '--port', str(port), '--save', '',
                              '--appendonly', 'no', '--dir', d, '--logfile', os.path.join(d, 'log')] +
                             list(extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(('127.0.0.1', port), 0.2).close()
                return p, port
            except OSError:
                if p.poll() is not None:
                    break
                time.sleep(0.01)
        p.kill()
        p.wait()
    raise RuntimeError('redis-server did not start')


def cli(port, *args, password=PASSWORD):
    cmd = ['redis-cli', '-p', str(port), '--no-auth-warning']
    if password:
        cmd += ['-a', password]
    return subprocess.run(cmd + list(args), stdout=subprocess.PIPE, check=True).stdout.decode().strip()


def setup():
    sock = os.path.join(TMP, 'redis.sock')
    p, port = start_redis('single', ['--requirepass', PASSWORD, '--unixsocket', sock,
                                     '--unixsocketperm', '700'])
    REDIS.update(proc=p, port=port, sock=sock, procs=[p])


def teardown():
    for p in REDIS.get('procs', []):
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(TMP, ignore_errors=True)


B = Server('limits-redis-b')


def conf(srv, env=None, redis=None, extra=None):
    """both hosts: the same control files and environment"""
    if redis is None:
        redis = '127.0.0.1:%d\npassword %s\n' % (REDIS['port'], PASSWORD)
    c = {'me': ME, 'rcpthosts': 'example.test\n', 'redis': redis}
    c.update(extra or {})
    cli(REDIS['port'], 'FLUSHALL')
    for s in (srv, B):
        s.configure(control=c, env=env or {}, files={'state/.keep': ''})


def connect(srv, timeout=5):
    s = srv.session(timeout)
    eq(s.reply(), banner(), 'banner')
    return s


def no_failopen(*servers):
    for s in servers:
        log = s.log()
        check(b'event=store' not in log, 'store trouble: %r' % log[-500:])


@case
def test_connrate_two_hosts(srv):
    conf(srv, {'CONNRATE': '2/60'})
    srv.allowed_status = B.allowed_status = {0, 256}
    for host in (srv, B):
        s = connect(host)
        s.expect('QUIT', b'221 mx.test\r\n')
        s.close()
    s = srv.session()
    s.closed_after(b'421 4.7.0 too many connections from your address, try again later\r\n')
    s = B.session()
    s.closed_after(b'421 4.7.0 too many connections from your address, try again later\r\n')
    no_failopen(srv, B)


@case
def test_greylist_two_hosts(srv):
    conf(srv, {'GREYLIST': '1', 'GREYLISTDELAY': '1'})
    with connect(srv) as s:
        eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
        eq(s.cmd('RCPT TO:<u@example.test>'), b'451 4.7.1 greylisted, try again in 1 seconds\r\n')
    with connect(B) as s:
        eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
        eq(s.cmd('RCPT TO:<u@example.test>'), b'451 4.7.1 greylisted, try again in 1 seconds\r\n',
           'host B: same triplet, still waiting')
    time.sleep(1.1)
    with connect(B) as s:
        eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
        eq(s.cmd('RCPT TO:<u@example.test>'), OK, 'host B: passed')
    with connect(srv) as s:
        eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
        eq(s.cmd('RCPT TO:<u@example.test>'), OK, 'host A: passed on B, passes here')
    ttl = int(cli(REDIS['port'], 'TTL', 'mxg:g:{127.0.0.0%2F24}:a@x.test:u@example.test'))
    check(34 * 86400 < ttl <= 35 * 86400, 'passed triplet TTL %d, want 35 days' % ttl)
    no_failopen(srv, B)


@case
def test_rcptrate_two_hosts_unix_socket(srv):
    conf(srv, {'RCPTRATE': '3/3600'}, redis='%s\npassword %s\n' % (REDIS['sock'], PASSWORD))
    with connect(srv) as s:
        eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
        for i in range(2):
            eq(s.cmd('RCPT TO:<u%d@example.test>' % i), OK)
    with connect(B) as s:
        eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
        eq(s.cmd('RCPT TO:<u3@example.test>'), OK)
        eq(s.cmd('RCPT TO:<u4@example.test>'),
           b'450 4.7.1 too many recipients from you, try again later\r\n')
    no_failopen(srv, B)


@case
def test_connmax_sigkill(srv):
    conf(srv, {'CONNMAX': '1'})
    srv.allowed_status = {0, 256}
    a = connect(srv)
    s = B.session()
    s.closed_after(b'421 4.7.0 too many connections from your address, try again later\r\n')
    B.allowed_status = {0, 256}
    running = [p for p, st in srv.sessions() if st is None]
    check(len(running) == 1, 'running sessions on host A: %r' % running)
    os.kill(running[0], 9)
    srv.killed.add(running[0])
    time.sleep(0.2)
    a.close()
    c = connect(srv)  # the dead member of this host is removed when the limit is reached
    c.expect('QUIT', b'221 mx.test\r\n')
    c.close()
    eq(cli(REDIS['port'], 'ZCARD', 'mxg:k:{127.0.0.1}'), '0', 'members left')


@case
def test_200_sessions_lose_nothing(srv):
    conf(srv, {'RCPTRATE': '1000000/100000000'})
    errors = []
    lat = []

    gate = threading.Semaphore(80)  # 40 a host: under tcpserver -c 50 nothing waits to be accepted

    def one(host, i):
        try:
            with gate, connect(host, 20) as s:
                eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
                t0 = time.time()
                eq(s.cmd('RCPT TO:<u%d@example.test>' % i), OK)
                lat.append(time.time() - t0)
                s.cmd('QUIT')
        except Exception as e:  # noqa
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(srv if i % 2 else B, i)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, 'sessions failed: %r' % errors[:3])
    level = float(cli(REDIS['port'], 'HGET', 'mxg:r:{127.0.0.1}:rcptrate', 'l'))
    check(abs(level - 200) < 0.5, 'counter %.3f after 200 recipients' % level)
    no_failopen(srv, B)


@case
def test_rcpt_latency(srv):
    """the rate check adds at most 1 ms p99 to a RCPT reply (loopback); measured, printed"""
    def p99(env):
        conf(srv, env)
        out = []
        with connect(srv) as s:
            eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
            for i in range(300):
                t0 = time.perf_counter()
                eq(s.cmd('RCPT TO:<u@example.test>'), OK)
                out.append(time.perf_counter() - t0)
                if i % 90 == 89:
                    eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
        out = sorted(out[1:])  # the first includes the connection to Redis
        sys.stderr.write('p50 %.3f ms ' % (out[len(out) // 2] * 1000))
        return out[int(len(out) * 0.99)] * 1000
    base = p99({})
    rated = p99({'RCPTRATE': '1000000/3600', 'RCPTRATE_SENDER': '1000000/3600'})
    sys.stderr.write('redis RCPT p99: %.3f ms without rates, %.3f ms with 2 rate checks\n'
                     % (base, rated))
    if os.environ.get('MXG_LABEL') == 'asan':  # sanitizer build: a figure, not a verdict
        return
    check(rated - base <= 3.0, 'p99 %.3f ms with rates vs %.3f ms without' % (rated, base))


@case
def test_redis_down_fails_open(srv):
    port = free_port()
    conf(srv, {'GREYLIST': '1', 'RCPTRATE': '1/3600', 'CONNMAX': '1'},
         redis='127.0.0.1:%d\n' % port)
    t0 = time.time()
    with connect(srv) as s:
        eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
        eq(s.cmd('RCPT TO:<u@example.test>'), OK)
        eq(s.cmd('RCPT TO:<v@example.test>'), OK)
    dt = time.time() - t0
    check(dt < 1.0, 'a Redis that is down cost %.2f s' % dt)
    log = srv.log()
    check(log.count(b'event=store result=failopen backend=redis error=connect') == 1,
          'fail open not logged once: %r' % log)


@case
def test_redis_silent_fails_open(srv):
    """a server that accepts and never answers: the store's deadline, not the client's"""
    ls = socket.socket()
    ls.bind(('127.0.0.1', 0))
    ls.listen(16)
    conf(srv, {'GREYLIST': '1', 'RCPTRATE': '1/3600'},
         redis='127.0.0.1:%d\ntimeout 200\n' % ls.getsockname()[1])
    try:
        with connect(srv) as s:
            eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
            r, dt = timed(lambda: s.cmd('RCPT TO:<u@example.test>'))
            eq(r, OK, 'fail open')
            check(0.15 <= dt < 1.0, 'first RCPT took %.2f s, timeout 200 ms' % dt)
            r, dt = timed(lambda: s.cmd('RCPT TO:<v@example.test>'))
            eq(r, OK)
            check(dt < 0.1, 'the store is not tried again in the session: %.2f s' % dt)
    finally:
        ls.close()
    check(b'event=store result=failopen backend=redis' in srv.log(), 'not logged')


def timed(fn):
    t0 = time.time()
    r = fn()
    return r, time.time() - t0


@case
def test_redis_bad_password_fails_open(srv):
    conf(srv, {'GREYLIST': '1'}, redis='127.0.0.1:%d\npassword wrong\n' % REDIS['port'])
    with connect(srv) as s:
        eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
        eq(s.cmd('RCPT TO:<u@example.test>'), OK)
    log = srv.log()
    check(b'event=store result=failopen backend=redis error=auth' in log, 'not logged: %r' % log)
    check(PASSWORD.encode() not in log and b'wrong' not in log, 'a password reached the log')


@case
def test_mxguard_store_on_redis(srv):
    conf(srv, {'RCPTRATE': '10/3600', 'GREYLIST': '1', 'CONNMAX': '5'})
    with connect(srv) as s:
        eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
        s.cmd('RCPT TO:<u@example.test>')
        tool = os.path.join(MXG_BIN, 'mxguard-store')
        env = {'QMAILHOME': srv.home, 'PATH': '/usr/bin:/bin'}
        p = subprocess.run([tool, 'export'], env=env, stdout=subprocess.PIPE)
        out = p.stdout.decode()
        eq(p.returncode, 0, 'export exit')
        check('r:127.0.0.1:rcptrate bucket level=1.000' in out, 'bucket: %r' % out)
        check('g:127.0.0.0%2F24:a@x.test:u@example.test greylist first=' in out, 'greylist: %r' % out)
        check(re.search(r'k:127\.0\.0\.1\|\S+:\d+ member', out), 'member: %r' % out)
    p = subprocess.run([tool, 'clear', 'g:127.0.0.0'], env=env, stdout=subprocess.PIPE)
    eq(p.returncode, 0, 'clear exit')
    eq(cli(REDIS['port'], 'EXISTS', 'mxg:g:{127.0.0.0%2F24}:a@x.test:u@example.test'), '0', 'cleared')
    p = subprocess.run([tool, 'purge'], env=env, stdout=subprocess.PIPE)
    eq(p.returncode, 0, 'purge exit')


@case
def test_hiredis_not_loaded_without_redis(srv):
    """a plain session (and one with LMDB rates) never maps hiredis"""
    for c in ({}, {'RCPTRATE': '10/60'}):
        for s_ in (srv, B):
            s_.configure(control={'me': ME, 'rcpthosts': 'example.test\n'}, env=c,
                         files={'state/.keep': ''})
        with connect(srv) as s:
            eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
            eq(s.cmd('RCPT TO:<u@example.test>'), OK)
            pid = [p for p, st in srv.sessions() if st is None][-1]
            with open('/proc/%d/maps' % pid) as f:
                maps = f.read()
            check('hiredis' not in maps, 'hiredis mapped: %r' % c)
    conf(srv, {'RCPTRATE': '10/60'})
    with connect(srv) as s:
        eq(s.cmd('MAIL FROM:<a@x.test>'), OK)
        eq(s.cmd('RCPT TO:<u@example.test>'), OK)
        pid = [p for p, st in srv.sessions() if st is None][-1]
        with open('/proc/%d/maps' % pid) as f:
            check('libhiredis.so.0.14' in f.read(), 'hiredis not loaded with control/redis')


# ------------------------------------------------------------------------ Redis Cluster

CLUSTER = {}


def start_cluster():
    ports, procs = [], []
    for i in range(3):
        p, port = start_redis('node%d' % i, ['--cluster-enabled', 'yes', '--cluster-config-file',
                                             os.path.join(TMP, 'node%d.conf' % i)], cluster=True)
        ports.append(port)
        procs.append(p)
    REDIS['procs'] += procs
    r = subprocess.run(['redis-cli', '--cluster', 'create'] + ['127.0.0.1:%d' % p for p in ports] +
                       ['--cluster-replicas', '0', '--cluster-yes'], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if r.returncode:
        raise RuntimeError('redis-cli --cluster create: %r' % r.stdout[-300:])
    for _ in range(600):  # every node must know every slot before the test starts
        if all('cluster_state:ok' in cli(p, 'CLUSTER', 'INFO', password=None) for p in ports):
            break
        time.sleep(0.05)
    CLUSTER['ports'] = ports


@case
def test_cluster(srv):
    if not CLUSTER:
        start_cluster()
    ports = CLUSTER['ports']
    c = {'me': ME, 'rcpthosts': 'example.test\n', 'redis': '127.0.0.1:%d\n' % ports[0]}
    for s_ in (srv, B):
        s_.configure(control=c, env={'RCPTRATE_SENDER': '2/3600', 'GREYLIST': '1',
                                     'GREYLISTDELAY': '1'}, files={'state/.keep': ''})
    senders = ['s%d@x.test' % i for i in range(12)]  # keys spread over the three nodes
    for host in (srv, B):
        with connect(host) as s:
            for snd in senders:
                eq(s.cmd('MAIL FROM:<%s>' % snd), OK)
                r = s.cmd('RCPT TO:<u@example.test>')
                check(r.startswith(b'451 4.7.1 greylisted') or r == OK, 'first RCPT: %r' % r)
    time.sleep(1.1)
    with connect(srv) as s:
        for snd in senders:
            eq(s.cmd('MAIL FROM:<%s>' % snd), OK)
            r = s.cmd('RCPT TO:<u@example.test>')
            if r != b'450 4.7.1 too many recipients from you, try again later\r\n':
                raise AssertionError('sender %s: third recipient over two hosts: %r; store: %r'
                                     % (snd, r, [l for h in (srv, B) for l in h.log_lines(False)
                                                 if b'event=store' in l]))
    c2 = dict(c)
    for s_ in (srv, B):
        s_.configure(control=c2, env={'GREYLIST': '1', 'GREYLISTDELAY': '1'},
                     files={'state/.keep': ''})
    with connect(B) as s:
        for snd in senders:
            eq(s.cmd('MAIL FROM:<%s>' % snd), OK)
            eq(s.cmd('RCPT TO:<u@example.test>'), OK, 'greylist passed in the cluster: %s' % snd)
    nodes = [int(cli(p, 'DBSIZE', password=None)) for p in ports]
    check(sum(1 for n in nodes if n) >= 2, 'keys on one node only: %r' % nodes)
    for s_ in (srv, B):
        check(b'event=store' not in s_.log(), 'store trouble: %r' % s_.log()[-400:])


@case
def test_store_fds_not_inherited(srv):
    """qmail-queue gets no descriptor of the store (the LMDB file, the Redis socket)"""
    wrap = os.path.join(srv.dir, 'qqfds')
    with open(wrap, 'w') as f:
        f.write('#!/bin/sh\nfor x in /proc/$$/fd/*; do readlink "$x"; done >"$QQ_DIR/fds"\n'
                'exec %s\n' % RECORDER)
    os.chmod(wrap, 0o755)
    conf(srv, {'RCPTRATE': '10/60', 'CONNMAX': '5', 'QMAILQUEUE': wrap})
    with connect(srv) as s:
        queued(send_message(s))
    srv.stored(1)
    with open(os.path.join(srv.qq, 'fds')) as f:
        fds = f.read()
    check('data.mdb' not in fds and 'lock.mdb' not in fds and 'socket:' not in fds,
          'qmail-queue inherited: %r' % fds)


@case
def test_cluster_ask(srv):
    """a slot being migrated: the old owner answers ASK, the store follows it (ASKING)"""
    if not CLUSTER:
        start_cluster()
    ports = CLUSTER['ports']
    key = 'mxg:r:{ask@x.test}:rcptrate_sender'
    slot = cli(ports[0], 'CLUSTER', 'KEYSLOT', key, password=None)
    ids = {}
    owner = None
    for p in ports:
        ids[p] = cli(p, 'CLUSTER', 'MYID', password=None)
    for line in cli(ports[0], 'CLUSTER', 'NODES', password=None).splitlines():
        f = line.split()
        for rng in f[8:]:
            a, _, b_ = rng.partition('-')
            if a.isdigit() and int(a) <= int(slot) <= int(b_ or a):
                owner = int(f[1].split(':')[1].split('@')[0])
    check(owner in ports, 'no owner for slot %s' % slot)
    dest = [p for p in ports if p != owner][0]
    cli(dest, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', ids[owner], password=None)
    cli(owner, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', ids[dest], password=None)
    try:
        c = {'me': ME, 'rcpthosts': 'example.test\n', 'redis': '127.0.0.1:%d\n' % owner}
        for s_ in (srv, B):
            s_.configure(control=c, env={'RCPTRATE_SENDER': '1/3600'}, files={'state/.keep': ''})
        with connect(srv) as s:
            eq(s.cmd('MAIL FROM:<ask@x.test>'), OK)
            eq(s.cmd('RCPT TO:<u@example.test>'), OK)
            eq(s.cmd('RCPT TO:<v@example.test>'),
               b'450 4.7.1 too many recipients from you, try again later\r\n', 'the limit holds')
        eq(cli(dest, 'CLUSTER', 'COUNTKEYSINSLOT', slot, password=None), '1',
           'the key was written on the importing node')
        check(b'event=store' not in srv.log(), 'store trouble: %r' % srv.log()[-400:])
    finally:  # end the migration: the slot (and the key written) belong to dest
        for p in (dest, owner) + tuple(x for x in ports if x not in (dest, owner)):
            cli(p, 'CLUSTER', 'SETSLOT', slot, 'NODE', ids[dest], password=None)


if __name__ == '__main__':
    try:
        setup()
        B.start()
    except Exception as e:
        print('FAIL limits_redis.start: %s' % e)
        teardown()
        sys.exit(0)
    try:
        run('limits_redis')
    finally:
        B.cleanup()
        teardown()
