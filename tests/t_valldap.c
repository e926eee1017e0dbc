/* t_valldap - valldap.c without a server: RFC 4515 escaping of filter values, the filter's
 * shape with and without control/ldapobjectclass, and that no configuration means no LDAP
 * (and no library loaded). The lookups against a real slapd are in
 * tests/integration/test_valldap.py. */
#include "check.h"
#include "control.h"
#include "valldap.h"

static void esc(const char *name, const char *in, size_t len, const char *want)
{
  stralloc sa = {0};
  if (!valldap_escape(&sa, in, len)) check(0, name, "out of memory");
  check_bytes(name, sa.s ? sa.s : "", sa.len, want, strlen(want));
}

int main(void)
{
  stralloc f = {0};
  const char *dir = check_tmpdir("valldap");
  esc("escape: plain", "joe@example.test", 16, "joe@example.test");
  esc("escape: star", "*@example.test", 14, "\\2a@example.test");
  esc("escape: parentheses", "a)(uid=*", 8, "a\\29\\28uid=\\2a");
  esc("escape: backslash", "a\\b", 3, "a\\5cb");
  esc("escape: NUL", "a\0b", 3, "a\\00b");
  esc("escape: 8-bit kept", "\xc3\xa9", 2, "\xc3\xa9");

  check(chdir(dir) == 0, "chdir", "%s", strerror(errno));
  mkdir("control", 0755);
  check_long("not configured without control/ldapserver", valldap_configured(), 0);
  check_long("lookup without configuration is unusable", valldap_lookup("a@b", 3), VL_UNUSABLE);
  check_long("library not loaded", valldap_loaded(), 0);

  check_write("control/ldapserver", "127.0.0.1:1\n", 12, 0644);
  valldap_reset();
  check_long("configured with control/ldapserver", valldap_configured(), 1);
  check(valldap_filter(&f, "a*b@x", 5), "filter", "nomem");
  check_str("filter without objectclass", f.s, "(|(mail=a\\2ab@x)(mailAlternateAddress=a\\2ab@x))");
  check_write("control/ldapobjectclass", "qmailUser\n", 10, 0644);
  valldap_reset();
  valldap_configured();
  check(valldap_filter(&f, "a@x", 3), "filter", "nomem");
  check_str("filter with objectclass", f.s,
            "(&(objectClass=qmailUser)(|(mail=a@x)(mailAlternateAddress=a@x)))");
  check_long("ldaplocaldelivery default 1", valldap_localdelivery(), 1);
  check_write("control/ldaplocaldelivery", "0\n", 2, 0644);
  valldap_reset();
  valldap_configured();
  check_long("ldaplocaldelivery 0", valldap_localdelivery(), 0);
  mkdir("control/ldapbasedn", 0755);  /* unreadable as a file, even for root */
  valldap_reset();
  check_long("configured reads only ldapserver", valldap_configured(), 1);
  check_long("unreadable control file: temporary", valldap_lookup("a@b", 3), VL_TEMP);
  check_str("the error names the file", valldap_error(), "unable to read control/ldapbasedn");
  check_long("still no library loaded", valldap_loaded(), 0);
  return check_done();
}
