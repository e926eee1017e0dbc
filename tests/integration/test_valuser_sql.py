"""test_valuser_sql - vpopmail users in MariaDB (valsql.c): a real mariadbd on a temp datadir
(test-services.md §7) with both of vpopmail's layouts and valias; RCPT to a known user 250,
unknown 550, database down 451, server stopped mid-session 451; libmariadb is loaded only in a
session whose recipient needs SQL."""
import os, shutil, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_valuser import (BIN, Client, Server, check, done, free_port, put, session, tmpdir,
                          users_cdb, BOUNCE)

SCHEMA = """
CREATE DATABASE vpopmail; CREATE DATABASE vpop2;
CREATE TABLE vpopmail.vpopmail (pw_name char(32) NOT NULL, pw_domain char(96) NOT NULL,
  pw_passwd char(128), pw_uid int, pw_gid int, pw_gecos char(48), pw_dir char(160),
  pw_shell char(20), pw_clear_passwd char(128), PRIMARY KEY (pw_name, pw_domain));
CREATE TABLE vpopmail.valias (alias char(32) NOT NULL, domain char(96) NOT NULL,
  valias_line text NOT NULL, KEY (alias, domain));
INSERT INTO vpopmail.vpopmail (pw_name, pw_domain, pw_gid) VALUES ('alice','sqld.example',0),
  ('bounced','sqld.example',16), ('carol','other.example',0);
INSERT INTO vpopmail.valias VALUES ('sales','sqld.example','&s@elsewhere.example'),
  ('team-default','sqld.example','&t@elsewhere.example');
CREATE TABLE vpop2.sqld_example (pw_name char(32) NOT NULL, pw_passwd char(128), pw_uid int,
  pw_gid int, pw_gecos char(48), pw_dir char(160), pw_shell char(20), PRIMARY KEY (pw_name));
INSERT INTO vpop2.sqld_example (pw_name, pw_gid) VALUES ('dave', 0);
CREATE USER 'smtpd'@'localhost' IDENTIFIED BY 'smtpdpw';
CREATE USER 'smtpd'@'127.0.0.1' IDENTIFIED BY 'smtpdpw';
GRANT SELECT ON vpopmail.* TO 'smtpd'@'localhost'; GRANT SELECT ON vpopmail.* TO 'smtpd'@'127.0.0.1';
GRANT SELECT ON vpop2.* TO 'smtpd'@'localhost'; GRANT SELECT ON vpop2.* TO 'smtpd'@'127.0.0.1';
"""


class MariaDB:
    def __init__(self, d):
        self.d, self.port, self.sock = d, free_port(), d + "/my.sock"
        subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=" + d + "/my", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True)
        self.start()
        subprocess.run(["mariadb", "--no-defaults", "--socket=" + self.sock, "-uroot"],
                       input=SCHEMA.encode(), check=True, capture_output=True)

    def start(self):
        self.p = subprocess.Popen(
            ["mariadbd", "--no-defaults", "--datadir=" + self.d + "/my", "--socket=" + self.sock,
             "--pid-file=" + self.d + "/my.pid", "--user=root", "--bind-address=127.0.0.1",
             "--port=%d" % self.port, "--log-error=" + self.d + "/my.err",
             "--innodb-buffer-pool-size=32M", "--skip-name-resolve", "--performance-schema=OFF"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(400):
            if subprocess.run(["mariadb-admin", "--no-defaults", "--socket=" + self.sock, "-uroot", "ping"],
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("mariadbd did not start")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(30)


def fixture(home, conf):
    put(home + "/control/me", "mx.example\n")
    put(home + "/control/rcpthosts", "sqld.example\nlocal.example\n")
    put(home + "/control/locals", "local.example\n")
    put(home + "/control/virtualdomains", "sqld.example:sqld.example\n")
    put(home + "/control/vpopmail.mysql", conf + "\n", 0o600)
    users_cdb(home + "/users/cdb", [
        "=joe:joe:1000:1000:%s/h/joe:::" % home,
        "+sqld.example-:sqld.example:89:89:%s/vp/sqld.example:-::" % home,
        "+:alias:7790:2108:%s/h/alias:-::" % home])
    os.makedirs(home + "/h/joe", exist_ok=True)
    os.makedirs(home + "/h/alias", exist_ok=True)
    put(home + "/vp/sqld.example/.qmail-default", BOUNCE, 0o600)


def maps_of_session(srv):
    """the pid of the newest session (from its connect line) and its /proc maps"""
    pid = [l.split()[0][4:] for l in srv.logtext().splitlines() if "event=connect" in l][-1]
    with open("/proc/%s/maps" % pid) as f:
        return f.read()


def test_many_domains(home, db):
    fixture(home, "127.0.0.1|%d|smtpd|smtpdpw|vpopmail" % db.port)
    srv = Server(home)
    try:
        cases = [("alice@sqld.example", 250, "user"), ("ALICE@sqld.example", 250, "user, case"),
                 ("bob@sqld.example", 550, "unknown user"), ("bounced@sqld.example", 550, "BOUNCE_MAIL"),
                 ("sales@sqld.example", 250, "valias"), ("team-x@sqld.example", 250, "valias -default"),
                 ("alice-ext@sqld.example", 250, "user-ext"), ("carol@sqld.example", 550, "other domain's user")]
        got = session(srv.port, [a for a, _, _ in cases])
        for (a, want, name), r in zip(cases, got):
            check(r.startswith(str(want)), "sql many-domains: " + name, "%s: %s" % (a, r))
        check("reason=nouser:sql" in srv.logtext(), "sql: reject logged with backend sql", "")
        c = Client(srv.port)
        c.cmd("HELO x"); c.cmd("MAIL FROM:<a@b.example>")
        r = c.cmd("RCPT TO:<joe@local.example>")
        m = maps_of_session(srv)
        check(r.startswith("250") and "libmariadb" not in m,
              "sql: a session without SQL recipients does not load libmariadb", r)
        r = c.cmd("RCPT TO:<alice@sqld.example>")
        m = maps_of_session(srv)
        check(r.startswith("250") and "libmariadb" in m, "sql: loaded on the first SQL recipient", r)
        c.cmd("QUIT"); c.close()
    finally:
        srv.stop()


def test_other_forms(home, db):
    for conf, name in [("127.0.0.1|%d|smtpd|smtpdpw|vpop2" % db.port, "one table per domain"),
                       ("%s|0|smtpd|smtpdpw|vpopmail" % db.sock, "Unix socket")]:
        fixture(home, conf)
        srv = Server(home)
        try:
            who = "dave" if "vpop2" in conf else "alice"
            got = session(srv.port, [who + "@sqld.example", "bob@sqld.example"])
            check(got[0].startswith("250") and got[1].startswith("550"), "sql: " + name, repr(got))
        finally:
            srv.stop()
    fixture(home, "127.0.0.1|%d|smtpd|wrongpw|vpopmail" % db.port)
    srv = Server(home)
    try:
        r = session(srv.port, ["alice@sqld.example"])[0]
        check(r.startswith("451") and "4.3.0" in r, "sql: bad password is 451", r)
        check("backend=sql" in srv.logtext() and "Access denied" in srv.logtext(),
              "sql: 451 logged with the server's reason", "")
    finally:
        srv.stop()


def test_down(home, db):
    fixture(home, "127.0.0.1|%d|smtpd|smtpdpw|vpopmail" % free_port())
    srv = Server(home)
    try:
        t = time.time()
        got = session(srv.port, ["alice@sqld.example", "bob@sqld.example", "joe@local.example"])
        check([r[:3] for r in got] == ["451", "451", "250"], "sql: server down is 451, others unaffected",
              repr(got))
        check(time.time() - t < 5, "sql: down is answered at once", "%.1fs" % (time.time() - t))
    finally:
        srv.stop()
    fixture(home, "127.0.0.1|%d|smtpd|smtpdpw|vpopmail" % db.port)
    srv = Server(home)
    try:
        c = Client(srv.port)
        c.cmd("HELO x"); c.cmd("MAIL FROM:<a@b.example>")
        r1 = c.cmd("RCPT TO:<alice@sqld.example>")
        db.stop()
        r2 = c.cmd("RCPT TO:<bob@sqld.example>")
        r3 = c.cmd("RCPT TO:<alice@sqld.example>")
        c.cmd("QUIT"); c.close()
        check(r1.startswith("250") and r2.startswith("451") and r3.startswith("451"),
              "sql: server stopped mid-session is 451, never 550", repr([r1, r2, r3]))
    finally:
        srv.stop()


def test_users_tool(home, db):
    """mxguard-users lists the SQL users and valias rows into its cdb, which then answers alone"""
    fixture(home, "127.0.0.1|%d|smtpd|smtpdpw|vpopmail" % db.port)
    cdbf = home + "/control/mxguard-users.cdb"
    p = subprocess.run([os.path.join(BIN, "mxguard-users")], env=dict(os.environ, QMAILHOME=home),
                       capture_output=True, text=True)
    check(p.returncode == 0 and os.path.exists(cdbf), "sql: mxguard-users builds the cdb", p.stderr)
    # with the server's settings gone, only the cdb can know these users
    os.unlink(home + "/control/vpopmail.mysql")
    srv = Server(home)
    try:
        cases = [("alice@sqld.example", 250), ("sales@sqld.example", 250),
                 ("bob@sqld.example", 550), ("bounced@sqld.example", 550)]
        got = session(srv.port, [a for a, _ in cases])
        bad = [(a, w, r) for (a, w), r in zip(cases, got) if not r.startswith(str(w))]
        check(not bad, "sql: mxguard-users' cdb answers for SQL users and valias", repr(bad))
    finally:
        srv.stop()
        os.unlink(cdbf)


def test_rules_table(home, db):
    """mxguard-rules compile reads a web panel's rules from the table mxguard_rules: a scope with
    only a row, and one with a file too (file lines first); the daemon applies them (explain)"""
    fixture(home, "127.0.0.1|%d|smtpd|smtpdpw|vpopmail" % db.port)
    rules = os.path.join(BIN, "mxguard-rules")
    env = dict(os.environ, QMAILHOME=home)
    p = subprocess.run([rules, "compile"], env=env, capture_output=True, text=True)
    check(p.returncode == 0, "sql rules: no table is no rows", p.stderr)
    sql = ("CREATE TABLE vpopmail.mxguard_rules (scope varchar(255) NOT NULL PRIMARY KEY, rules text NOT NULL);"
           "INSERT INTO vpopmail.mxguard_rules VALUES ('alice@sqld.example', "
           "'deny if from=*@alicehates.example \"550 5.7.1 alice says no\"\\r\\nset SPAMTAG=5'),"
           "('sqld.example', 'deny if from=*@domainhates.example');")
    subprocess.run(["mariadb", "--no-defaults", "--socket=" + db.sock, "-uroot"], input=sql.encode(),
                   check=True, capture_output=True)
    os.makedirs(home + "/control/rules.d", exist_ok=True)
    put(home + "/control/rules.d/sqld.example", "deny if from=*@filehates.example\n")
    p = subprocess.run([rules, "compile"], env=env, capture_output=True, text=True)
    check(p.returncode == 0, "sql rules: compile", p.stderr)
    out = subprocess.run([rules, "show", "Ualice@sqld.example"], env=env, capture_output=True, text=True).stdout
    check("mysql:alice@sqld.example:1: deny from=*@alicehates.example" in out and
          "mysql:alice@sqld.example:2: set SPAMTAG=5" in out, "sql rules: the user's row", out)
    out = subprocess.run([rules, "show", "Dsqld.example"], env=env, capture_output=True, text=True).stdout
    check("control/rules.d/sqld.example:1" in out and "mysql:sqld.example:1" in out and
          out.index("control/rules.d/sqld.example:1") < out.index("mysql:sqld.example:1"),
          "sql rules: the file's lines, then the row's", out)
    for sender, want in (("x@alicehates.example", "550 5.7.1 alice says no"),
                         ("x@domainhates.example", "550 5.7.1 sorry"), ("x@filehates.example", "550 5.7.1 sorry"),
                         ("x@fine.example", "250 ok")):
        p = subprocess.run([rules, "explain", "--offline", "--smtpd", os.path.join(BIN, "mxguard-smtpd"),
                            "--ip", "192.0.2.9", "--from", sender, "--rcpt", "alice@sqld.example"],
                           env=env, capture_output=True, text=True, timeout=30)
        last = [l for l in p.stdout.splitlines() if l.startswith("  < ")][-2]
        check(last.startswith("  < " + want), "sql rules: %s -> %s" % (sender, want), p.stdout[-600:])
    os.unlink(home + "/control/rules.d/sqld.example")
    db.stop()
    try:
        p = subprocess.run([rules, "compile"], env=env, capture_output=True, text=True, timeout=30)
        check(p.returncode == 111 and os.path.exists(home + "/control/rules.cdb"),
              "sql rules: database down: exit 111, the old cdb kept", "%d %s" % (p.returncode, p.stderr))
    finally:
        db.start()


if __name__ == "__main__":
    if not shutil.which("mariadbd"):
        print("FAIL test_valuser_sql: mariadbd not installed (run install-deps)")
        sys.exit(0)
    tmp = tmpdir("valsql")
    db = None
    try:
        db = MariaDB(tmp)
        home = tmp + "/q"
        for t in (test_many_domains, test_other_forms, test_users_tool, test_rules_table, test_down):
            try:
                t(home, db)
            except Exception as e:  # a broken case must show, not vanish in done()'s exit
                print("FAIL %s: %s: %s" % (t.__name__, type(e).__name__, e))
    finally:
        if db:
            db.stop()
        done([tmp])
