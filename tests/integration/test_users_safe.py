"""test_users_safe - mxguard-users runs as root and must not trust what users or other runs
leave around (issue 12 item 2): a planted symlink at the old temporary name, two overlapping
runs with one killed mid-write (the live cdb is always complete), /dev/zero and a root-only
file behind a user's .qmail-default; and mxguard-smtpd, run as root, refuses a .qmail file
that is a symbolic link to a root-only file (451, not its content)."""
import os, signal, subprocess, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_valuser import BIN, Server, check, cdb_records, done, put, session, tmpdir, users_cdb

TOOL = os.path.join(BIN, "mxguard-users")
NOBODY = 65534


def fixture(home, nusers=1500):
    put(home + "/control/me", "mx.example\n")
    put(home + "/control/rcpthosts", "local.example\nvpop.example\n")
    put(home + "/control/locals", "local.example\n")
    put(home + "/control/virtualdomains", "vpop.example:vpop.example\n")
    users_cdb(home + "/users/cdb", [
        "=joe:joe:1000:1000:%s/h/joe:::" % home,
        "+vpop.example-:vpop.example:89:89:%s/vp/vpop.example:-::" % home,
        "+:alias:7790:2108:%s/h/alias:-::" % home])
    os.makedirs(home + "/h/joe")
    os.makedirs(home + "/h/alias")
    for i in range(nusers):  # enough work for runs to overlap
        open(home + "/h/alias/.qmail-user%04d" % i, "w").write("&x@elsewhere.example\n")
    put(home + "/vp/vpop.example/.qmail-default",
        "| /home/vpopmail/bin/vdelivermail '' bounce-no-mailbox\n")
    cdb_records(home + "/vp/vpop.example/vpasswd.cdb", [(b"alice", b"x:1:0:A:/d/a:NOQUOTA")])


def run(home, **kw):
    return subprocess.run([TOOL], env=dict(os.environ, QMAILHOME=home), capture_output=True,
                          text=True, timeout=60, **kw)


def whole(cdbf, keys=(b"Dlocal.example", b"Dvpop.example")):
    """the cdb's header points inside the file and every domain key is there"""
    try:
        data = open(cdbf, "rb").read()
    except FileNotFoundError:
        return "missing"
    if len(data) < 2048:
        return "short (%d bytes)" % len(data)
    for i in range(256):
        pos = int.from_bytes(data[8 * i:8 * i + 4], "little")
        n = int.from_bytes(data[8 * i + 4:8 * i + 8], "little")
        if pos < 2048 or pos + 8 * n > len(data):
            return "table %d outside the file" % i
    for k in keys:
        r = subprocess.run(["cdb", "-q", cdbf, k.decode()], capture_output=True)
        if r.returncode != 0:
            return "no key %s" % k.decode()
    return None


def test_symlink(home):
    victim = home + "/victim"
    put(victim, "precious\n")
    for name in ("mxguard-users.tmp",):
        os.symlink(victim, home + "/control/" + name)
    p = run(home)
    check(p.returncode == 0, "users: builds with a planted symlink", p.stderr)
    check(open(victim, "rb").read() == b"precious\n", "users: a planted symlink's target is untouched",
          repr(open(victim, "rb").read()[:40]))
    check(whole(home + "/control/mxguard-users.cdb") is None, "users: cdb whole after symlink case",
          whole(home + "/control/mxguard-users.cdb"))
    if os.path.lexists(home + "/control/mxguard-users.tmp"):
        os.unlink(home + "/control/mxguard-users.tmp")
    if os.path.islink(home + "/control/mxguard-users.cdb"):  # the old tool renamed the link
        os.unlink(home + "/control/mxguard-users.cdb")
    left = [f for f in os.listdir(home + "/control") if f.startswith("mxguard-users.")
            and f not in ("mxguard-users.cdb", "mxguard-users.lock")]
    check(not left, "users: no temporary file left", repr(left))


def test_overlap(home):
    """rounds of two overlapping runs, one of them killed mid-write, while a reader checks the
    live cdb again and again"""
    cdbf = home + "/control/mxguard-users.cdb"
    run(home)
    stop = threading.Event()
    broken = []

    def reader():
        while not stop.is_set():
            w = whole(cdbf)
            if w:
                broken.append(w)
    t = threading.Thread(target=reader)
    t.start()
    codes = []

    def temps():
        out = {}
        for f in os.listdir(home + "/control"):
            if f.startswith("mxguard-users.") and f not in ("mxguard-users.cdb", "mxguard-users.lock"):
                try:
                    out[f] = os.stat(home + "/control/" + f).st_size
                except FileNotFoundError:
                    pass
        return out
    try:
        for rnd in range(3):
            env = dict(os.environ, QMAILHOME=home)
            a = subprocess.Popen([TOOL], env=env, stderr=subprocess.DEVNULL)
            deadline = time.time() + 10
            while a.poll() is None and time.time() < deadline and \
                    not any(v >= 8192 for v in temps().values()):
                time.sleep(0.001)
            seen = temps()
            b = subprocess.Popen([TOOL], env=env, stderr=subprocess.DEVNULL)
            while a.poll() is None and b.poll() is None:  # b's start truncating a's file?
                now = temps()
                if any(now.get(f, 0) < n for f, n in seen.items()) or \
                        any(f not in seen and n > 0 for f, n in now.items()):
                    break
                seen = now
                time.sleep(0.001)
            b.send_signal(signal.SIGKILL)  # killed mid-write (or while waiting for the lock)
            b.wait(60)
            codes.append(a.wait(60))
            time.sleep(0.1)
    finally:
        stop.set()
        t.join()
    check(not broken, "users: the live cdb is whole through overlapping and killed runs",
          "%d bad reads, e.g. %s" % (len(broken), broken[:3]))
    check(codes == [0] * 3, "users: the surviving run succeeds", repr(codes))
    run(home)
    left = [f for f in os.listdir(home + "/control") if f.startswith("mxguard-users.")
            and f not in ("mxguard-users.cdb", "mxguard-users.lock")]
    check(not left, "users: a killed run's temporary file is cleaned by the next run", repr(left))
    check(whole(cdbf) is None, "users: cdb whole at the end", whole(cdbf))


def test_devzero(home):
    """a users/cdb home whose .qmail-default is /dev/zero: bounded, not read"""
    d = home + "/h/zero"
    os.makedirs(d)
    os.chown(d, NOBODY, NOBODY)
    os.symlink("/dev/zero", d + "/.qmail-default")
    users_cdb(home + "/users/cdb", [
        "=joe:joe:1000:1000:%s/h/joe:::" % home,
        "+zero-:zero:%d:%d:%s:-::" % (NOBODY, NOBODY, d),
        "+vpop.example-:vpop.example:89:89:%s/vp/vpop.example:-::" % home,
        "+:alias:7790:2108:%s/h/alias:-::" % home])
    t0 = time.time()
    # ASan reserves terabytes of address space: no limit there (and a higher RSS floor)
    san = os.environ.get("MXG_LABEL") == "asan" or os.path.basename(BIN.rstrip("/")) == "san"
    limit = [] if san else ["prlimit", "--as=%d" % (300 << 20)]
    p = subprocess.Popen(limit + [TOOL],
                         env=dict(os.environ, QMAILHOME=home), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = 0
    rc = os.waitstatus_to_exitcode(status)
    check(rc in (0, 111) and time.time() - t0 < 15 and ru.ru_maxrss < (150 if san else 50) * 1024,
          "users: /dev/zero behind .qmail-default is not read",
          "exit %r, peak RSS %d KB" % (rc, ru.ru_maxrss))
    os.unlink(d + "/.qmail-default")


def test_rootonly(home):
    """a user's .qmail-default linked to a root-only file: its content is never used"""
    d = home + "/h/zero"
    secret = home + "/secret"
    put(secret, "| /home/vpopmail/bin/vdelivermail '' bounce-no-mailbox\n", 0o600)
    os.symlink(secret, d + "/.qmail-default")
    cdb_records(d + "/vpasswd.cdb", [(b"alice", b"x:1:0:A:/d/a:NOQUOTA")])
    os.chown(d + "/vpasswd.cdb", NOBODY, NOBODY)
    put(home + "/control/virtualdomains", "vpop.example:vpop.example\nzero.example:zero\n")
    put(home + "/control/rcpthosts", "local.example\nvpop.example\nzero.example\n")
    before = open(home + "/control/mxguard-users.cdb", "rb").read()
    p = run(home)
    after = open(home + "/control/mxguard-users.cdb", "rb").read()
    leaked = subprocess.run(["cdb", "-q", home + "/control/mxguard-users.cdb", "Aalice@zero.example"],
                            capture_output=True).returncode == 0
    check(not leaked, "users: a root-only file is not read as the user's .qmail-default",
          "rc %d %s" % (p.returncode, p.stderr[-300:]))
    check(p.returncode == 111 and "qmailowner" in p.stderr and before == after,
          "users: ... it defers (111, old cdb kept) as qmail-local would",
          "rc %d %s" % (p.returncode, p.stderr[-300:]))
    # mxguard-smtpd run as root (tcpserver without -u) answers 451, not from the file
    os.unlink(home + "/control/mxguard-users.cdb")
    srv = Server(home)
    try:
        r = session(srv.port, ["alice@zero.example", "bob@zero.example"])
        check(all(x.startswith("451") for x in r), "smtpd as root: 451 for a foreign .qmail file",
              repr(r))
        check("qmailowner" in srv.logtext(), "smtpd as root: the log names the cause",
              srv.logtext()[-300:])
    finally:
        srv.stop()


if __name__ == "__main__":
    tmp = tmpdir("users-safe")
    home = tmp + "/q"
    try:
        fixture(home)
        if os.geteuid() != 0:
            print("PASS users_safe: skipped, needs root")
        else:
            test_symlink(home)
            test_overlap(home)
            test_devzero(home)
            test_rootonly(home)
    finally:
        done([tmp])
