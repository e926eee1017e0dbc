#!/usr/bin/python3
"""Integration: the rules engine (rules.c) compiled by the real mxguard-rules from files in
the qmail home, under the real tcpserver: a three-level policy (mandatory global, user,
domain, global default), Obtuse lines, tag headers in the queued message, observe mode set
through a real ipsvd-cdb instruct cdb, DELAYREJECT=0 answers at each stage, tarpit and drop,
broken and unreadable rules answered 451, allow skipping policy checks but never rcpthosts,
and explain agreeing with the daemon on every case."""
import os
import shutil
import subprocess
import sys
import time
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
from mxtest import *  # noqa: F401,F403

RULES = os.path.join(MXG_BIN, 'mxguard-rules')
OK = b'250 ok\r\n'
BASE = {'me': ME, 'rcpthosts': 'example.test\nother.test\n'}

POLICY = '''# global rules
mandatory deny if from=*@evil.test "550 5.7.1 never from %F"
mandatory set SPAMREJECT=9
deny if from=*@defaultdeny.test
noto:ALL:*@obtuse.test:ALL:550 Obtuse says no to %T
tag "X-Policy: checked" if to=*@example.test
'''
USER = '''allow if from=*@defaultdeny.test
allow if from=*@evil.test
deny if from=*@bobhates.test "550 5.7.1 bob does not take mail from %F"
'''
DOMAIN = 'deny if from=*@domhates.test\n'


def tool_env(**kw):
    """the environment of a tool run by a test: the sanitizer's options pass through"""
    e = {'PATH': '/usr/bin:/bin'}
    for k in ('ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS'):
        if k in os.environ:
            e[k] = os.environ[k]
    e.setdefault('ASAN_OPTIONS', 'detect_leaks=0')
    e.update(kw)
    return e


def compile_rules(srv, rules=POLICY, files=None, control=None, env=None, expect_rc=0):
    ctl = dict(BASE)
    ctl.update(control or {})
    ctl['rules'] = rules
    srv.configure(control=ctl, env=env, files=files)
    p = subprocess.run([RULES, 'compile'], env=tool_env(QMAILHOME=srv.home),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    eq(p.returncode, expect_rc, 'mxguard-rules compile exit (%r)' % p.stdout)
    return p.stdout


def three_levels(srv):
    compile_rules(srv, files={'control/rules.d/bob@example.test': USER,
                              'control/rules.d/example.test': DOMAIN})


def rcpt_replies(srv, sender, rcpts, helo=None):
    out = []
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        if helo:
            s.cmd('HELO %s' % helo)
        eq(s.cmd('MAIL FROM:<%s>' % sender), OK, 'MAIL')
        for r in rcpts:
            out.append(s.cmd('RCPT TO:<%s>' % r))
        s.cmd('QUIT')
    return out


@case
def test_user_rule_blocks_a_sender_for_that_user_only(srv):
    three_levels(srv)
    r = rcpt_replies(srv, 'a@bobhates.test', ['bob@example.test', 'alice@example.test', 'bob@other.test'])
    eq(r, [b'550 5.7.1 bob does not take mail from a@bobhates.test\r\n', OK, OK], 'replies')
    rej = events(srv.log_lines(), 'reject')
    eq([e['reason'] for e in rej], [b'rule:control/rules.d/bob@example.test:3'], 'log names file:line')


@case
def test_mandatory_beats_user_allow_and_user_beats_default(srv):
    three_levels(srv)
    eq(rcpt_replies(srv, 'x@evil.test', ['bob@example.test', 'alice@other.test']),
       [b'550 5.7.1 never from x@evil.test\r\n'] * 2, 'mandatory deny for everyone')
    eq(rcpt_replies(srv, 'x@defaultdeny.test', ['bob@example.test', 'alice@example.test', 'c@other.test']),
       [OK, b'550 5.7.1 sorry, your mail is refused by policy\r\n',
        b'550 5.7.1 sorry, your mail is refused by policy\r\n'], 'user allow, default deny')


@case
def test_domain_rules_for_that_domain_and_extensions(srv):
    three_levels(srv)
    eq(rcpt_replies(srv, 'x@domhates.test', ['alice@example.test', 'alice@other.test']),
       [b'550 5.7.1 sorry, your mail is refused by policy\r\n', OK], 'domain rule')
    eq(rcpt_replies(srv, 'a@bobhates.test', ['bob-lists@example.test']),
       [b'550 5.7.1 bob does not take mail from a@bobhates.test\r\n'], 'user-ext falls back to user')


@case
def test_obtuse_line_in_the_same_file(srv):
    three_levels(srv)
    eq(rcpt_replies(srv, 'x@obtuse.test', ['carol@other.test']),
       [b'550 Obtuse says no to carol@other.test\r\n'], 'Obtuse noto with %T')


@case
def test_obtuse_deny_ends_the_session(srv):
    compile_rules(srv, 'deny:ALL:*@spammer.test:ALL:550 go away %I\n')
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        eq(s.cmd('MAIL FROM:<x@spammer.test>'), OK, 'MAIL')
        s.send('RCPT TO:<u@example.test>\r\n')
        s.closed_after(b'550 go away 127.0.0.1\r\n')


@case
def test_tag_header_and_delivery(srv):
    three_levels(srv)
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        queued(send_message(s, mail='<a@fine.test>', rcpts=['<bob@example.test>', '<c@other.test>']))
    m = srv.stored(1)[0]
    eq(m['env'], envelope('a@fine.test', 'bob@example.test', 'c@other.test'), 'envelope')
    received, rest = split_received(m['msg'])
    check(rest.startswith(b'X-Policy: checked\nSubject: t\n'), 'tag after Received: %r' % rest[:80])


@case
def test_tag_of_a_refused_recipient_is_not_added(srv):
    compile_rules(srv, 'tag "X-For-Refused: yes" if to=refused@example.test\nnoto if to=refused@example.test\n'
                       'tag "X-For-Kept: yes" if to=kept@example.test\n')
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        eq(s.cmd('MAIL FROM:<a@fine.test>'), OK, 'MAIL')
        eq(s.cmd('RCPT TO:<refused@example.test>'),
           b'550 5.7.1 sorry, mail to <refused@example.test> is refused by policy\r\n', 'noto')
        eq(s.cmd('RCPT TO:<kept@example.test>'), OK, 'kept')
        eq(s.cmd('DATA'), b'354 go ahead\r\n', 'DATA')
        s.send(b'Subject: t\r\n\r\nhi\r\n.\r\n')
        queued(s.reply())
    received, rest = split_received(srv.stored(1)[0]['msg'])
    check(rest.startswith(b'X-For-Kept: yes\nSubject: t\n'), 'only the kept recipient\'s tag: %r' % rest[:80])


@case
def test_allow_skips_policy_checks_never_rcpthosts(srv):
    compile_rules(srv, 'allow if to=vip@example.test\nallow if to=*@elsewhere.test\n',
                  control={'badmailfrom': 'bad@sender.test\n'})
    r = rcpt_replies(srv, 'bad@sender.test', ['vip@example.test', 'u@example.test', 'x@elsewhere.test'])
    eq(r, [OK, b'553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n',
           b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n"], 'replies')


def build_instruct(srv, text):
    peers = os.path.join(srv.dir, 'peers')
    shutil.rmtree(peers, ignore_errors=True)
    os.mkdir(peers)
    with open(os.path.join(peers, '127.0.0.1'), 'w') as f:
        f.write(text)
    os.chmod(os.path.join(peers, '127.0.0.1'), 0o644)
    cdb = os.path.join(srv.home, 'control/instruct.cdb')
    p = subprocess.run(['ipsvd-cdb', cdb, cdb + '.tmp', peers], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    check(p.returncode == 0, 'ipsvd-cdb: %r' % p.stdout)


@case
def test_observe_mode_through_instruct_counts_without_refusing(srv):
    three_levels(srv)
    build_instruct(srv, '+OBSERVE=1\n')
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        eq(s.cmd('MAIL FROM:<x@defaultdeny.test>'), OK, 'MAIL')
        eq(s.cmd('RCPT TO:<alice@example.test>'), OK, 'observed, not refused')
        eq(s.cmd('RCPT TO:<c@other.test>'), OK, 'observed, not refused')
        eq(s.cmd('RCPT TO:<u@elsewhere.test>'),
           b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n",
           'rcpthosts is never observed')
        s.cmd('QUIT')
    lines = srv.log_lines()
    obs = events(lines, 'observe')
    # the rules run before rcpthosts: the third recipient is observed too, then refused
    eq([(e['would'], e['reason']) for e in obs], [(b'550', b'rule:control/rules:4')] * 3, 'observe lines')
    end = events(lines, 'end')[0]
    eq(end['observed'], b'3', 'observed count')
    check(b'~rule:control/rules:4:3' in end['reasons'], 'reasons: %r' % end['reasons'])


@case
def test_observe_per_rule(srv):
    compile_rules(srv, 'observe deny if from=*@maybe.test\ndeny if from=*@sure.test\n')
    eq(rcpt_replies(srv, 'a@maybe.test', ['u@example.test']), [OK], 'per-rule observe')
    eq(len(events(srv.log_lines(), 'observe')), 1, 'one observe line')
    eq(rcpt_replies(srv, 'a@sure.test', ['u@example.test']),
       [b'550 5.7.1 sorry, your mail is refused by policy\r\n'], 'other rules still refuse')


@case
def test_observe_all_covers_other_policy_checks(srv):
    compile_rules(srv, '# nothing\n', control={'badmailfrom': 'bad@sender.test\n'}, env={'OBSERVE': '1'})
    eq(rcpt_replies(srv, 'bad@sender.test', ['u@example.test']), [OK], 'badmailfrom observed')
    obs = events(srv.log_lines(), 'observe')
    eq([(e['would'], e['reason']) for e in obs], [(b'553', b'badmailfrom')], 'observe line')


@case
def test_delayreject_off_answers_at_each_stage(srv):
    rules = ('deny if helo=*.badhelo.test "550 5.7.1 not that HELO"\n'
             'deny if from=*@badmail.test "550 5.7.1 not that sender"\n')
    compile_rules(srv, rules, env={'DELAYREJECT': '0'})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        eq(s.cmd('HELO x.badhelo.test'), b'550 5.7.1 not that HELO\r\n', 'HELO refused')
        eq(s.cmd('MAIL FROM:<a@fine.test>'), b'550 5.7.1 not that HELO\r\n', 'the HELO rule holds at MAIL')
        eq(s.cmd('HELO ok.test'), b'250 mx.test\r\n', 'another HELO')
        eq(s.cmd('MAIL FROM:<a@badmail.test>'), b'550 5.7.1 not that sender\r\n', 'MAIL refused')
        eq(s.cmd('RCPT TO:<u@example.test>'), b'503 MAIL first (#5.5.1)\r\n', 'no transaction')
        eq(s.cmd('MAIL FROM:<a@fine.test>'), OK, 'another sender')
        eq(s.cmd('RCPT TO:<u@example.test>'), OK, 'accepted')
    compile_rules(srv, rules)  # DELAYREJECT default: everything waits for RCPT
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        eq(s.cmd('HELO x.badhelo.test'), b'250 mx.test\r\n', 'HELO accepted')
        eq(s.cmd('MAIL FROM:<a@badmail.test>'), OK, 'MAIL accepted')
        eq(s.cmd('RCPT TO:<u@example.test>'), b'550 5.7.1 not that HELO\r\n', 'refused at RCPT')
    compile_rules(srv, 'deny if ip=127.0.0.0/8 "550 5.7.1 not from here"\n', env={'DELAYREJECT': '0'})
    with srv.session() as s:
        s.closed_after(b'554 5.7.1 not from here\r\n', what='connect refusal')


@case
def test_tarpit_and_drop(srv):
    compile_rules(srv, 'tarpit 1 if to=slow@example.test\ndeny drop if to=trap@example.test\n')
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        eq(s.cmd('MAIL FROM:<a@b.test>'), OK, 'MAIL')
        t = time.time()
        eq(s.cmd('RCPT TO:<slow@example.test>'), OK, 'tarpitted')
        took = time.time() - t
        check(0.9 <= took < 3, 'tarpit took %.2fs' % took)
        t = time.time()
        eq(s.cmd('RCPT TO:<u@example.test>'), OK, 'not tarpitted')
        check(time.time() - t < 0.5, 'no tarpit for others')
        s.send('RCPT TO:<trap@example.test>\r\n')
        s.closed_after(b'550 5.7.1 sorry, your mail is refused by policy\r\n')


@case
def test_broken_rule_set_answers_451_and_names_the_line(srv):
    out = compile_rules(srv, 'deny if from=*@x.test\ndeny if colour=red\n', expect_rc=1)
    check(b'control/rules:2: error: unknown fact' in out, 'compile names file:line: %r' % out)
    eq(rcpt_replies(srv, 'a@fine.test', ['u@example.test']),
       [b'451 4.3.0 unable to read the policy, try again later\r\n'], 'global broken: 451')
    errs = events(srv.log_lines(), 'error')
    eq([(e['reason'], e['rule']) for e in errs], [(b'rules_broken', b'control/rules:2')], 'log')
    compile_rules(srv, '# fine\n', files={'control/rules.d/broken.test': 'deny from=\n'}, expect_rc=1,
                  control={'rcpthosts': 'example.test\nbroken.test\n'})
    eq(rcpt_replies(srv, 'a@fine.test', ['u@broken.test', 'u@example.test']),
       [b'451 4.3.0 unable to read the policy, try again later\r\n', OK], 'domain broken: its recipients only')


@case
def test_unreadable_rules_cdb_answers_451(srv):
    srv.configure(control=dict(BASE, **{'rules.cdb': DIR}))
    eq(rcpt_replies(srv, 'a@fine.test', ['u@example.test']),
       [b'451 4.3.0 unable to read the policy, try again later\r\n'], '451')
    srv.configure(control=dict(BASE, **{'rules.cdb': ('garbage that is not a cdb', 0o644)}))
    eq(rcpt_replies(srv, 'a@fine.test', ['u@example.test']),
       [b'451 4.3.0 unable to read the policy, try again later\r\n'], '451 for a damaged cdb')


@case
def test_check_reports_errors_and_dead_rules(srv):
    srv.configure(control=dict(BASE, rules='deny\nallow if ip=10.0.0.0/8\ndeny if from=/(/\n'),
                  files={'control/rules.d/u@example.test': 'deny \"550 bad\x07text\"\n'})
    p = subprocess.run([RULES, 'check'], env=tool_env(QMAILHOME=srv.home), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    eq(p.returncode, 1, 'check exit')
    for want in (b'control/rules:2: warning: can never match', b'control/rules:3: error: missing )',
                 b'control/rules.d/u@example.test:1: error: control character in the line'):
        check(want in p.stdout, '%r not in %r' % (want, p.stdout))
    check(not os.path.exists(os.path.join(srv.control, 'rules.cdb')), 'check wrote nothing')


@case
def test_compile_ignores_symlinks_and_specials(srv):
    srv.configure(control=dict(BASE, rules='deny if from=*@x.test\n'))
    os.makedirs(os.path.join(srv.control, 'rules.d'))
    os.symlink('/etc/shadow', os.path.join(srv.control, 'rules.d', 'evil.test'))
    os.mkfifo(os.path.join(srv.control, 'rules.d', 'fifo.test'))
    p = subprocess.run([RULES, 'compile'], env=tool_env(QMAILHOME=srv.home), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=10)
    eq(p.returncode, 1, 'compile exit')
    check(b'evil.test' in p.stdout and b'fifo.test' in p.stdout, 'named: %r' % p.stdout)
    p = subprocess.run([RULES, 'show', 'Devil.test'], env=tool_env(QMAILHOME=srv.home),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    check(b'shadow' not in p.stdout and b'root' not in p.stdout, 'nothing read through the link')


@case
def test_country_from_a_real_mmdb(srv):
    db = os.path.join(srv.dir, 'geo.mmdb')
    if not os.path.exists(db):
        r = subprocess.run(['perl', os.path.join(MXG_SRC, 'tests', 'mkmmdb.pl'), db],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        eq(r.returncode, 0, 'mkmmdb.pl %r' % r.stderr[-300:])
    rules = 'deny if country=DE,CN "550 5.7.1 no mail from country %M"\n'
    compile_rules(srv, rules, control={'geoipdb': db + '\n'}, env={'TCPREMOTEIP': '192.0.2.7'})
    eq(rcpt_replies(srv, 'a@b.test', ['u@example.test']),
       [b'550 5.7.1 no mail from country de\r\n'], 'DE refused')
    compile_rules(srv, rules, control={'geoipdb': db + '\n'}, env={'TCPREMOTEIP': '198.51.100.7'})
    eq(rcpt_replies(srv, 'a@b.test', ['u@example.test']), [OK], 'US passes')
    compile_rules(srv, rules, control={'geoipdb': db + '\n'}, env={'TCPREMOTEIP': '2001:db8::7'})
    eq(rcpt_replies(srv, 'a@b.test', ['u@example.test']), [OK], 'JP passes (IPv6)')
    compile_rules(srv, rules, control={'geoipdb': '/nonexistent.mmdb\n'}, env={'TCPREMOTEIP': '192.0.2.7'})
    eq(rcpt_replies(srv, 'a@b.test', ['u@example.test']),
       [b'451 4.3.0 unable to read the policy, try again later\r\n'], 'broken GeoIP: 451, never a guess')


@case
def test_dynamic_ptr_with_the_shipped_list(srv):
    with open(os.path.join(MXG_SRC, 'control', 'dynamicptr')) as f:
        dyn = f.read()
    rules = 'deny if dynamic=yes "550 5.7.1 dynamic address %H, use your provider\'s relay"\n'
    compile_rules(srv, rules, control={'dynamicptr': dyn},
                  env={'TCPREMOTEHOST': 'dsl-1-2-3-4.dyn.example.net'})
    eq(rcpt_replies(srv, 'a@b.test', ['u@example.test']),
       [b"550 5.7.1 dynamic address dsl-1-2-3-4.dyn.example.net, use your provider's relay\r\n"], 'dynamic')
    compile_rules(srv, rules, control={'dynamicptr': dyn}, env={'TCPREMOTEHOST': 'mail.example.com'})
    eq(rcpt_replies(srv, 'a@b.test', ['u@example.test']), [OK], 'static name passes')


@case
def test_sender_tld_and_local_recipient(srv):
    rules = ('deny if fromtldvalid=no "550 5.1.8 no such top-level domain in %F"\n'
             'noto if tolocal=no from=*@partner.test\n')
    compile_rules(srv, rules, control={'tlds': 'com\nnet\ntest\n'},)
    eq(rcpt_replies(srv, 'a@b.invalidtld', ['u@example.test']),
       [b'550 5.1.8 no such top-level domain in a@b.invalidtld\r\n'], 'bad TLD')
    eq(rcpt_replies(srv, 'a@b.com', ['u@example.test']), [OK], 'good TLD')


@case
def test_settings_reach_greylisting_and_tarpit_per_recipient(srv):
    """a user's and a domain's rules switch greylisting and the qmail-ldap tarpit on for their
    recipients only (tarpit.c reads them through rules_get)"""
    compile_rules(srv, 'set GREYLISTDELAY=60\n',
                  files={'control/rules.d/grey@example.test': 'set GREYLIST=1\n',
                         'control/rules.d/other.test': 'set TARPITCOUNT=1 TARPITDELAY=1\n',
                         'state/.keep': ''})
    with srv.session() as s:
        eq(s.reply(), banner(), 'banner')
        eq(s.cmd('MAIL FROM:<a@fine.test>'), OK, 'MAIL')
        eq(s.cmd('RCPT TO:<grey@example.test>'), b'451 4.7.1 greylisted, try again in 60 seconds\r\n',
           'greylisted by its user rule')
        eq(s.cmd('RCPT TO:<plain@example.test>'), OK, 'no greylisting for others')
        t = time.time()
        eq(s.cmd('RCPT TO:<x@other.test>'), OK, 'other.test')
        took = time.time() - t
        check(0.9 <= took < 3, 'the domain rule tarpits other.test recipients: %.2fs' % took)
        s.cmd('QUIT')


EXPLAIN_CASES = [
    ('127.0.0.1', 'h.test', 'a@bobhates.test', ['bob@example.test', 'alice@example.test', 'z@other.test']),
    ('127.0.0.1', 'h.test', 'x@evil.test', ['bob@example.test']),
    ('127.0.0.1', 'h.test', 'x@defaultdeny.test', ['bob@example.test', 'alice@example.test']),
    ('127.0.0.1', 'h.test', 'x@obtuse.test', ['bob@example.test', 'q@other.test']),
    ('127.0.0.1', 'h.test', 'x@domhates.test', ['alice@example.test', 'q@other.test', 'u@nowhere.test']),
    ('127.0.0.1', 'h.test', '', ['bob@example.test']),
]


@case
def test_explain_agrees_with_the_daemon(srv):
    three_levels(srv)
    for ip, helo, sender, rcpts in EXPLAIN_CASES:
        daemon = [r.decode().strip() for r in rcpt_replies(srv, sender, rcpts, helo=helo)]
        p = subprocess.run([RULES, 'explain', '--offline', '--smtpd', SMTPD, '--ip', ip, '--helo', helo,
                            '--from', sender] + sum([['--rcpt', r] for r in rcpts], []),
                           env=tool_env(QMAILHOME=srv.home, QMAILQUEUE=RECORDER, QQ_DIR=srv.qq),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        out = p.stdout.decode('latin-1')
        said = [l[4:] for l in out.splitlines() if l.startswith('  < ') and
                l[4:7] in ('250', '550', '553', '451', '554')]
        rc = [l for l in said if not l.startswith('250 mx.test') and l not in ('250 ok',)]
        # the RCPT replies are the last len(rcpts) non-banner replies before QUIT
        rcpt_said = [l for l in said][-len(rcpts):]
        eq(rcpt_said, daemon, 'explain vs daemon for %s -> %s' % (sender, rcpts))
        check('what=match' in out or 'what=nomatch' in out, 'explain shows rule steps: %r' % out[:300])
        del rc


@case
def test_explain_with_auth(srv):
    compile_rules(srv, 'allow if auth=boss\ndeny if auth=* "550 5.7.1 not the boss"\n')
    for user, want in (('worker', '< 550 5.7.1 not the boss'), ('boss', '< 250 ok')):
        p = subprocess.run([RULES, 'explain', '--offline', '--smtpd', SMTPD, '--ip', '192.0.2.1', '--auth', user,
                            '--from', 'a@b.test', '--rcpt', 'x@example.test'],
                           env=tool_env(QMAILHOME=srv.home),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        out = p.stdout.decode('latin-1')
        said = [l.strip() for l in out.splitlines() if l.startswith('  < ')]
        check('< 235 ok, go ahead (#2.0.0)' in said and said[-2] == want,
              'explain --auth %s: %r' % (user, out[-500:]))


@case
def test_explain_from_a_log_line(srv):
    three_levels(srv)
    rcpt_replies(srv, 'a@bobhates.test', ['bob@example.test'])
    line = [l for l in srv.log_lines() if b'event=reject' in l][0]
    p = subprocess.run([RULES, 'explain', '--offline', '--smtpd', SMTPD, '--log', line.decode('latin-1')],
                       env=tool_env(QMAILHOME=srv.home),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    out = p.stdout.decode('latin-1')
    check('< 550 5.7.1 bob does not take mail from a@bobhates.test' in out, 'explain: %r' % out[-800:])
    eq(p.returncode, 1, 'exit 1: a recipient refused')


if __name__ == '__main__':
    sys.exit(run('rules'))
