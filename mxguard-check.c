/* mxguard-check - reads what mxguard-smtpd reads and reports each mistake on one line,
 * "FILE: error|warning|note: TEXT"; exit 0 (nothing), 1 (warnings), 2 (errors: the daemon
 * would answer 421, relay openly, or fail TLS), 100 (usage). Files named on the command line
 * (tcprules cdbs, instruct cdbs, run scripts) are searched for setting names of other qmail
 * patches and filters that mxguard does not implement, and run scripts for memory limits too
 * small for TLS. "--client IP [--host NAME] [--rules CDB]" prints the settings one client gets,
 * with where each value comes from. Started as root it becomes the smtpd user (-u, qmaild).
 *
 * The settings mxguard implements are the table settings[] below: one line per name that the
 * source reads (getenv, rules_get, dnsbl.c's envname[]); tests/integration/test_check.py fails
 * when a name read in the source is missing here. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>
#include "control.h"
#include "dnsbl.h"
#include "instruct.h"
#include "tls.h"
#include "valsql.h"
#include "version.h"

#define VALUSER_SQLCONF_ "control/vpopmail.mysql"
#define TLS_MEM_MIN 16000000UL  /* bytes: measured need of a STARTTLS session, with margin */
#define CERT_WARN_DAYS 30

/* ---- the one table of settings mxguard implements */
struct setting {
  const char *name;
  const char *control;  /* control file read when the setting is not in the environment */
  const char *def;      /* the default, as text */
  const char *what;
};
static const struct setting settings[] = {
  {"RELAYCLIENT", 0, "unset", "relaying allowed; its value is appended to recipients"},
  {"DATABYTES", "control/databytes", "0 (no limit)", "message size limit"},
  {"QMAILQUEUE", 0, "bin/qmail-queue", "the queue program"},
  {"QMAILHOME", 0, "conf-qmail", "the qmail home"},
  {"INSTRUCTCDB", 0, INSTRUCT_DEFAULT, "per-client instruct cdb (empty: none)"},
  {"LOGLEVEL", 0, "2", "0 nothing .. 4 every command"},
  {"TCPREMOTEIP", 0, "unknown", "from tcpserver/tcpsvd"},
  {"TCPREMOTEHOST", 0, "unknown", "from tcpserver/tcpsvd"},
  {"TCPREMOTEINFO", 0, "unset", "from tcpserver/tcpsvd"},
  {"TCPLOCALHOST", 0, "TCPLOCALIP", "from tcpserver/tcpsvd"},
  {"TCPLOCALIP", 0, "unknown", "from tcpserver/tcpsvd"},
  {"SMTPS", 0, "unset", "implicit TLS before the banner"},
  {"DISABLETLS", 0, "unset", "1: no STARTTLS"},
  {"FORCETLS", 0, "unset", "AUTH only inside TLS"},
  {"TLSCIPHERS", "control/tlsserverciphers", "DEFAULT", "OpenSSL cipher list"},
  {"SMTPAUTH", 0, "unset", "AUTH methods (checkpassword argv form without host name)"},
  {"AUTHREQUIRED", 0, "unset", "MAIL needs AUTH"},
  {"AUTHTIMEOUT", 0, "30", "seconds for checkpassword"},
  {"AUTHDELAY", 0, "5", "seconds before a failed AUTH's reply"},
  {"AUTHFAILMAX", 0, "5", "failed AUTHs before the session closes"},
  {"RCPTCHECK", 0, "1", "recipient check (0 off)"},
  {"CHKUSER_START", 0, "unset", "chkuser's switch (ALWAYS, DOMAIN)"},
  {"RCPTCHECKRELAY", 0, "unset", "check recipients of relay clients too"},
  {"BADRCPTSOFT", 0, "3", "unknown recipients before replies are delayed"},
  {"BADRCPTDELAY", 0, "2000ms", "delay per reply after BADRCPTSOFT (s or NNNms)"},
  {"BADRCPTLIMIT", 0, "10", "unknown recipients before 421"},
  {"CHKUSER_WRONGRCPTLIMIT", 0, "10", "chkuser's name for BADRCPTLIMIT"},
  {"RBLONLYHEADER", 0, "unset", "DNSBL: tag with X-RBL instead of refusing"},
  {"DNSBLTAG", 0, "unset", "same as RBLONLYHEADER"},
  {"DNSBLGREETING", 0, "unset", "DNSBL verdict before the banner"},
  {"RBLSMTPD", 0, "unset", "rblsmtpd's verdict"},
  {"DNSBLSKIP", 0, "unset", "no DNSBL lookups"},
  {"RHSBLSKIP", 0, "unset", "no RHSBL lookups"},
  {"REQUIREFCRDNS", 0, "unset", "forward-confirmed rDNS required"},
  {"REQUIREPTR", "control/requireptr", "0", "rDNS required (fcrdns: confirmed)"},
  {"RETURNMXCHECK", "control/returnmxcheck", "0", "sender domain must resolve"},
  {"DNSBLTHRESHOLD", "control/dnsblthreshold", "1", "DNSBL score that refuses"},
  {"DNSBUDGET", "control/dnsbudget", "5000", "ms the DNS answers may take in all"},
  {"DNSSERVERS", "control/dnsservers", "/etc/resolv.conf", "DNS servers ip[:port],..."},
  {"DNSBLFAILCLOSED", "control/dnsblfailclosed", "0", "DNSBL lookup failure defers"},
  /* the rules engine (rules.c) */
  {"OBSERVE", 0, "unset", "1: policy refusals are logged, not sent"},
  {"DELAYREJECT", 0, "1", "0: connect/HELO/MAIL rule refusals at their stage"},
  {"MXG_TRACE", 0, "unset", "log every check and rule (mxguard-rules explain)"},
  {"MXG_OFFLINE", 0, "unset", "explain --offline: no DNS checks"},
  {"MXG_COUNTRY", 0, "unset", "explain --country: the client's country"},
  /* the qmail-ldap and sagredo switches (switches.c) */
  {"550GREETING", 0, "unset", "qmail-ldap: 554 instead of the banner"},
  {"421GREETING", 0, "unset", "qmail-ldap: 421 instead of the banner"},
  {"SMTP550DISCONNECT", 0, "unset", "qmail-ldap: close after a refusal"},
  {"SANITYCHECK", 0, "unset", "qmail-ldap: sender syntax at MAIL"},
  {"BLOCKRELAYPROBE", 0, "unset", "qmail-ldap: @ % ! before the last @ refused"},
  {"NOBOUNCE", 0, "unset", "qmail-ldap: null sender refused"},
  {"SENDERCHECK", 0, "unset", "qmail-ldap: a local sender must exist (LOOSE, STRICT)"},
  {"LDAPSOFTOK", 0, "unset", "qmail-ldap: a lookup error passes"},
  {"QMAILLDAP", 0, "unset", "qmail-ldap's one-recipient bounce rule"},
  {"QREGEX", 0, "unset", "sagredo: badmailfrom/badrcptto/badhelo as regexes"},
  {"LOGREGEX", 0, "unset", "sagredo: log the matching regex"},
  {"DISABLE_BADMAILFROM", 0, "unset", "sagredo: no badmailfrom"},
  {"REJECTNULLSENDERS", "control/rejectnullsenders", "unset", "sagredo: 421 for the null sender"},
  {"BRTLIMIT", "control/brtlimit", "unset", "sagredo: bad recipients before 421"},
  {"RBL", 0, "unset", "qmail-ldap: control/rbllist"},
  {"DNSBLLIST", "control/dnsbllist", "unset", "sagredo: DNSBL list file"},
  /* qmail-ldap sites (valldap.c, auth.c) */
  {"AUTHPREPEND", 0, "unset", "qmail-ldap: text before the AUTH user in Received"},
  {"FORCEAUTHMAILFROM", 0, "unset", "sagredo: an authenticated sender sends as itself"},
  /* tarpits, limits, rates, greylisting (tarpit.c, store.c) */
  {"TARPITCOUNT", 0, "0 (off)", "qmail-ldap: recipients before the tarpit"},
  {"TARPITDELAY", 0, "5", "qmail-ldap: seconds per tarpitted recipient (N, M, H too)"},
  {"MAXRCPTCOUNT", 0, "0 (off)", "qmail-ldap: recipients per message, then 553"},
  {"DISABLE_MAXRCPT", 0, "unset", "sagredo: control/maxrcpt off"},
  {"MAXERRORS", 0, "0 (off)", "refusals before 421"},
  {"GREETDELAY", 0, "0", "seconds before the banner (also _NOPTR, _DYNAMIC)"},
  {"GREETDELAY_NOPTR", 0, "GREETDELAY", "greeting delay for clients without PTR"},
  {"GREETDELAY_DYNAMIC", 0, "GREETDELAY", "greeting delay for dynamic-looking PTRs"},
  {"DROPRUSHGREET", 0, "1 with a delay", "refuse early talkers (0: log only)"},
  {"THROTTLE", 0, "0 (off)", "inbound bytes per second"},
  {"MAXSESSIONTIME", 0, "0 (off)", "seconds a session may last, then 421"},
  {"CONNRATE", 0, "unset", "connections per client and window"},
  {"CONNMAX", 0, "unset", "concurrent sessions per client"},
  {"MSGRATE", 0, "unset", "messages per client and window"},
  {"MSGRATE_SENDER", 0, "unset", "messages per sender and window"},
  {"MSGRATE_AUTH", 0, "unset", "messages per AUTH user and window"},
  {"RCPTRATE", 0, "unset", "recipients per client and window"},
  {"RCPTRATE_SENDER", 0, "unset", "recipients per sender and window"},
  {"RCPTRATE_AUTH", 0, "unset", "recipients per AUTH user and window"},
  {"RCPTRATE_DOMAIN", 0, "unset", "recipients per domain and window"},
  {"AUTHFAILRATE", 0, "unset", "failed AUTH per client and window"},
  {"BADRCPTRATE", 0, "unset", "unknown recipients per client and window"},
  {"LIMITEXEMPT", 0, "unset", "1: no limits for this client"},
  {"RATEIPV6PREFIX", 0, "64", "IPv6 prefix counted as one client"},
  {"TARPITBUDGET", "control/tarpitbudget", "unset", "sessions sleeping in tarpits at once, site-wide"},
  {"GREYLIST", 0, "unset", "greylisting on"},
  {"GREYLISTDELAY", 0, "300", "seconds a new triplet waits"},
  {"GREYLISTRETRY", 0, "172800", "seconds a triplet may retry"},
  {"GREYLISTEXPIRE", 0, "3024000", "seconds a passed triplet is kept"},
  {"GREYLISTAUTOALLOW", 0, "5", "passes before the client is allowed"},
  {"GREYLISTHEADER", 0, "unset", "X-Greylist on a first pass"},
  /* content checks (content.c) */
  {"REJECTEXEC", 0, "unset", "qmail-ldap: refuse Windows executables (control/signatures)"},
  {"ATTACHBLOCK", 0, "unset", "refuse attachment names (control/badattach)"},
  {"ATTACHTYPES", 0, "unset", "refuse declared attachment types"},
  {"CHARSETBLOCK", 0, "unset", "refuse charsets"},
  {"HEADERBLOCK", 0, "unset", "refuse header regexes (control/headerblock)"},
  {"CLAMD", 0, "unset", "clamd socket: virus scanning"},
  {"CLAMDMAXSIZE", 0, "clamd's", "bytes given to clamd"},
  {"CLAMDTIMEOUT", 0, "30", "seconds clamd may take"},
  {"CLAMDFAILOPEN", 0, "unset", "clamd trouble lets mail through"},
  {"SPAMD", 0, "unset", "spamd address: spam scanning"},
  {"SPAMREJECT", 0, "unset", "score that refuses"},
  {"SPAMTAG", 0, "unset", "score that tags"},
  {"SPAMMAXSIZE", 0, "512000", "larger messages are not scanned"},
  {"SPAMDTIMEOUT", 0, "30", "seconds spamd may take"},
  {"SPAMDFAILOPEN", 0, "unset", "spamd trouble lets mail through"},
  {"SPAMDUSER", 0, "unset", "spamd user (rcpt: the recipient)"},
  {"CONTENTCLASS", 0, "unset", "one content policy per transaction"},
  /* deadlines (io.c) */
  {"DATAGRACE", 0, "300", "seconds of DATA before DATAMINRATE applies"},
  {"DATAMINRATE", 0, "100", "minimum average DATA bytes per second"},
  /* mxguard-front, the optional listener in place of tcpserver */
  {"FRONTDNSBL", "control/frontdnsbl", "unset", "mxguard-front: zones refused before the greeting"},
  {"FRONTDNSBUDGET", 0, "2000", "mxguard-front: ms its DNS answers may take"},
  {"FRONTREFUSEWAIT", 0, "10", "mxguard-front: seconds a refused client may stay"},
  {"UID", 0, "unset", "mxguard-front -U: the user to become"},
  {"GID", 0, "unset", "mxguard-front -U: the group to become"},
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

/* names other qmail patches and filters read, which mxguard does not implement (no name is
 * in both this list and settings[]; switches.c keeps the smtpd's own list for its log) */
struct foreign { const char *name; const char *origin; };
static const struct foreign foreign[] = {
  {"NOLOCAL", "qmail-ldap"}, {"NOPBS", "qmail-ldap"}, {"TLSREQUIRED", "qmail-ldap"},
  {"ALLOW_INSECURE_AUTH", "jms1"}, {"REQUIRE_AUTH", "jms1"}, {"ALLOW_CRAM", "jms1"},
  {"SMTPD_GREETDELAY", "sagredo"}, {"DROP_PRE_GREET", "sagredo/jms1"}, {"NOBADHELO", "sagredo"},
  {"VALIDRCPTTO", "sagredo"}, {"MOREVALIDRCPTTO_CDB", "sagredo"},
  {"RCPTCHECKRELAYCLIENT", "sagredo"}, {"SPFBEHAVIOR", "sagredo"}, {"ALLOW_BARELF", "sagredo"},
  {"ENABLE_SPP", "sagredo qmail-spp"}, {"NOSPP", "qmail-spp"}, {"SPPCONFFILE", "qmail-spp"},
  {"NOTARPIT", "tarpit patch"}, {"DKIMSIGN", "qmail-dkim"}, {"DKIMVERIFY", "qmail-dkim"},
  {"DKIMQUEUE", "qmail-dkim"}, {"CHKUSER_RCPTLIMIT", "chkuser"}, {"CHKUSER_MBXQUOTA", "chkuser"},
  {"CHKUSER_DISABLE_VARIABLE", "chkuser"}, {"CHKUSER_SENDER_NOCHECK_VARIABLE", "chkuser"},
  {"CHKUSER_SENDER_FORMAT_NOCHECK", "chkuser"}, {"CHKUSER_SENDER_MX_NOCHECK", "chkuser"},
  {"CHKUSER_RCPT_FORMAT_NOCHECK", "chkuser"}, {"CHKUSER_RCPT_MX_NOCHECK", "chkuser"},
  {"CHKUSER_IDENTIFY", "chkuser"}, {"CHKUSER_DOUBLEBOUNCE", "chkuser"},
  {"SIMSCAN_DEBUG", "simscan"},
};
/* set by tcpserver/tcpsvd themselves or harmless in a run script */
static const char *const ucspi[] = {"PROTO", "TCPLOCALPORT", "TCPREMOTEPORT", "TCPCONCURRENCY",
  "PATH", "HOME", "IP", "PORT", "MAXSMTPD", "SOFTLIMIT", "QMAILDUID", "NOFILESGID", "LOCAL",
  "SMTPDUSER", "SMTPDGROUP", "LOCALNAME", "TCPRULES", "PEERS", "CONCURRENCY", 0};

static const struct setting *implemented(const char *n, size_t len)
{
  size_t i;
  for (i = 0; i < NSETTINGS; ++i)
    if (strlen(settings[i].name) == len && !strncmp(settings[i].name, n, len)) return &settings[i];
  return 0;
}

/* ---- findings */
static int worst, quiet;
static void finding(int level, const char *file, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
#include <stdarg.h>
static void finding(int level, const char *file, const char *fmt, ...)
{
  va_list ap;
  if (level > worst) worst = level;
  if (quiet && level < 2) return;
  printf("%s: %s: ", file, level == 2 ? "error" : level == 1 ? "warning" : "note");
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
}
enum { NOTE = 0, WARN = 1, ERR = 2 };

/* a setting name found in FILE: foreign, unknown or fine */
static void name_found(const char *file, const char *n, size_t len, int loud_unknown)
{
  size_t i;
  if (!len || implemented(n, len)) return;
  for (i = 0; i < sizeof foreign / sizeof foreign[0]; ++i)
    if (strlen(foreign[i].name) == len && !strncmp(foreign[i].name, n, len)) {
      finding(WARN, file, "%.*s (%s) is not implemented by mxguard: it has no effect; "
              "see mxguard-migrate(7)", (int)len, n, foreign[i].origin);
      return;
    }
  for (i = 0; ucspi[i]; ++i)
    if (strlen(ucspi[i]) == len && !strncmp(ucspi[i], n, len)) return;
  if (loud_unknown) finding(NOTE, file, "%.*s is not a setting mxguard reads", (int)len, n);
}

/* ---- cdb files: checked whole, then walked */
static uint32_t u32(const unsigned char *p)
{
  return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint32_t cdbhash(const unsigned char *k, size_t len)
{
  uint32_t h = 5381;
  while (len--) h = ((h << 5) + h) ^ *k++;
  return h;
}

struct map { unsigned char *p; size_t len; };

/* mapcdb - 1 mapped and sound, 0 absent, -1 unreadable (reported), -2 broken (reported) */
static int mapcdb(const char *fn, struct map *m)
{
  struct stat st;
  uint32_t i, end = 0xffffffff;
  int fd = open(fn, O_RDONLY);
  m->p = 0; m->len = 0;
  if (fd == -1) {
    if (errno == ENOENT) return 0;
    finding(ERR, fn, "unreadable (%s): every session would get 421", strerror(errno));
    return -1;
  }
  if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
    close(fd);
    finding(ERR, fn, "not a regular file");
    return -1;
  }
  if (st.st_size < 2048) { close(fd); finding(ERR, fn, "broken cdb: shorter than its header"); return -2; }
  m->len = (size_t)st.st_size;
  m->p = mmap(0, m->len, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (m->p == MAP_FAILED) { m->p = 0; finding(ERR, fn, "cannot map (%s)", strerror(errno)); return -1; }
  for (i = 0; i < 256; ++i) {
    uint32_t pos = u32(m->p + i * 8), n = u32(m->p + i * 8 + 4);
    if (pos < 2048 || pos > m->len || (uint64_t)n * 8 > m->len - pos) {
      finding(ERR, fn, "broken cdb: hash table %u points outside the file", i);
      return -2;
    }
    if (pos < end) end = pos;
  }
  for (i = 2048; i < end; ) {
    uint32_t kl, dl;
    if (end - i < 8) { finding(ERR, fn, "broken cdb: record header at %u cut", i); return -2; }
    kl = u32(m->p + i); dl = u32(m->p + i + 4);
    if ((uint64_t)kl + dl > end - i - 8) { finding(ERR, fn, "broken cdb: record at %u overruns", i); return -2; }
    i += 8 + kl + dl;
  }
  return 1;
}

/* walk - each record of a sound map */
static void walk(const struct map *m, void (*fn)(const char *file, const unsigned char *k, uint32_t kl,
                                                 const unsigned char *d, uint32_t dl), const char *file)
{
  uint32_t i, end = 0xffffffff, j;
  for (j = 0; j < 256; ++j)
    if (u32(m->p + j * 8) < end) end = u32(m->p + j * 8);
  for (i = 2048; i < end; ) {
    uint32_t kl = u32(m->p + i), dl = u32(m->p + i + 4);
    fn(file, m->p + i + 8, kl, m->p + i + 8 + kl, dl);
    i += 8 + kl + dl;
  }
}

/* cdbfind - the first record for key: 1 (with d and dl set) or 0 */
static int cdbfind(const struct map *m, const char *key, size_t kl, const unsigned char **d, uint32_t *dl)
{
  uint32_t h = cdbhash((const unsigned char *)key, kl);
  uint32_t pos = u32(m->p + (h & 255) * 8), n = u32(m->p + (h & 255) * 8 + 4), s, k;
  if (!n) return 0;
  for (k = 0, s = (h >> 8) % n; k < n; ++k, s = (s + 1) % n) {
    uint32_t hh = u32(m->p + pos + s * 8), rp = u32(m->p + pos + s * 8 + 4);
    if (!rp) return 0;
    if (hh != h || rp > m->len - 8) continue;
    if (u32(m->p + rp) != kl || (uint64_t)rp + 8 + kl + u32(m->p + rp + 4) > m->len) continue;
    if (memcmp(m->p + rp + 8, key, kl)) continue;
    *dl = u32(m->p + rp + 4);
    *d = m->p + rp + 8 + kl;
    return 1;
  }
  return 0;
}

/* one record of a rules cdb: instruct (value ends in I/D/X) or tcprules (NUL-ended items) */
static void rules_record(const char *file, const unsigned char *k, uint32_t kl,
                         const unsigned char *d, uint32_t dl)
{
  uint32_t i = 0, end = dl;
  (void)k; (void)kl;
  if (dl && (d[dl - 1] == 'I' || d[dl - 1] == 'D' || d[dl - 1] == 'X')) {
    if (d[dl - 1] != 'I') return;
    end = dl - 1;
  } else if (dl && d[dl - 1] != 0) {
    finding(ERR, file, "entry %.*s: neither an instruct (I/D/X) nor a tcprules value", (int)kl, k);
    return;
  }
  while (i < end) {
    const unsigned char *l = d + i;
    uint32_t n = 0;
    while (i + n < end && l[n]) ++n;
    if (n > 1 && l[0] == '+') {
      uint32_t e = 1;
      while (e < n && l[e] != '=') ++e;
      name_found(file, (const char *)l + 1, e - 1, 1);
    }
    i += n + 1;
  }
}

static void check_rules_cdb(const char *fn)
{
  struct map m;
  if (mapcdb(fn, &m) == 1) walk(&m, rules_record, fn);
  if (m.p) munmap(m.p, m.len);
}

/* ---- control files */
static int readable_line(const char *fn, stralloc *sa)
{
  int r = control_readline(sa, fn);
  if (r == -1) finding(ERR, fn, "unreadable (%s): every session would get 421", strerror(errno));
  return r;
}

static void number_file(const char *fn, int neg)
{
  static stralloc sa;
  size_t used, off;
  if (readable_line(fn, &sa) != 1 || !stralloc_0(&sa)) return;
  off = neg && sa.s[0] == '-';
  control_scanulong(sa.s + off, &used);
  if (!used || sa.s[off + used])
    finding(WARN, fn, "\"%s\" is not a number: the default is used", sa.s);
}

static void list_file(const char *fn, stralloc *sa)
{
  int r = control_readfile(sa, fn);
  if (r == -1) finding(ERR, fn, "unreadable (%s): every session would get 421", strerror(errno));
  if (r != 1) sa->len = 0;
}

static void zones_file(const char *fn)
{
  static stralloc sa;
  size_t i;
  unsigned line = 0;
  list_file(fn, &sa);
  for (i = 0; i < sa.len; i += strlen(sa.s + i) + 1) {
    struct dnsbl_zone z;
    ++line;
    memset(&z, 0, sizeof z);
    if (dnsbl_parse_zone(sa.s + i, &z) == -1)
      finding(ERR, fn, "entry %u \"%s\": not a zone[=filter][*weight] line: it is skipped", line, sa.s + i);
    free(z.name);
  }
}

/* ---- certificates, through the openssl command */
static int run(char *const argv[], char *out, size_t outsize)
{
  int pfd[2], st;
  size_t got = 0;
  ssize_t r;
  pid_t pid;
  if (pipe(pfd) == -1) return -1;
  if ((pid = fork()) == -1) return -1;
  if (!pid) {
    int nul = open("/dev/null", O_RDWR);
    dup2(pfd[1], 1); dup2(nul, 2); dup2(nul, 0);
    close(pfd[0]); close(pfd[1]);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(pfd[1]);
  while ((r = read(pfd[0], out + got, got + 1 < outsize ? outsize - got - 1 : 0)) > 0) got += (size_t)r;
  if (outsize) out[got] = 0;
  close(pfd[0]);
  if (waitpid(pid, &st, 0) == -1) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void check_cert(const char *fn)
{
  static char a[8192], b[8192];
  char days[32];
  struct stat st;
  if (stat(fn, &st) == -1) {
    if (errno != ENOENT) finding(ERR, fn, "cannot stat (%s)", strerror(errno));
    return;
  }
  if (!S_ISREG(st.st_mode)) { finding(ERR, fn, "not a regular file: STARTTLS would fail"); return; }
  if (access(fn, R_OK) == -1) { finding(ERR, fn, "unreadable (%s): STARTTLS would fail", strerror(errno)); return; }
  {
    char *x509[] = {"openssl", "x509", "-noout", "-pubkey", "-in", (char *)fn, 0};
    char *pkey[] = {"openssl", "pkey", "-pubout", "-in", (char *)fn, 0};
    int r1 = run(x509, a, sizeof a), r2;
    if (r1 == 127) { finding(WARN, fn, "the openssl command is missing: certificate not checked"); return; }
    if (r1) { finding(ERR, fn, "no certificate in it: STARTTLS would fail"); return; }
    r2 = run(pkey, b, sizeof b);
    if (r2) { finding(ERR, fn, "no private key in it: STARTTLS would fail"); return; }
    if (strcmp(a, b)) { finding(ERR, fn, "the private key does not match the certificate"); return; }
  }
  {
    char *now[] = {"openssl", "x509", "-noout", "-checkend", "0", "-in", (char *)fn, 0};
    char *soon[] = {"openssl", "x509", "-noout", "-checkend", days, "-in", (char *)fn, 0};
    snprintf(days, sizeof days, "%d", CERT_WARN_DAYS * 86400);
    if (run(now, a, sizeof a)) { finding(ERR, fn, "the certificate has expired"); return; }
    if (run(soon, a, sizeof a))
      finding(WARN, fn, "the certificate expires within %d days", CERT_WARN_DAYS);
  }
}

/* ---- DNS servers: one NS query for the root to each, 2 s */
static void check_dns_server(const char *file, const char *spec)
{
  static const unsigned char q[17] = {0x4d, 0x58, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1};
  char host[64];
  unsigned port = 53;
  struct sockaddr_in sin;
  struct pollfd p;
  unsigned char ans[512];
  const char *colon = strchr(spec, ':');
  size_t hl = colon ? (size_t)(colon - spec) : strlen(spec);
  int fd, i;
  if (hl >= sizeof host) return;
  memcpy(host, spec, hl); host[hl] = 0;
  if (colon) port = (unsigned)atoi(colon + 1);
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
    if (!strchr(host, ':')) finding(ERR, file, "DNS server \"%s\" is not an address", spec);
    return;  /* IPv6 servers are not probed */
  }
  if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) == -1) return;
  for (i = 0; i < 2; ++i) {
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == -1 || send(fd, q, sizeof q, 0) == -1) break;
    p.fd = fd; p.events = POLLIN;
    if (poll(&p, 1, 1000) == 1) {
      ssize_t r = recv(fd, ans, sizeof ans, 0);
      if (r >= 12 && ans[0] == q[0] && ans[1] == q[1]) { close(fd); return; }
      if (r == -1) break;  /* refused */
    }
  }
  close(fd);
  finding(WARN, file, "DNS server %s does not answer: DNS checks will defer or be skipped", spec);
}

static void check_dns(void)
{
  static stralloc sa;
  const char *x = getenv("DNSSERVERS"), *file = "DNSSERVERS";
  char buf[4096];
  if (!x) {
    int r = control_readfile(&sa, "control/dnsservers");
    file = "control/dnsservers";
    if (r == 1 && sa.len) {
      size_t i;
      for (i = 0; i < sa.len; i += strlen(sa.s + i) + 1) check_dns_server(file, sa.s + i);
      return;
    }
    if (r == -1) return;  /* reported already */
    {
      FILE *f = fopen("/etc/resolv.conf", "r");
      char line[256];
      if (!f) return;
      while (fgets(line, sizeof line, f)) {
        char addr[128];
        if (sscanf(line, "nameserver %127s", addr) == 1) check_dns_server("/etc/resolv.conf", addr);
      }
      fclose(f);
    }
    return;
  }
  snprintf(buf, sizeof buf, "%s", x);
  for (x = strtok(buf, ","); x; x = strtok(0, ",")) check_dns_server(file, x);
}

/* ---- run scripts: setting names, memory limits (env/ beside the script resolves "$VAR") */
static unsigned long envdir_value(const char *script, const char *var)
{
  char path[4096], val[64];
  const char *slash = strrchr(script, '/');
  int fd;
  ssize_t r;
  snprintf(path, sizeof path, "%.*senv/%s", slash ? (int)(slash - script + 1) : 0, script, var);
  if ((fd = open(path, O_RDONLY)) == -1) return 0;
  r = read(fd, val, sizeof val - 1);
  close(fd);
  if (r <= 0) return 0;
  val[r] = 0;
  return strtoul(val, 0, 10);
}

static void check_envdir(const char *script)
{
  char path[4096];
  const char *slash = strrchr(script, '/');
  FILE *ls;
  char cmd[4200], name[256];
  snprintf(path, sizeof path, "%.*senv", slash ? (int)(slash - script + 1) : 0, script);
  if (access(path, F_OK)) return;
  snprintf(cmd, sizeof cmd, "ls -1 '%s' 2>/dev/null", path);
  if (!(ls = popen(cmd, "r"))) return;
  while (fgets(name, sizeof name, ls)) {
    name[strcspn(name, "\n")] = 0;
    name_found(path, name, strlen(name), 0);
  }
  pclose(ls);
}

static void check_script(const char *fn)
{
  FILE *f = fopen(fn, "r");
  char line[4096];
  unsigned n = 0;
  if (!f) { finding(ERR, fn, "unreadable (%s)", strerror(errno)); return; }
  while (fgets(line, sizeof line, f)) {
    char *p = line, *m;
    ++n;
    if (*p == '#') continue;
    if (strstr(line, "spamdyke"))
      finding(NOTE, fn, "line %u: spamdyke in front of mxguard: mxguard reads none of its options "
              "(mxguard-import(8) translates them)", n);
    if (strstr(line, "rblsmtpd"))
      finding(NOTE, fn, "line %u: rblsmtpd in front of mxguard: mxguard does DNSBLs itself "
              "(control/dnsbl) and honours the RBLSMTPD rblsmtpd sets", n);
    /* NAME=value words */
    for (p = line; *p; ++p) {
      if (*p == '=' && p > line) {
        char *s = p;
        while (s > line && ((s[-1] >= 'A' && s[-1] <= 'Z') || (s[-1] >= '0' && s[-1] <= '9') || s[-1] == '_')) --s;
        if (s < p && (s == line || s[-1] == ' ' || s[-1] == '\t' || s[-1] == ',' || s[-1] == '"' || s[-1] == '+'))
          name_found(fn, s, (size_t)(p - s), 0);
      }
    }
    /* softlimit -m N / chpst -m N, N a number or "$VAR" / ${VAR} from ./env */
    for (p = line; (m = strstr(p, " -m ")); p = m + 4) {
      char *v = m + 4, var[64];
      unsigned long bytes;
      size_t k = 0;
      if (!strstr(line, "softlimit") && !strstr(line, "chpst")) break;
      while (*v == '"' || *v == '$' || *v == '{') ++v;
      if (*v >= '0' && *v <= '9') bytes = strtoul(v, 0, 10);
      else {
        while (k + 1 < sizeof var && ((v[k] >= 'A' && v[k] <= 'Z') || v[k] == '_' || (v[k] >= '0' && v[k] <= '9'))) { var[k] = v[k]; ++k; }
        var[k] = 0;
        bytes = k ? envdir_value(fn, var) : 0;
        if (!bytes) continue;
      }
      if (bytes < TLS_MEM_MIN)
        finding(ERR, fn, "line %u: memory limit %lu bytes is below %lu: STARTTLS sessions would fail",
                n, bytes, TLS_MEM_MIN);
    }
  }
  fclose(f);
  check_envdir(fn);
}

/* is it a cdb? a sound header whose tables all lie inside the file */
static int looks_cdb(const char *fn)
{
  unsigned char h[2048];
  struct stat st;
  int fd = open(fn, O_RDONLY), i;
  ssize_t r;
  if (fd == -1) return 0;
  r = read(fd, h, sizeof h);
  if (fstat(fd, &st) == -1) st.st_size = 0;
  close(fd);
  if (r != 2048) return 0;
  for (i = 0; i < 256; ++i) {
    uint32_t pos = u32(h + i * 8);
    if (pos < 2048 || pos > (uint64_t)st.st_size) return 0;
  }
  return 1;
}

/* ---- the whole configuration */
static void check_config(void)
{
  static stralloc sa, me;
  int rme, r;
  struct map m;
  const char *x;
  rme = readable_line("control/me", &me);
  r = readable_line("control/smtpgreeting", &sa);
  if (rme == 0 && r == 0) finding(ERR, "control/me", "missing (and no control/smtpgreeting): every session would get 421");
  readable_line("control/localiphost", &sa);
  readable_line("control/envnoathost", &sa);
  number_file("control/timeoutsmtpd", 0);
  number_file("control/databytes", 0);
  number_file("control/dnsbudget", 0);
  number_file("control/dnsblthreshold", 1);
  readable_line("control/requireptr", &sa);
  readable_line("control/returnmxcheck", &sa);
  readable_line("control/dnsblfailclosed", &sa);
  list_file("control/badmailfrom", &sa);
  {
    size_t i;  /* sagredo's qregex lines: mxguard (as qmail) matches them literally */
    for (i = 0; i < sa.len; i += strlen(sa.s + i) + 1)
      if (sa.s[i] == '!' || sa.s[i + strcspn(sa.s + i, "*^$[]()|\\")])
        finding(WARN, "control/badmailfrom", "entry \"%s\" looks like a regular expression (sagredo's "
                "qregex): it is matched as a literal address or @domain", sa.s + i);
  }
  list_file("control/percenthack", &sa);
  list_file("control/locals", &sa);
  list_file("control/virtualdomains", &sa);
  list_file("control/tlsserverciphers", &sa);
  list_file("control/dnsservers", &sa);
  list_file("control/rcpthosts", &sa);
  {
    size_t i;
    int rc = control_readfile(&sa, "control/rcpthosts");
    for (i = 0; rc == 1 && i < sa.len; i += strlen(sa.s + i) + 1)
      if (sa.s[i + strcspn(sa.s + i, " \t\r")])
        finding(WARN, "control/rcpthosts", "entry \"%s\" holds a blank or CR: it never matches", sa.s + i);
    r = mapcdb("control/morercpthosts.cdb", &m);
    if (m.p) munmap(m.p, m.len);
    if (rc == 0 && r == 0)
      finding(ERR, "control/rcpthosts", "missing (and no morercpthosts.cdb): mail for every domain is accepted, an open relay");
  }
  r = mapcdb("users/cdb", &m);  /* qmail-lspawn's, read by the recipient check */
  if (m.p) munmap(m.p, m.len);
  r = mapcdb("control/mxguard-users.cdb", &m);
  if (m.p) munmap(m.p, m.len);
  list_file("control/tlsclients", &sa);
  if (access("control/clientca.pem", F_OK) == 0 && access("control/clientca.pem", R_OK) == -1)
    finding(ERR, "control/clientca.pem", "unreadable (%s): STARTTLS would fail", strerror(errno));
  zones_file("control/dnsbl");
  zones_file("control/rhsbl");
  x = instruct_path();
  if (*x) check_rules_cdb(x);
  {  /* the policy: control/rules.cdb is what is in force; its sources must not be newer */
    struct stat cdb, src;
    int have = stat("control/rules.cdb", &cdb) == 0;
    time_t newest = 0;
    DIR *d;
    if (stat("control/rules", &src) == 0) newest = src.st_mtime;
    if ((d = opendir("control/rules.d"))) {
      struct dirent *e;
      if (fstat(dirfd(d), &src) == 0 && src.st_mtime > newest) newest = src.st_mtime;
      while ((e = readdir(d))) {
        static stralloc p;
        if (e->d_name[0] == '.') continue;
        if (!stralloc_copys(&p, "control/rules.d/") || !stralloc_cats(&p, e->d_name) || !stralloc_0(&p)) break;
        if (lstat(p.s, &src) == 0 && src.st_mtime > newest) newest = src.st_mtime;
      }
      closedir(d);
    }
    if (newest && !have)
      finding(ERR, "control/rules.cdb", "missing: the rules in control/rules and rules.d/ are not in force (run mxguard-rules compile)");
    else if (newest && have && newest > cdb.st_mtime)
      finding(WARN, "control/rules.cdb", "older than its sources: run mxguard-rules compile");
  }
  check_cert(STARTTLS_CERT);
  {
    FILE *ls = popen("ls -1 control/servercerts 2>/dev/null", "r");
    char name[300], path[400];
    while (ls && fgets(name, sizeof name, ls)) {
      name[strcspn(name, "\n")] = 0;
      snprintf(path, sizeof path, "control/servercerts/%s/servercert.pem", name);
      check_cert(path);
    }
    if (ls) pclose(ls);
  }
  r = valsql_configured(VALUSER_SQLCONF_);
  if (r == -1) finding(ERR, VALUSER_SQLCONF_, "unreadable (%s)", strerror(errno));
  else if (r == 1) {
    long gid;
    if (valsql_user("postmaster", "mxguard-check.invalid", &gid) == -1)
      finding(ERR, VALUSER_SQLCONF_, "SQL server unreachable: %s: recipients in SQL domains get 451",
              valsql_error());
  }
  {
    static stralloc d1, d2, rp, rm;
    if ((control_readfile(&d1, "control/dnsbl") == 1 && d1.len) ||
        (control_readfile(&d2, "control/rhsbl") == 1 && d2.len) ||
        (control_readline(&rp, "control/requireptr") == 1 && rp.len && strcmp(rp.s, "0")) ||
        (control_readline(&rm, "control/returnmxcheck") == 1 && rm.len) || getenv("DNSSERVERS"))
      check_dns();
  }
}

/* ---- --client: the effective settings, with their sources */
static const char *source[NSETTINGS];
static char *srcbuf[NSETTINGS];

static void tcprules_apply(const char *fn, const char *ip, const char *host)
{
  struct map m;
  char key[512];
  const unsigned char *d;
  uint32_t dl, i;
  size_t len;
  int found = 0;
  if (mapcdb(fn, &m) != 1) return;
  snprintf(key, sizeof key, "%s", ip);
  if (cdbfind(&m, key, strlen(key), &d, &dl)) found = 1;
  if (!found && host) { snprintf(key, sizeof key, "=%s", host); found = cdbfind(&m, key, strlen(key), &d, &dl); }
  for (len = strlen(ip); !found && len; ) {
    while (len && ip[len - 1] != '.') --len;
    if (!len) break;
    snprintf(key, sizeof key, "%.*s", (int)len, ip);
    found = cdbfind(&m, key, len, &d, &dl);
    --len;
  }
  if (!found && host) {
    const char *h = host;
    while (!found && (h = strchr(h, '.'))) { snprintf(key, sizeof key, "=%s", h); found = cdbfind(&m, key, strlen(key), &d, &dl); ++h; }
    if (!found) { strcpy(key, "="); found = cdbfind(&m, key, 1, &d, &dl); }
  }
  if (!found) { key[0] = 0; found = cdbfind(&m, "", 0, &d, &dl); }
  if (!found) { printf("# %s: no rule for this client\n", fn); munmap(m.p, m.len); return; }
  printf("# %s: rule \"%s\"\n", fn, key);
  for (i = 0; i < dl; ) {
    const char *l = (const char *)d + i;
    size_t n = strnlen(l, dl - i);
    char item[4096];
    if (n && n < sizeof item) {
      memcpy(item, l, n); item[n] = 0;
      if (item[0] == 'D') printf("# %s: the client is denied (tcpserver drops it)\n", fn);
      else if (item[0] == '+' && strchr(item, '=')) {
        char *eq = strchr(item, '=');
        size_t k;
        *eq = 0;
        setenv(item + 1, eq + 1, 1);
        for (k = 0; k < NSETTINGS; ++k)
          if (!strcmp(settings[k].name, item + 1)) {
            free(srcbuf[k]);
            srcbuf[k] = malloc(strlen(fn) + strlen(key) + 32);
            if (srcbuf[k]) sprintf(srcbuf[k], "tcprules %s \"%s\"", fn, key);
            source[k] = srcbuf[k];
          }
        if (!implemented(item + 1, strlen(item + 1))) name_found(fn, item + 1, strlen(item + 1), 1);
      }
    }
    i += (uint32_t)n + 1;
  }
  munmap(m.p, m.len);
}

static void instruct_warn(const char *why, const char *line)
{
  finding(WARN, instruct_path(), "line \"%s\": %s", line, why);
}

static int client(const char *ip, const char *host, const char *rules)
{
  static stralloc cmd, sa;
  const char *key, *path;
  size_t k;
  int r;
  setenv("TCPREMOTEIP", ip, 1);
  if (host) setenv("TCPREMOTEHOST", host, 1);
  for (k = 0; k < NSETTINGS; ++k) {
    source[k] = getenv(settings[k].name) ? "environment of mxguard-check" : 0;
    if (!strcmp(settings[k].name, "TCPREMOTEIP") || (host && !strcmp(settings[k].name, "TCPREMOTEHOST")))
      source[k] = "--client/--host";
  }
  if (rules) tcprules_apply(rules, ip, host);
  path = instruct_path();
  r = instruct_apply(path, ip, host, &cmd, &key, instruct_warn);
  if (r == INSTRUCT_ERROR) finding(ERR, path, "unreadable or broken: every session would get 421");
  else if (r == INSTRUCT_NONE) printf("# %s: no entry for this client\n", *path ? path : "(instruct cdb off)");
  else {
    printf("# %s: entry \"%s\": %s\n", path, key,
           r == INSTRUCT_DENY ? "deny (554 and close)" : r == INSTRUCT_EXEC ? "runs a command instead" : "allow");
    struct map m;
    const unsigned char *d;
    uint32_t dl, i;
    if (r == INSTRUCT_ALLOW && mapcdb(path, &m) == 1) {
      if (cdbfind(&m, key, strlen(key), &d, &dl) && dl)
        for (i = 0; i < dl - 1; ) {  /* the entry's lines: each "+NAME" it names */
          const char *l = (const char *)d + i;
          size_t n = strnlen(l, dl - 1 - i), e;
          if (n > 1 && l[0] == '+') {
            for (e = 1; e < n && l[e] != '='; ++e) ;
            for (k = 0; k < NSETTINGS; ++k)
              if (strlen(settings[k].name) == e - 1 && !strncmp(settings[k].name, l + 1, e - 1)) {
                free(srcbuf[k]);
                srcbuf[k] = malloc(strlen(path) + strlen(key) + 32);
                if (srcbuf[k]) sprintf(srcbuf[k], "instruct %s \"%s\"", path, key);
                source[k] = e < n ? srcbuf[k] : "unset by instruct";
              }
          }
          i += (uint32_t)n + 1;
        }
      munmap(m.p, m.len);
    }
  }
  for (k = 0; k < NSETTINGS; ++k) {
    const struct setting *s = &settings[k];
    const char *v = getenv(s->name);
    if (v) printf("%s=%s\t# %s\n", s->name, v, source[k] ? source[k] : "environment");
    else if (s->control && control_readfile(&sa, s->control) == 1 && sa.len) {
      size_t i;
      for (i = 0; i + 1 < sa.len; ++i) if (!sa.s[i]) sa.s[i] = ',';
      printf("%s=%s\t# %s\n", s->name, sa.s, s->control);
    } else
      printf("%s unset\t# default %s%s%s\n", s->name, s->def, s->control ? ", no " : "",
             s->control ? s->control : "");
  }
  return 0;
}

/* ---- start */
static void become(const char *user)
{
  struct passwd *pw;
  if (getuid() != 0) return;
  if (!(pw = getpwnam(user))) {
    fprintf(stderr, "mxguard-check: warning: user %s does not exist: checking as root, "
            "which may read files the smtpd cannot\n", user);
    return;
  }
  if (setgroups(0, 0) == -1 || setgid(pw->pw_gid) == -1 || setuid(pw->pw_uid) == -1) {
    fprintf(stderr, "mxguard-check: cannot become %s: %s\n", user, strerror(errno));
    exit(111);
  }
}

static void usage(void)
{
  fprintf(stderr, "usage: mxguard-check [-q] [-u user] [FILE ...]\n"
          "       mxguard-check [-u user] --client IP [--host NAME] [--rules TCPRULES.cdb]\n"
          "       mxguard-check --settings | -V\n");
  exit(100);
}

int main(int argc, char **argv)
{
  const char *ip = 0, *host = 0, *rules = 0, *user = "qmaild";
  int i;
  if (argc == 2 && version_arg(argv[1])) version_print("mxguard-check");
  for (i = 1; i < argc && argv[i][0] == '-'; ++i) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) { ++i; break; }
    if (!strcmp(a, "-q")) quiet = 1;
    else if (!strcmp(a, "-u") && i + 1 < argc) user = argv[++i];
    else if (!strcmp(a, "--client") && i + 1 < argc) ip = argv[++i];
    else if (!strcmp(a, "--host") && i + 1 < argc) host = argv[++i];
    else if (!strcmp(a, "--rules") && i + 1 < argc) rules = argv[++i];
    else if (!strcmp(a, "--settings")) {
      size_t k;
      for (k = 0; k < NSETTINGS; ++k)
        printf("%s\t%s\t%s\t%s\n", settings[k].name, settings[k].def,
               settings[k].control ? settings[k].control : "-", settings[k].what);
      return 0;
    } else usage();
  }
  setvbuf(stdout, 0, _IOLBF, 0);
  {
    /* command-line paths are relative to where we were started */
    char cwd[4096];
    int j;
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
    become(user);
    if (control_chdir() == -1) {
      finding(ERR, control_home(), "cannot enter the qmail home (%s)", strerror(errno));
      return 2;
    }
    if (ip) {
      char rpath[8192];
      if (rules && rules[0] != '/' && cwd[0]) { snprintf(rpath, sizeof rpath, "%s/%s", cwd, rules); rules = rpath; }
      client(ip, host, rules);
      return worst;
    }
    check_config();
    for (j = i; j < argc; ++j) {
      char path[8192];
      const char *fn = argv[j];
      if (fn[0] != '/' && cwd[0]) { snprintf(path, sizeof path, "%s/%s", cwd, fn); fn = path; }
      struct stat st;
      if (stat(fn, &st) == 0 && S_ISDIR(st.st_mode)) {  /* a service directory */
        char sub[8300];
        snprintf(sub, sizeof sub, "%s/run", fn);
        check_script(sub);
        snprintf(sub, sizeof sub, "%s/peers.cdb", fn);
        if (access(sub, F_OK) == 0) check_rules_cdb(sub);
      } else if (looks_cdb(fn)) check_rules_cdb(fn);
      else check_script(fn);
    }
  }
  return worst;
}
