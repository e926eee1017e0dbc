"""test_valuser - mxguard-smtpd refuses unknown local recipients at RCPT (valuser.c) end to end
under the real tcpserver: a qmail site (users/cdb, real passwd users when run as root, the alias
user), a vpopmail site (vpasswd.cdb), the switches, the harvest defence, the log line and
mxguard-users. The top half is a small harness that test_valuser_sql.py imports too."""
import os, shutil, signal, socket, subprocess, sys, tempfile, time

BIN = os.environ.get("MXG_BIN", "/work/main")
SMTPD = os.path.join(BIN, "mxguard-smtpd")
results = {"pass": 0, "fail": 0}


def check(ok, name, detail=""):
    if ok:
        results["pass"] += 1
        print("PASS %s" % name)
    else:
        results["fail"] += 1
        print("FAIL %s: %s" % (name, detail))
    sys.stdout.flush()
    return ok


def put(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)
    os.chmod(path, mode)


def cdb_records(path, records):
    """records: list of (key bytes, value bytes); written with `cdb -c` (cdbmake input)"""
    lines = b"".join(b"+%d,%d:%s->%s\n" % (len(k), len(v), k, v) for k, v in records) + b"\n"
    tmp = path + ".in"
    with open(tmp, "wb") as f:
        f.write(lines)
    subprocess.run(["cdb", "-c", "-t", path + ".tmp", path, tmp], check=True)
    os.unlink(tmp)


def users_cdb(path, lines):
    """users/cdb from users/assign lines, encoded as qmail-newu does"""
    recs, wild = [], b""
    for l in lines:
        l = l.encode()
        local, rest = l[1:].split(b":", 1)
        fields = rest.split(b":")[:6]
        if l[:1] == b"+":
            key = b"!" + local.lower()
            if local and key[-1:] not in wild:
                wild += key[-1:]
        else:
            key = b"!" + local.lower() + b"\0"
        recs.append((key, b"\0".join(fields)))
    recs.append((b"", wild))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cdb_records(path, recs)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    """tcpserver running mxguard-smtpd with env; stderr (the log) collected in a file"""

    def __init__(self, home, env=None, smtpd=SMTPD):
        self.home = home
        self.port = free_port()
        qq = os.path.join(home, "qq")
        if not os.path.exists(qq):
            put(qq, "#!/bin/sh\ncat >/dev/null\ncat <&1 >/dev/null\nexit 0\n", 0o755)
        e = ["QMAILHOME=" + home, "QMAILQUEUE=" + qq] + ["%s=%s" % kv for kv in (env or {}).items()]
        self.logpath = os.path.join(home, "log.%d" % self.port)
        self.log = open(self.logpath, "wb")
        self.p = subprocess.Popen(["tcpserver", "-R", "-H", "-l", "mx.example", "127.0.0.1",
                                   str(self.port), "env"] + e + [smtpd],
                                  stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.02)

    def logtext(self):
        self.log.flush()
        with open(self.logpath, "rb") as f:
            return f.read().decode("latin-1")

    def stop(self):
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
        except OSError:
            pass
        self.p.wait()
        self.log.close()


class Client:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), 10)
        self.f = self.s.makefile("rb")
        self.banner = self.reply()

    def reply(self):
        lines = []
        while True:
            l = self.f.readline()
            if not l:
                return "".join(lines) or "EOF"
            l = l.decode("latin-1").rstrip("\r\n")
            lines.append(l)
            if len(l) < 4 or l[3] != "-":
                return "\n".join(lines)

    def cmd(self, line):
        try:
            self.s.sendall(line.encode() + b"\r\n")
        except OSError:
            return "EOF"
        return self.reply()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def session(port, rcpts, mailfrom="a@b.example"):
    """one session: HELO, MAIL, each RCPT; the RCPT replies (first line, code and text)"""
    c = Client(port)
    c.cmd("HELO client.example")
    c.cmd("MAIL FROM:<%s>" % mailfrom)
    out = [c.cmd("RCPT TO:<%s>" % r) for r in rcpts]
    c.cmd("QUIT")
    c.close()
    return out


def tmpdir(tag):
    d = tempfile.mkdtemp(prefix="mxg-%s." % tag)
    os.chmod(d, 0o755)
    return d


def done(dirs=()):
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    sys.exit(0)


# ---------------------------------------------------------------------------------------------
BOUNCE = "| /home/vpopmail/bin/vdelivermail '' bounce-no-mailbox\n"


def fixture(home):
    put(home + "/control/me", "mx.example\n")
    put(home + "/control/rcpthosts", "local.example\nmx.example\nvpop.example\nvirt.example\n")
    put(home + "/control/locals", "local.example\nmx.example\n")
    put(home + "/control/virtualdomains", "virt.example:virt\nvpop.example:vpop.example\n")
    users_cdb(home + "/users/cdb", [
        "=joe:joe:1000:1000:%s/h/joe:::" % home,
        "+virt-:virt:1006:1006:%s/h/virt:-::" % home,
        "+vpop.example-:vpop.example:89:89:%s/vp/vpop.example:-::" % home,
        "+:alias:7790:2108:%s/h/alias:-::" % home])
    os.makedirs(home + "/h/joe")
    put(home + "/h/virt/.qmail-bob", "./Maildir/\n")
    put(home + "/h/alias/.qmail-postmaster", "&root@elsewhere.example\n")
    put(home + "/h/alias/.qmail-ww", "&x@elsewhere.example\n", 0o666)
    put(home + "/h/alias/.qmail-list-default", "&x@elsewhere.example\n")
    put(home + "/vp/vpop.example/.qmail-default", BOUNCE, 0o600)
    put(home + "/vp/vpop.example/.qmail-info", "&x@elsewhere.example\n", 0o600)
    cdb_records(home + "/vp/vpop.example/vpasswd.cdb",
                [(b"alice", b"x:1:0:Alice:/d/alice:NOQUOTA"), (b"bounced", b"x:1:16:B:/d/b:NOQUOTA")])


EXPECT = [  # address, expected reply code (live and through mxguard-users' cdb)
    ("joe@local.example", 250), ("nosuch@local.example", 550), ("postmaster@local.example", 250),
    ("PostMaster@Local.Example", 250), ("list-subscribe@local.example", 250),
    ("bob@virt.example", 250), ("carol@virt.example", 550),
    ("alice@vpop.example", 250), ("ALICE@vpop.example", 250), ("bob@vpop.example", 550),
    ("bounced@vpop.example", 550), ("info@vpop.example", 250), ("alice-ext@vpop.example", 250),
    ("x@elsewhere.example", 553),
]


def codes(replies):
    return [int(r[:3]) if r[:3].isdigit() else 0 for r in replies]


def test_sites(home):
    srv = Server(home)
    try:
        got = session(srv.port, [a for a, _ in EXPECT])
        for (a, want), r in zip(EXPECT, got):
            check(r.startswith(str(want)), "live: RCPT %s -> %d" % (a, want), r)
        r = session(srv.port, ["nosuch@local.example"])[0]
        check(r == "550 sorry, no mailbox here by that name. (#5.1.1)", "550 text", r)
        r = session(srv.port, ["ww@local.example"])[0]
        check(r.startswith("451 ") and "4.3.0" in r, "writable .qmail: 451 4.3.0", r)
        log = srv.logtext()
        line = [l for l in log.splitlines() if "event=reject" in l and "to=<bob@vpop.example>" in l]
        check(len(line) == 1 and "reason=nouser:vpopmail" in line[0] and "code=550" in line[0],
              "log: one reject line with backend", repr(line))
        line = [l for l in log.splitlines() if "reason=valuser" in l and "event=error" in l]
        check(len(line) >= 1 and "backend=qmail" in line[0] and "qmailmode" in line[0],
              "log: 451 logged with its cause", repr(line))
    finally:
        srv.stop()


def test_switches(home):
    cases = [({"RCPTCHECK": "0"}, 250, "RCPTCHECK=0 turns it off"),
             ({"RCPTCHECK": ""}, 550, "RCPTCHECK set turns it on"),
             ({"CHKUSER_START": "NONE"}, 250, "CHKUSER_START=NONE turns it off"),
             ({"CHKUSER_START": "ALWAYS"}, 550, "CHKUSER_START=ALWAYS"),
             ({"RELAYCLIENT": ""}, 250, "RELAYCLIENT skips the check"),
             ({"RELAYCLIENT": "", "RCPTCHECKRELAY": "1"}, 550, "RCPTCHECKRELAY checks relay clients")]
    for env, want, name in cases:
        srv = Server(home, env)
        try:
            r = session(srv.port, ["bob@vpop.example"])[0]
            check(r.startswith(str(want)), "switch: " + name, r)
        finally:
            srv.stop()


def test_harvest(home):
    srv = Server(home, {"BADRCPTSOFT": "1", "BADRCPTDELAY": "300ms", "BADRCPTLIMIT": "3"})
    try:
        c = Client(srv.port)
        c.cmd("HELO x")
        c.cmd("MAIL FROM:<a@b.example>")
        times, replies = [], []
        for a in ["u1@local.example", "u2@local.example", "joe@local.example", "u3@local.example",
                  "joe@local.example"]:
            t = time.time()
            replies.append(c.cmd("RCPT TO:<%s>" % a))
            times.append(time.time() - t)
        eof = c.reply()
        c.close()
        check(codes(replies) == [550, 550, 250, 550, 421], "harvest: replies", repr(replies))
        check(times[0] < 0.25 and all(t >= 0.28 for t in times[1:]),
              "harvest: every reply after the first unknown waits", repr(times))
        check(eof == "EOF", "harvest: connection closed after 421", eof)
        check("reason=harvest" in srv.logtext(), "harvest: logged", "")
    finally:
        srv.stop()


def test_users_tool(home):
    tool = os.path.join(BIN, "mxguard-users")
    os.chmod(home + "/h/alias/.qmail-ww", 0o644)  # a writable .qmail makes it give up
    p = subprocess.run([tool], env=dict(os.environ, QMAILHOME=home), capture_output=True, text=True)
    cdbf = home + "/control/mxguard-users.cdb"
    check(p.returncode == 0 and os.path.exists(cdbf), "mxguard-users: builds the cdb", p.stderr)
    check(not os.path.exists(home + "/control/mxguard-users.tmp"), "mxguard-users: no .tmp left", "")
    srv = Server(home)
    try:
        got = session(srv.port, [a for a, _ in EXPECT])
        bad = [(a, want, r) for (a, want), r in zip(EXPECT, got) if not r.startswith(str(want))]
        check(not bad, "mxguard-users: the cdb answers as the live lookup", repr(bad))
        # the cdb alone answers: a new user appears only after the next run
        put(home + "/h/virt/.qmail-carol", "./Maildir/\n")
        r = session(srv.port, ["carol@virt.example"])[0]
        check(r.startswith("550"), "mxguard-users: cdb used when present", r)
        p = subprocess.run([tool], env=dict(os.environ, QMAILHOME=home), capture_output=True, text=True)
        r = session(srv.port, ["carol@virt.example"])[0]
        check(p.returncode == 0 and r.startswith("250"), "mxguard-users: rebuilt cdb seen by the next session", r)
        # a temporary failure leaves the old cdb alone
        before = os.stat(cdbf).st_ino
        os.chmod(home + "/h/virt/.qmail-bob", 0o666)
        p = subprocess.run([tool], env=dict(os.environ, QMAILHOME=home), capture_output=True, text=True)
        check(p.returncode == 111 and os.stat(cdbf).st_ino == before,
              "mxguard-users: trouble exits 111, old cdb kept", p.stderr)
        os.chmod(home + "/h/virt/.qmail-bob", 0o644)
    finally:
        srv.stop()
        os.unlink(cdbf)


def useradd(name, home, own=True):
    subprocess.run(["useradd", "-M", "-d", home, "-s", "/usr/sbin/nologin", name], check=True,
                   capture_output=True)
    os.makedirs(home, exist_ok=True)
    if own:
        import pwd
        pw = pwd.getpwnam(name)
        os.chown(home, pw.pw_uid, pw.pw_gid)


def test_passwd(tmp):
    """qmail-getpw: real users (root only), no users/cdb"""
    import pwd
    if os.geteuid() != 0:
        print("SKIP passwd users: not root (useradd needed)")
        return
    names = []
    try:
        had_alias = True
        try:
            pwd.getpwnam("alias")
        except KeyError:
            had_alias = False
        home = tmp + "/q2"
        put(home + "/control/me", "mx.example\n")
        put(home + "/control/rcpthosts", "local.example\n")
        put(home + "/control/locals", "local.example\n")
        useradd("mxgvu1", home + "/u1"); names.append("mxgvu1")
        useradd("mxgvu2", home + "/u2", own=False); names.append("mxgvu2")
        if not had_alias:
            useradd("alias", home + "/alias"); names.append("alias")
        ahome = pwd.getpwnam("alias").pw_dir
        put(home + "/u1/.qmail-foo", "./Maildir/\n")
        put(home + "/u1/.qmail-lists-default", "./Maildir/\n")
        created = []
        for f, text in [(".qmail-mxgvu1-x", "&x@e.example\n"), (".qmail-mxgvu2", "&x@e.example\n")]:
            if not os.path.exists(os.path.join(ahome, f)):
                put(os.path.join(ahome, f), text)
                created.append(os.path.join(ahome, f))
        srv = Server(home)
        try:
            cases = [("mxgvu1@local.example", 250, "passwd user"),
                     ("MXGVU1@local.example", 250, "passwd user, case folded"),
                     ("mxgvu1-foo@local.example", 250, "user-ext with .qmail-ext"),
                     ("mxgvu1-lists-a@local.example", 250, "user-ext with -default"),
                     ("mxgvu1-bar@local.example", 550, "user-ext without a file"),
                     ("mxgvu1-x@local.example", 550, "order: passwd user before ~alias/.qmail-USER-x"),
                     ("mxgvu2@local.example", 250, "home not owned: ~alias/.qmail-mxgvu2"),
                     ("root@local.example", 550 if not os.path.exists(ahome + "/.qmail-root") else 250,
                      "uid 0 goes to alias")]
            got = session(srv.port, [a for a, _, _ in cases])
            for (a, want, name), r in zip(cases, got):
                check(r.startswith(str(want)), "passwd: " + name, "%s: %s" % (a, r))
        finally:
            srv.stop()
            for f in created:
                os.unlink(f)
    finally:
        for n in names:
            subprocess.run(["userdel", n], capture_output=True)


if __name__ == "__main__":
    tmp = tmpdir("valuser")
    home = tmp + "/q"
    try:
        fixture(home)
        test_sites(home)
        test_switches(home)
        test_harvest(home)
        test_users_tool(home)
        test_passwd(tmp)
    finally:
        done([tmp])
