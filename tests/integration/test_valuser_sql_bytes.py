"""test_valuser_sql_bytes - a client cannot switch the SQL recipient check off (issue 12 item 4):
a local part that is not UTF-8 (which MariaDB cannot compare with its utf8 columns) is "no such
user" (550), not "database down", and the real users after it in the same session still get
250, against a real mariadbd."""
import os, shutil, socket, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_valuser import Server, check, done, tmpdir
from test_valuser_sql import MariaDB, fixture


def raw_session(port, rcpts):
    s = socket.create_connection(("127.0.0.1", port), 10)
    f = s.makefile("rb")
    out = []

    def cmd(line):
        s.sendall(line + b"\r\n")
        return f.readline().decode("latin-1").rstrip("\r\n")
    f.readline()
    cmd(b"HELO client.example")
    cmd(b"MAIL FROM:<a@b.example>")
    for r in rcpts:
        out.append(cmd(b"RCPT TO:<" + r + b"@sqld.example>"))
    cmd(b"QUIT")
    s.close()
    return out


def test_bytes(home, db):
    for conf, name in [("127.0.0.1|%d|smtpd|smtpdpw|vpopmail" % db.port, "many-domains"),
                       ("127.0.0.1|%d|smtpd|smtpdpw|vpop2" % db.port, "table per domain")]:
        fixture(home, conf)
        srv = Server(home)
        try:
            real = b"alice" if name == "many-domains" else b"dave"
            got = raw_session(srv.port, [b"\xe9t\xe9", real, b"x\xff\xfe", b"sales" if
                                         name == "many-domains" else real,
                                         "日本".encode(), real + b"\xff", real])
            want = ["550", "250", "550", "250", "550", "550", "250"]
            check([g[:3] for g in got] == want,
                  "sql %s: a non-UTF-8 local part is no such user, later users still 250" % name,
                  repr(got))
            check("reason=valuser" not in srv.logtext(), "sql %s: no database error logged" % name,
                  srv.logtext()[-400:])
        finally:
            srv.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    if not shutil.which("mariadbd"):
        print("FAIL test_valuser_sql_bytes: mariadbd not installed (run install-deps)")
        sys.exit(0)
    tmp = tmpdir("valsqlb")
    db = None
    try:
        db = MariaDB(tmp)
        test_bytes(tmp + "/q", db)
    finally:
        if db:
            db.stop()
        done([tmp])
