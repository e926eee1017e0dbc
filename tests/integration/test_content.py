#!/usr/bin/python3
"""Integration: content policy blocks before the 250 (content.c, mime.c): REJECTEXEC with
control/signatures (qmail-ldap's 552), attachment names and extensions (shipped
control/badattach, RFC 2231/2047 names, names inside a zip), declared types, charsets,
header regexes; a refusal queues nothing, an accepted message reaches qmail-queue byte for
byte, and a setting whose control file is missing is a 451, never ignored."""
import base64
import io
import os
import sys
import zipfile
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

SHIPPED = os.path.join(MXG_SRC, 'control')
EXE = b'MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00' + b'\x00' * 200


def shipped(name):
    with open(os.path.join(SHIPPED, name), 'rb') as f:
        return f.read()


def controls(**extra):
    c = {'me': ME, 'signatures': shipped('signatures'), 'badattach': shipped('badattach'),
         'headerblock': shipped('headerblock')}
    c.update(extra)
    return c


def crlf(msg):
    return b(msg).replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')


def b64lines(data):
    e = base64.b64encode(data)
    return b'\n'.join(e[i:i + 76] for i in range(0, len(e), 76)) + b'\n'


def multipart(parts, top=b'From: a@x.test\nSubject: test\n'):
    out = top + b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="=_b1"\n\n'
    out += b'This is a multi-part message in MIME format.\n'
    for hdr, body in parts:
        out += b'--=_b1\n' + hdr + b'\n' + body
    return out + b'--=_b1--\n'


def attachment(name_hdr, data, ctype=b'application/octet-stream'):
    return (b'Content-Type: ' + ctype + b'\nContent-Transfer-Encoding: base64\n' + name_hdr,
            b64lines(data))


TEXT = (b'Content-Type: text/plain; charset=us-ascii\n', b'hello\n')


def deliver(srv, msg, rcpts=('<u@example.test>',)):
    """the message (LF line ends) through DATA; the reply after the dot"""
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        return send_message(s, rcpts=rcpts, body=crlf(msg))


def refused(srv, msg, code_re, **kw):
    r = deliver(srv, msg, **kw)
    match(code_re, r, 'reply after the dot')
    srv.nothing_stored(runs=1)
    return r


def content_events(srv):
    return events([l for l in srv.log_lines() if l.startswith(b'pid=')], 'content')


@case
def test_rejectexec_first_line(srv):
    srv.configure(control=controls(), env={'REJECTEXEC': '1'})
    msg = multipart([TEXT, attachment(b'Content-Disposition: attachment; filename="setup.bin"\n', EXE)])
    r = refused(srv, msg, rb"552 we don't accept email with this MIME content \(#5\.3\.4\)\r\n")
    ev = content_events(srv)
    check(ev and ev[0].get('rejectexec') == b'hit' and ev[0]['verdict'] == b'reject', 'log: %r' % ev)


@case
def test_rejectexec_only_first_line(srv):
    # qmail-ldap compares only the first line after a part's blank line
    srv.configure(control=controls(), env={'REJECTEXEC': '1'})
    msg = multipart([TEXT, (b'Content-Type: text/plain\n', b'harmless first line\nTVqQAAMAAAAEAAAA\n')])
    queued(deliver(srv, msg))


@case
def test_rejectexec_wildcard_and_top_level(srv):
    # '*' matches exactly one byte; the message body's own first line is checked too
    srv.configure(control=controls(signatures='# test\nAB*D\n'), env={'REJECTEXEC': '1'})
    refused(srv, b'Subject: x\n\nABxD and more\n', rb'552 .*\r\n')
    srv.configure(control=controls(signatures='AB*D\n'), env={'REJECTEXEC': '1'})
    queued(deliver(srv, b'Subject: x\n\nABD\n'))


@case
def test_rejectexec_needs_signatures(srv):
    # qmail-ldap: REJECTEXEC without control/signatures is off; we log that it is off
    srv.configure(control={'me': ME}, env={'REJECTEXEC': '1'})
    queued(deliver(srv, multipart([attachment(b'', EXE)])))
    check(b'reason=rejectexec:nosignatures' in srv.log(), 'not logged: %r' % srv.log())


@case
def test_rejectexec_inside_rfc822(srv):
    inner = multipart([attachment(b'Content-Disposition: attachment; filename="a.dat"\n', EXE)],
                      top=b'From: b@y.test\nSubject: inner\n').replace(b'=_b1', b'=_in')
    msg = multipart([TEXT, (b'Content-Type: message/rfc822\n', inner)])
    srv.configure(control=controls(), env={'REJECTEXEC': '1'})
    refused(srv, msg, rb'552 .*\r\n')


@case
def test_attach_extension_default_list(srv):
    srv.configure(control=controls(), env={'ATTACHBLOCK': '1'})
    for hdr, what in [
            (b'Content-Disposition: attachment; filename="invoice.PDF.exe"\n', b'invoice.PDF.exe'),
            (b"Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.scr\n",
             b'r??sum??.scr'),
            (b'Content-Disposition: attachment;\n\tfilename*0="part";\n\tfilename*1=".vbs"\n', b'part.vbs'),
            (b'Content-Disposition: attachment; filename="=?UTF-8?B?ZmFjdHVyZS5qcw==?="\n', b'facture.js')]:
        srv.configure(control=controls(), env={'ATTACHBLOCK': '1'})
        r = refused(srv, multipart([TEXT, attachment(hdr, b'data')]),
                    rb'554 5\.7\.1 attachment not allowed \(.*\)\r\n')
        check(what in r, 'reply names %r: %r' % (what, r))


@case
def test_attach_name_parameter(srv):
    srv.configure(control=controls(), env={'ATTACHBLOCK': '1'})
    refused(srv, multipart([attachment(b'', b'x', ctype=b'application/octet-stream; name="run.bat"')]),
            rb'554 5\.7\.1 attachment not allowed \(run\.bat\)\r\n')


@case
def test_attach_allowed(srv):
    srv.configure(control=controls(), env={'ATTACHBLOCK': '1'})
    msg = multipart([TEXT, attachment(b'Content-Disposition: attachment; filename="report.pdf"\n', b'%PDF'),
                     attachment(b'Content-Disposition: attachment; filename="exe.txt"\n', b'x')])
    queued(deliver(srv, msg))
    body = split_received(srv.stored(1)[0]['msg'])[1]
    eq(body, msg, 'message given to qmail-queue')


@case
def test_attach_inline_list_and_whole_name(srv):
    # an inline list instead of the control file; an entry may be a whole name (winmail.dat)
    srv.configure(control={'me': ME}, env={'ATTACHBLOCK': 'winmail.dat,.xyz'})
    refused(srv, multipart([TEXT, attachment(b'Content-Disposition: attachment; filename="WINMAIL.DAT"\n',
                                             b'\x78\x9f\x3e\x22', ctype=b'application/ms-tnef')]),
            rb'554 5\.7\.1 attachment not allowed \(WINMAIL\.DAT\)\r\n')
    srv.configure(control={'me': ME}, env={'ATTACHBLOCK': 'winmail.dat,.xyz'})
    queued(deliver(srv, multipart([attachment(b'Content-Disposition: attachment; filename="a.exe"\n', b'x')])))


@case
def test_zip_with_exe_inside(srv):
    z = io.BytesIO()
    with zipfile.ZipFile(z, 'w', zipfile.ZIP_DEFLATED) as zf:
        zf.writestr('readme.txt', 'hello ' * 100)
        zf.writestr('docs/invoice.exe', EXE)
    srv.configure(control=controls(), env={'ATTACHBLOCK': '1'})
    r = refused(srv, multipart([TEXT, attachment(b'Content-Disposition: attachment; filename="docs.zip"\n',
                                                 z.getvalue(), ctype=b'application/zip')]),
                rb'554 5\.7\.1 attachment not allowed \(in zip: docs/invoice\.exe\)\r\n')
    ev = content_events(srv)
    check(ev and ev[0]['block'] == b'content:zipattach', 'log: %r' % ev)


@case
def test_zip_clean_and_lying_directory(srv):
    z = io.BytesIO()
    with zipfile.ZipFile(z, 'w') as zf:
        zf.writestr('a.txt', 'x')
        zf.writestr('b.doc', 'y')
    srv.configure(control=controls(), env={'ATTACHBLOCK': '1'})
    queued(deliver(srv, multipart([attachment(b'Content-Disposition: attachment; filename="x.zip"\n',
                                              z.getvalue())])))
    # the central directory says b.doc, the local header b.exe: either name counts
    data = z.getvalue()
    i = data.index(b'b.doc')
    lying = data[:i] + b'b.exe' + data[i + 5:]
    check(lying.count(b'b.doc') == 1, 'fixture: central directory keeps b.doc')
    srv.configure(control=controls(), env={'ATTACHBLOCK': '1'})
    refused(srv, multipart([attachment(b'Content-Disposition: attachment; filename="x.zip"\n', lying)]),
            rb'554 5\.7\.1 attachment not allowed \(in zip: b\.exe\)\r\n')


@case
def test_declared_type(srv):
    srv.configure(control={'me': ME}, env={'ATTACHTYPES': 'application/x-msdownload,application/hta'})
    refused(srv, multipart([attachment(b'', b'x', ctype=b'application/x-msdownload')]),
            rb'554 5\.7\.1 attachment type not allowed \(application/x-msdownload\)\r\n')


@case
def test_charset_part_and_encoded_word(srv):
    srv.configure(control={'me': ME}, env={'CHARSETBLOCK': 'gb2312,koi8-r'})
    refused(srv, multipart([(b'Content-Type: text/plain; charset="KOI8-R"\n', b'\xf0\xd2\xc9\n')]),
            rb'554 5\.7\.1 charset not accepted \(koi8-r\)\r\n')
    srv.configure(control={'me': ME}, env={'CHARSETBLOCK': 'gb2312,koi8-r'})
    refused(srv, b'Subject: =?GB2312?B?xOO6ww==?=\n\nhi\n',
            rb'554 5\.7\.1 charset not accepted \(GB2312\)\r\n')
    srv.configure(control={'me': ME}, env={'CHARSETBLOCK': 'gb2312,koi8-r'})
    queued(deliver(srv, b'Subject: =?UTF-8?B?aGk=?=\nContent-Type: text/plain; charset=utf-8\n\nhi\n'))


@case
def test_header_regex(srv):
    srv.configure(control=controls(headerblock='Subject: ^\\[SPAM\\]\nX-Mailer: massmail\n'),
                  env={'HEADERBLOCK': '1'})
    refused(srv, b'From: a@x.test\nSubject: [spam] cheap\n\nhi\n',
            rb'554 5\.7\.1 header not accepted \(Subject\)\r\n')
    srv.configure(control=controls(headerblock='Subject: ^\\[SPAM\\]\nX-Mailer: massmail\n'),
                  env={'HEADERBLOCK': '1'})
    refused(srv, b'Subject: hi\nX-Mailer:\n  MassMail 2.0\n\nhi\n',
            rb'554 5\.7\.1 header not accepted \(X-Mailer\)\r\n')
    srv.configure(control=controls(headerblock='Subject: ^\\[SPAM\\]\n'), env={'HEADERBLOCK': '1'})
    queued(deliver(srv, b'Subject: not [spam]\n\nhi\n'))


@case
def test_missing_or_bad_control_is_451(srv):
    # asked for, but the list is absent or broken: never ignored, never a 5xx
    for ctl, env in [({'me': ME}, {'ATTACHBLOCK': '1'}),
                     ({'me': ME}, {'HEADERBLOCK': '1'}),
                     (controls(headerblock='Subject: (unclosed\n'), {'HEADERBLOCK': '1'}),
                     ({'me': ME}, {'SPAMREJECT': 'five', 'SPAMD': '127.0.0.1:9'})]:
        srv.configure(control=ctl, env=env)
        with srv.session() as s:
            eq(s.reply(), banner(), 'banner')
            eq(s.cmd('MAIL FROM:<a@x.test>'), b'250 ok\r\n', 'MAIL')
            eq(s.cmd('RCPT TO:<u@example.test>'), b'250 ok\r\n', 'RCPT')
            match(rb'451 4\.3\.0 .*\r\n', s.cmd('DATA'), 'DATA reply for %r' % env)
        srv.nothing_stored(runs=0)


@case
def test_content_on_message_unchanged(srv):
    # with every MIME block on, an innocent message reaches qmail-queue byte for byte,
    # including dots, a missing final LF and a long line
    srv.configure(control=controls(), env={'ATTACHBLOCK': '1', 'REJECTEXEC': '1',
                                           'CHARSETBLOCK': 'gb2312', 'HEADERBLOCK': '1'})
    msg = multipart([TEXT, (b'Content-Type: text/plain\n', b'.leading dot\n' + b'y' * 5000 + b'\nend')])
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        r = send_message(s, body=crlf(msg).replace(b'\r\n.', b'\r\n..') + b'\r\n')
    queued(r)
    eq(split_received(srv.stored(1)[0]['msg'])[1], msg + b'\n', 'message')


@case
def test_hostile_mime(srv):
    # 10 000 nested multiparts, a 5 MB header line, NULs, broken base64 and a missing
    # close: accepted as it is (no policy hit), flagged in the log, never a crash
    nest = b''.join(b'Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n' % (i, i) for i in range(10000))
    msg = (b'Subject: ' + b'x' * (5 << 20) + b'\nX-Nul: a\0b\n' + nest +
           b'Content-Type: application/zip; name="z.zip"\nContent-Transfer-Encoding: base64\n\n'
           b'UEsDB!!!not base64 at all===\n')
    srv.configure(control=controls(), env={'ATTACHBLOCK': '1', 'REJECTEXEC': '1'})
    with srv.session(timeout=30) as s:
        eq(s.reply(), banner(), 'banner')
        queued(send_message(s, body=crlf(msg)))
    eq(split_received(srv.stored(1)[0]['msg'])[1], msg, 'message')
    ev = content_events(srv)
    check(ev and int(ev[0]['mimeflags']) & (1 | 2 | 8 | 16) == (1 | 2 | 8 | 16), 'log: %r' % ev)


@case
def test_contentclass_same_policy(srv):
    # CONTENTCLASS: recipients with the same settings share a transaction
    srv.configure(control=controls(), env={'CONTENTCLASS': '1', 'ATTACHBLOCK': '1'})
    queued(deliver(srv, multipart([TEXT]), rcpts=('<u@example.test>', '<v@example.test>')))
    eq(srv.stored(1)[0]['env'], envelope('a@x.test', 'u@example.test', 'v@example.test'), 'envelope')


@case
def test_no_settings_no_content_line(srv):
    queued(deliver(srv, multipart([attachment(b'Content-Disposition: attachment; filename="a.exe"\n', EXE)])))
    check(not content_events(srv), 'event=content logged without any setting')


if __name__ == '__main__':
    sys.exit(run('content'))
