#!/usr/bin/python3
"""Integration: the DATA byte stream, databytes and the hop count (qmail-smtpd-compat.md §4.7,
§4.8, §9.8, §9.9), checked on the exact bytes qmail-queue receives."""
import os
import random
import sys
import time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

OK = b'250 ok\r\n'
GO = b'354 go ahead\r\n'
TOOBIG = b'552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n'
HOPS = b'554 too many hops, this message is looping (#5.4.6)\r\n'


def start_data(srv):
    s = srv.session()
    eq(s.reply(), banner(), 'banner')
    s.expect('MAIL FROM:<a@x.test>', OK)
    s.expect('RCPT TO:<u@example.test>', OK)
    s.expect('DATA', GO)
    return s


def deliver(srv, data, n=1):
    """send data (which must include the final dot) after DATA; (reply, stored body or None)"""
    with start_data(srv) as s:
        s.send(data)
        r = s.reply()
    if r.startswith(b'250 '):
        m = srv.stored(n)[-1]
        return r, split_received(m['msg'])[1]
    return r, None


def body_of(srv, data):
    r, body = deliver(srv, data)
    queued(r)
    return body


@case
def test_crlf_becomes_lf(srv):
    eq(body_of(srv, b'Subject: x\r\n\r\nline 1\r\nline 2\r\n.\r\n'),
       b'Subject: x\n\nline 1\nline 2\n', 'message')


@case
def test_dot_unstuffing(srv):
    eq(body_of(srv, b'..x\r\n.x\r\n. \r\n...\r\n..\r\nplain.\r\n a.\r\n.\r\n'),
       b'.x\nx\n \n..\n.\nplain.\n a.\n', 'message')


@case
def test_dot_cr_other_byte(srv):
    eq(body_of(srv, b'first\r\n.\rX\r\n.\r\r\n..\rY\r\n.\r\n'),
       b'first\n.\rX\n.\r\n.\rY\n', 'message')


@case
def test_cr_cr_lf_and_lone_cr(srv):
    eq(body_of(srv, b'double CR\r\r\nmid\rCR\r\ntriple\r\r\r\n\rstart\r\nend\r\r\n.\r\n'),
       b'double CR\r\nmid\rCR\ntriple\r\r\n\rstart\nend\r\n', 'message')


@case
def test_empty_message(srv):
    eq(body_of(srv, b'.\r\n'), b'', 'message after the Received line')


@case
def test_only_empty_line(srv):
    eq(body_of(srv, b'\r\n.\r\n'), b'\n', 'message')


@case
def test_nul_8bit_long_lines_untouched(srv):
    long = random.Random(7).randbytes(300000).replace(b'\n', b'n').replace(b'\r', b'\rx')
    data = b'a\0b\xff\xfe\x01\x7f\r\n' + long + b'\r\n\0\r\n.\r\n'
    eq(body_of(srv, data), b'a\0b\xff\xfe\x01\x7f\n' + long + b'\n\0\n', 'message')


ZN = 700
TRICKY = (b'Received: x\r\nRECEIVED: y\r\nX: \0\xff\r\n\r\n..a\r\n.b\r\n.\rc\r\nd\r\r\ne\rf\r\n'
          b'\r\n.\r\r\ng\r\r\r\n. \r\n...\r\n' + b'z' * ZN + b'\r\n.\r\n')
TRICKY_OUT = (b'Received: x\nRECEIVED: y\nX: \0\xff\n\n.a\nb\n.\rc\nd\r\ne\rf\n\n.\r\ng\r\r\n \n..\n'
              + b'z' * ZN + b'\n')


@case
def test_one_write(srv):
    eq(body_of(srv, TRICKY), TRICKY_OUT, 'message')


@case
def test_byte_by_byte(srv):
    with start_data(srv) as s:
        head = TRICKY[:-(ZN + 12)]
        for i in range(len(head)):
            s.send(head[i:i + 1])
            if i % 4 == 0:
                time.sleep(0.0005)
        s.send(TRICKY[-(ZN + 12):-5])
        for c in (b'\r', b'\n', b'.', b'\r', b'\n'):
            time.sleep(0.002)
            s.send(c)
        queued(s.reply())
    eq(split_received(srv.stored(1)[0]['msg'])[1], TRICKY_OUT, 'message')


@case
def test_random_chunks(srv):
    rnd = random.Random(42)
    for round in range(3):
        srv.configure()
        with start_data(srv) as s:
            i = 0
            while i < len(TRICKY):
                n = rnd.randint(1, 9)
                s.send(TRICKY[i:i + n])
                i += n
                time.sleep(0.0003)
            queued(s.reply())
        eq(split_received(srv.stored(1)[0]['msg'])[1], TRICKY_OUT, 'message, round %d' % round)


@case
def test_pipelined_commands_after_final_dot(srv):
    with start_data(srv) as s:
        s.send(b'one\r\n.\r\nNOOP\r\nMAIL FROM:<b@x.test>\r\nRCPT TO:<v@example.test>\r\nDATA\r\n'
               b'two\r\n.\r\nRSET\r\nQUIT\r\n')
        p1 = queued(s.reply(), 'first message')
        eq(s.replies(4), [OK, OK, OK, GO], 'NOOP MAIL RCPT DATA')
        p2 = queued(s.reply(), 'second message')
        eq(s.reply(), b'250 flushed\r\n', 'RSET')
        s.closed_after(b'221 mx.test\r\n')
    m = srv.stored(2)
    eq([x['pid'] for x in m], [p1, p2], 'qp')
    eq(split_received(m[0]['msg'])[1], b'one\n', 'first message')
    eq(m[1]['env'], envelope('b@x.test', 'v@example.test'), 'second envelope')
    eq(split_received(m[1]['msg'])[1], b'two\n', 'second message')


@case
def test_end_marker_split_from_data_command(srv):
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        s.send(b'MAIL FROM:<a@x.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n.\r\nQUIT\r\n')
        eq(s.replies(3), [OK, OK, GO], 'MAIL RCPT DATA')
        queued(s.reply(), 'empty message')
        s.closed_after(b'221 mx.test\r\n')
    eq(split_received(srv.stored(1)[0]['msg'])[1], b'', 'message')


@case
def test_databytes_exact_limit(srv):
    srv.configure(control={'me': ME, 'databytes': '10\n'})
    # ".12345678\n" is 10 bytes after unstuffing, 12 on the wire
    eq(body_of(srv, b'..12345678\r\n.\r\n'), b'.12345678\n', 'message of exactly 10 bytes')


@case
def test_databytes_one_over(srv):
    srv.configure(control={'me': ME, 'databytes': '10\n'})
    with start_data(srv) as s:
        s.send(b'..123456789\r\n.\r\n')
        eq(s.reply(), TOOBIG, 'reply after the dot')
        s.expect('NOOP', OK, 'session goes on')
        s.expect('DATA', b'503 MAIL first (#5.5.1)\r\n', 'second DATA')
    srv.nothing_stored(1)


@case
def test_databytes_reads_to_final_dot(srv):
    srv.configure(control={'me': ME, 'databytes': '1000\n'})
    with start_data(srv) as s:
        s.send(b'x' * 100 + b'\r\n' + (b'y' * 998 + b'\r\n') * 1000 + b'.\r\nNOOP\r\n')
        eq(s.reply(10), TOOBIG, 'reply after the dot')
        eq(s.reply(), OK, 'NOOP pipelined after the dot')
    srv.nothing_stored(1)


@case
def test_databytes_env_overrides_control(srv):
    srv.configure(control={'me': ME, 'databytes': '5\n'}, env={'DATABYTES': '10'})
    eq(body_of(srv, b'123456789\r\n.\r\n'), b'123456789\n', 'message of 10 bytes')
    srv.configure(control={'me': ME, 'databytes': '5\n'}, env={'DATABYTES': '10'})
    r, _ = deliver(srv, b'1234567890\r\n.\r\n')
    eq(r, TOOBIG, 'message of 11 bytes')
    srv.nothing_stored(1)


@case
def test_databytes_env_zero_unlimited(srv):
    srv.configure(control={'me': ME, 'databytes': '5\n'}, env={'DATABYTES': '0'})
    eq(body_of(srv, b'x' * 100000 + b'\r\n.\r\n'), b'x' * 100000 + b'\n', 'message')


@case
def test_databytes_leading_digits(srv):
    srv.configure(control={'me': ME, 'databytes': '10abc\n'})
    r, _ = deliver(srv, b'1234567890\r\n.\r\n')
    eq(r, TOOBIG, 'databytes "10abc" is 10')
    srv.configure(control={'me': ME, 'databytes': 'abc\n'})
    eq(body_of(srv, b'x' * 1000 + b'\r\n.\r\n'), b'x' * 1000 + b'\n', 'databytes "abc": no limit')
    srv.configure(control={'me': ME, 'databytes': '5\n'}, env={'DATABYTES': 'junk'})
    eq(body_of(srv, b'x' * 1000 + b'\r\n.\r\n'), b'x' * 1000 + b'\n',
       'DATABYTES "junk" is 0: no limit')


def hops(n, line=b'Received: from a by b\r\n'):
    return line * n


@case
def test_hops_99_ok(srv):
    body = hops(99) + b'Subject: x\r\n\r\nbody\r\n'
    eq(body_of(srv, body + b'.\r\n'), body.replace(b'\r\n', b'\n'), 'message')


@case
def test_hops_100_rejected(srv):
    r, _ = deliver(srv, hops(100) + b'\r\nbody\r\n.\r\n')
    eq(r, HOPS, 'reply after the dot')
    srv.nothing_stored(1)


@case
def test_hops_delivered_to_counts(srv):
    r, _ = deliver(srv, hops(50) + hops(50, b'Delivered-To: x@y\r\n') + b'\r\n.\r\n')
    eq(r, HOPS, '50 Received + 50 Delivered-To')
    srv.nothing_stored(1)


@case
def test_hops_prefix_any_case(srv):
    body = (hops(30, b'RECEIVED: a\r\n') + hops(30, b'received\r\n') + hops(20, b'DeLiVeReD-to: x\r\n')
            + hops(19, b'ReceivedX y\r\n') + hops(1, b'delivered\r\n'))
    r, _ = deliver(srv, body + b'\r\n.\r\n')
    eq(r, HOPS, 'prefix match, any case, no colon needed')
    srv.nothing_stored(1)


@case
def test_hops_received_spf_counts(srv):
    r, _ = deliver(srv, hops(99) + b'Received-SPF: pass\r\n\r\n.\r\n')
    eq(r, HOPS, '99 Received + Received-SPF')


@case
def test_hops_x_received_and_others_do_not_count(srv):
    body = (hops(99) + b'X-Received: a\r\n Received: continuation\r\n\tDelivered-To: c\r\n'
            b'Receive: short\r\nDeliver: short\r\n.Received: dotted\r\n\r\n')
    r, stored = deliver(srv, body + b'.\r\n')
    queued(r)
    eq(stored, body.replace(b'\r\n', b'\n').replace(b'\n.Received', b'\nReceived'), 'message')


@case
def test_hops_counting_stops_at_end_of_header(srv):
    body = hops(99) + b'Subject: x\r\n\r\n' + hops(10) + hops(10, b'Delivered-To: z\r\n')
    r, stored = deliver(srv, body + b'.\r\n')
    queued(r)
    eq(stored, body.replace(b'\r\n', b'\n'), 'message')


@case
def test_hops_header_end_needs_crlf_line(srv):
    # a line with only a space does not end the header: the Received lines after it count
    r, _ = deliver(srv, hops(50) + b' \r\n' + hops(50) + b'\r\n.\r\n')
    eq(r, HOPS, 'a blank-looking line is not the end of the header')


@case
def test_hops_byte_by_byte(srv):
    with start_data(srv) as s:
        data = hops(99) + b'Receive\r\n' + b'Delivered-To: q\r\n\r\n.\r\n'
        for i in range(0, len(data), 3):
            s.send(data[i:i + 3])
            time.sleep(0.0002)
        eq(s.reply(), HOPS, '99 Received + Delivered-To sent 3 bytes at a time')
    srv.nothing_stored(1)


@case
def test_hops_win_over_databytes(srv):
    srv.configure(control={'me': ME, 'databytes': '100\n'})
    r, _ = deliver(srv, hops(100) + b'\r\n' + b'x' * 500 + b'\r\n.\r\n')
    eq(r, HOPS, 'both limits hit')
    srv.nothing_stored(1)


@case
def test_databytes_wins_over_qq_error(srv):
    srv.configure(control={'me': ME, 'databytes': '10\n'}, env={'QQ_EXIT': '71'})
    r, _ = deliver(srv, b'x' * 50 + b'\r\n.\r\n')
    eq(r, TOOBIG, 'databytes and a qmail-queue failure')
    srv.nothing_stored(1)


if __name__ == '__main__':
    sys.exit(run('data'))
