# mxguard - qmail-style Makefile: conf-cc and conf-ld hold the compile and link commands,
# every object and its headers are listed by hand. Build elsewhere with
#   make -C dir -f ../Makefile SRC=..   (the sanitizer build in make check does this)

SRC ?= .
vpath %.c $(SRC)
vpath %.h $(SRC)
vpath conf-% $(SRC)

COMPILE = $(shell head -n 1 $(SRC)/conf-cc) -iquote $(SRC) $(EXTRA_CFLAGS)
LOAD = $(shell head -n 1 $(SRC)/conf-ld)
LINK = $(LOAD) $(EXTRA_LDFLAGS)
QMAILHOME = $(shell head -n 1 $(SRC)/conf-qmail)
# linked statically by conf-ld: a session must not pay the dynamic loader for these
LIBS = -lowfat -lcares

SMTPD_OBJS = smtpd.o addr.o auth.o control.o data.o instruct.o io.o log.o queue.o stock.o tls.o ossl.o \
  valuser.o valsql.o dnsbl.o rules.o pattern.o
PROGS = mxguard-smtpd qq-maildir mxguard-users mxguard-rules
SMTPD_OBJS += valldap.o
TESTPROGS = tests/qq-recorder tests/t_addr tests/t_control tests/t_data tests/t_queue \
  tests/t_instruct tests/t_log tests/t_stock tests/t_valuser tests/t_auth \
  tests/t_dnsbl tests/t_rules
SMTPD_OBJS += switches.o
TESTPROGS += tests/t_switches
SMTPD_OBJS += proc.o
SMTPD_OBJS += tlscache.o
PROGS += mxguard-tlscache
TESTPROGS += tests/t_proc
BENCHPROGS = bench/banner bench/qq-sink
# geoip (rules below, "geoip:")
SMTPD_OBJS += geoip.o
TESTPROGS += tests/t_geoip tests/t_dynptr
TESTPROGS += tests/t_valldap
# issue 9: tarpits, limits, greylisting, rates (tarpit.c) over the shared store (store.c:
# liblmdb linked statically, hiredis dlopen()ed only when control/redis names a server)
SMTPD_OBJS += tarpit.o store.o
LIBS_STORE = -l:liblmdb.a
PROGS += mxguard-store
TESTPROGS += tests/t_tarpit tests/t_store
# content checks (content.c, mime.c)
SMTPD_OBJS += content.o mime.o
TESTPROGS += tests/t_mime tests/t_content

default: $(PROGS)

all: $(PROGS) $(TESTPROGS) $(BENCHPROGS)

# glibc warns about any dlopen in a static program. valsql.c loads libmariadb.so.3 that way,
# only when a recipient needs SQL, and ossl.c libssl.so.3 at the first STARTTLS; each library
# gets its own libc (glibc's secondary-namespace malloc does not use brk), which is what we
# want. That one known warning is filtered out.
STATIC_DLOPEN_NOTE = -e "valsql.o: in function .load.:" -e "ossl.o: in function .ossl_load.:" \
  -e "Using .dlopen. in statically linked"
STATIC_DLOPEN_NOTE += -e "valldap.o: in function .load.:"
# Static libcares brings getservbyname (ares_getaddrinfo) and getservbyport_r (ares_getnameinfo):
# dnsbl.c only calls ares_query, which never asks for a service name, so neither runs.
STATIC_DLOPEN_NOTE += -e "libcares_la-ares_getaddrinfo.o): in function .ares_getaddrinfo.:" \
  -e "libcares_la-ares_getnameinfo.o): in function .lookup_service" \
  -e "^(.text+0x[0-9a-f]*): warning: Using .getservbyname. in statically linked" \
  -e "^(.text+0x[0-9a-f]*): warning: Using .getservbyport_r. in statically linked"
# geoip.c loads libmaxminddb.so.0 the same way, at the first country question
STATIC_DLOPEN_NOTE += -e "geoip.o: in function .load.:"
# the code a common session runs sits together at the start of the text: every function in its
# own section, and lld puts those named in conf-order (bench/order, make order) first. The kernel
# maps code in blocks around each page touched; spread over the whole text, a 1 KB session mapped
# nearly all of it (peak RSS 1 348 KB), together it maps 1 064 KB (bench/run (c)). Static builds
# only (the sanitizer build links dynamically with its own LOAD).
COMPILE += -ffunction-sections
ifneq ($(findstring -static,$(LOAD)),)
ifneq ($(shell command -v ld.lld),)
SMTPD_ORDER = -fuse-ld=lld -Wl,--symbol-ordering-file=$(SRC)/conf-order -Wl,--no-warn-symbol-ordering
else
$(info mxguard-smtpd: ld.lld not found (package lld): linked without conf-order, its peak RSS about 280 KB higher)
endif
endif
mxguard-smtpd: $(SMTPD_OBJS) conf-ld conf-order
	rm -f $@
	$(LINK) $(SMTPD_ORDER) -o $@ $(SMTPD_OBJS) $(LIBS) $(LIBS_STORE) 2>&1 | { grep -v $(STATIC_DLOPEN_NOTE) || true; } >&2
	test -f $@

qq-maildir: qq-maildir.o conf-ld
	$(LINK) -o $@ qq-maildir.o $(LIBS)

smtpd.o: smtpd.c version.h addr.h auth.h content.h control.h data.h decision.h instruct.h io.h log.h \
  queue.h session.h stock.h tls.h dnsbl.h rules.h conf-cc
	$(COMPILE) -c $(SRC)/smtpd.c -o $@
dnsbl.o: dnsbl.c dnsbl.h control.h decision.h io.h log.h session.h conf-cc
	$(COMPILE) -c $(SRC)/dnsbl.c -o $@
addr.o: addr.c addr.h conf-cc
	$(COMPILE) -c $(SRC)/addr.c -o $@
auth.o: auth.c auth.h decision.h proc.h conf-cc
	$(COMPILE) -c $(SRC)/auth.c -o $@
tls.o: tls.c tls.h ossl.h control.h io.h tlscache.h conf-cc
	$(COMPILE) -c $(SRC)/tls.c -o $@
control.o: control.c control.h conf-cc conf-qmail
	$(COMPILE) -DAUTO_QMAIL='"$(QMAILHOME)"' -c $(SRC)/control.c -o $@
data.o: data.c data.h conf-cc
	$(COMPILE) -c $(SRC)/data.c -o $@
instruct.o: instruct.c instruct.h conf-cc
	$(COMPILE) -c $(SRC)/instruct.c -o $@
io.o: io.c io.h conf-cc
	$(COMPILE) -c $(SRC)/io.c -o $@
log.o: log.c log.h conf-cc
	$(COMPILE) -c $(SRC)/log.c -o $@
queue.o: queue.c queue.h proc.h conf-cc
	$(COMPILE) -c $(SRC)/queue.c -o $@
stock.o: stock.c stock.h control.h decision.h session.h conf-cc
	$(COMPILE) -c $(SRC)/stock.c -o $@
valuser.o: valuser.c valuser.h valsql.h valldap.h control.h decision.h log.h session.h conf-cc
	$(COMPILE) -c $(SRC)/valuser.c -o $@
ossl.o: ossl.c ossl.h conf-cc
	$(COMPILE) -c $(SRC)/ossl.c -o $@
valsql.o: valsql.c valsql.h control.h conf-cc
	$(COMPILE) -I/usr/include/mariadb -c $(SRC)/valsql.c -o $@
# mxguard-users: valuser's live lookup over every backend into one cdb (run as root from cron;
# linked dynamically: start-up cost does not matter, getpwent/NSS and dlopen do)
mxguard-users: mxguard-users.o valuser.o valsql.o valldap.o control.o log.o version.o conf-ld
	$(subst -static,,$(LINK)) -o $@ mxguard-users.o valuser.o valsql.o valldap.o control.o log.o version.o $(LIBS)
mxguard-users.o: mxguard-users.c valuser.h valsql.h valldap.h control.h version.h conf-cc
	$(COMPILE) -c $(SRC)/mxguard-users.c -o $@
# what rules.o needs beside itself, for the test programs and tools that link it
RULES_DEPS = pattern.o geoip.o addr.o dnsbl.o stock.o valuser.o valsql.o valldap.o control.o io.o log.o
rules.o: rules.c rules.h addr.h control.h dnsbl.h geoip.h log.h pattern.h stock.h valuser.h decision.h session.h conf-cc
	$(COMPILE) -c $(SRC)/rules.c -o $@
pattern.o: pattern.c pattern.h conf-cc
	$(COMPILE) -c $(SRC)/pattern.c -o $@
# mxguard-rules: the compiler and explainer (linked dynamically like mxguard-users)
RULES_TOOL_OBJS = mxguard-rules.o rules.o pattern.o geoip.o addr.o control.o dnsbl.o io.o log.o stock.o \
  valuser.o valsql.o valldap.o
mxguard-rules: $(RULES_TOOL_OBJS) conf-ld
	$(subst -static,,$(LINK)) -o $@ $(RULES_TOOL_OBJS) $(LIBS)
mxguard-rules.o: mxguard-rules.c rules.h control.h conf-cc
	$(COMPILE) -c $(SRC)/mxguard-rules.c -o $@
# the qmail-ldap and sagredo switches
smtpd.o: switches.h
switches.o: switches.c switches.h control.h decision.h dnsbl.h log.h session.h stock.h valuser.h \
  conf-cc
	$(COMPILE) -c $(SRC)/switches.c -o $@
SWITCHES_TEST_OBJS = switches.o dnsbl.o stock.o valuser.o valsql.o valldap.o control.o io.o log.o
tests/t_switches: tests/t_switches.c $(SWITCHES_TEST_OBJS) tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_switches.c $(SWITCHES_TEST_OBJS) $(LIBS)
qq-maildir.o: qq-maildir.c conf-cc
	$(COMPILE) -c $(SRC)/qq-maildir.c -o $@

# geoip: country of an address from control/geoipdb's .mmdb (libmaxminddb, dlopen on first need)
geoip.o: geoip.c geoip.h control.h conf-cc
	$(COMPILE) -c $(SRC)/geoip.c -o $@
# linked as mxguard-smtpd is (static), so the dlopen path under test is the daemon's
tests/t_geoip: tests/t_geoip.c geoip.o control.o tests/check.h conf-ld tests/.dir
	$(COMPILE) -c $(SRC)/tests/t_geoip.c -o tests/t_geoip.o
	$(LINK) -o $@ tests/t_geoip.o geoip.o control.o $(LIBS) 2>&1 | \
	  { grep -v $(STATIC_DLOPEN_NOTE) || true; } >&2
	rm -f tests/t_geoip.o
	test -f $@
# the shipped control/dynamicptr against a corpus
tests/t_dynptr: tests/t_dynptr.c tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_dynptr.c
# shipped defaults (control/README): copied into the qmail home's control/ where absent, so
# an admin's edited copy survives; each through a temporary name and a rename
CONTROL_DEFAULTS = dynamicptr tlds badattach signatures headerblock
install-control:
	mkdir -p $(DESTDIR)$(QMAILHOME)/control
	for f in $(CONTROL_DEFAULTS); do d=$(DESTDIR)$(QMAILHOME)/control/$$f; \
	  test -e $$d || { cp $(SRC)/control/$$f $$d.new && chmod 644 $$d.new && mv $$d.new $$d; } \
	  || exit 1; done
.PHONY: install-control
# tlscache.c: the server certificate and key as DER beside the PEM
tlscache.o: tlscache.c tlscache.h ossl.h conf-cc
	$(COMPILE) -c $(SRC)/tlscache.c -o $@
mxguard-tlscache: mxguard-tlscache.o tlscache.o ossl.o control.o conf-ld
	$(LINK) -o $@ mxguard-tlscache.o tlscache.o ossl.o control.o $(LIBS) 2>&1 | \
	  { grep -v $(STATIC_DLOPEN_NOTE) -e "mxguard-tlscache.o: in function" || true; } >&2
	test -f $@
mxguard-tlscache.o: mxguard-tlscache.c tlscache.h ossl.h control.h tls.h conf-cc
	$(COMPILE) -c $(SRC)/mxguard-tlscache.c -o $@

# proc.c: a child's exit awaited on a pidfd (qmail-queue, checkpassword)
proc.o: proc.c proc.h conf-cc
	$(COMPILE) -c $(SRC)/proc.c -o $@
tests/t_proc: tests/t_proc.c proc.o proc.h tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_proc.c proc.o $(LIBS)
content.o: content.c content.h mime.h control.h decision.h io.h log.h rules.h session.h conf-cc
	$(COMPILE) -c $(SRC)/content.c -o $@
mime.o: mime.c mime.h conf-cc
	$(COMPILE) -c $(SRC)/mime.c -o $@
tests/t_mime: tests/t_mime.c mime.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_mime.c mime.o $(LIBS)
tests/t_content: tests/t_content.c content.o mime.o control.o io.o log.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_content.c content.o mime.o control.o io.o log.o $(LIBS)
tests/fuzz_content: tests/fuzz_content.c content.c content.h mime.c mime.h control.c io.c log.c tests/.dir
	$(FUZZCC) -DAUTO_QMAIL='"/var/qmail"' -o $@ $(SRC)/tests/fuzz_content.c $(SRC)/content.c $(SRC)/mime.c \
	  $(SRC)/control.c $(SRC)/io.c $(SRC)/log.c -l:libowfat.a
tests/fuzz_mime: tests/fuzz_mime.c mime.c mime.h tests/.dir
	$(FUZZCC) -o $@ $(SRC)/tests/fuzz_mime.c $(SRC)/mime.c

# test and benchmark programs
tests/.dir bench/.dir:
	mkdir -p $(@D) && touch $@
tests/qq-recorder: tests/qq-recorder.c conf-cc conf-ld tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/qq-recorder.c $(LIBS)
tests/t_addr: tests/t_addr.c addr.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_addr.c addr.o $(LIBS)
tests/t_control: tests/t_control.c control.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_control.c control.o $(LIBS)
tests/t_data: tests/t_data.c data.o tests/blast_model.h tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_data.c data.o $(LIBS)
tests/t_queue: tests/t_queue.c queue.o proc.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_queue.c queue.o proc.o $(LIBS)
tests/t_instruct: tests/t_instruct.c instruct.o control.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_instruct.c instruct.o control.o $(LIBS)
tests/t_log: tests/t_log.c log.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_log.c log.o $(LIBS)
tests/t_valuser: tests/t_valuser.c valuser.o valsql.o valldap.o control.o log.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_valuser.c valuser.o valsql.o valldap.o control.o log.o $(LIBS)
tests/t_auth: tests/t_auth.c auth.o proc.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_auth.c auth.o proc.o $(LIBS)
tests/t_dnsbl: tests/t_dnsbl.c dnsbl.o control.o io.o log.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_dnsbl.c dnsbl.o control.o io.o log.o $(LIBS)
tests/t_rules: tests/t_rules.c rules.o pattern.o geoip.o addr.o control.o dnsbl.o io.o log.o stock.o \
  valuser.o valsql.o valldap.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_rules.c rules.o pattern.o geoip.o addr.o control.o dnsbl.o io.o log.o \
	  stock.o valuser.o valsql.o valldap.o $(LIBS)
tests/t_stock: tests/t_stock.c stock.o control.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_stock.c stock.o control.o $(LIBS)
# linked as mxguard-smtpd is, so that they are fair floors
bench/banner: bench/banner.c conf-cc conf-ld bench/.dir
	$(COMPILE) -c $(SRC)/bench/banner.c -o bench/banner.o && $(LINK) -o $@ bench/banner.o
bench/qq-sink: bench/qq-sink.c conf-cc conf-ld bench/.dir
	$(COMPILE) -c $(SRC)/bench/qq-sink.c -o bench/qq-sink.o && $(LINK) -o $@ bench/qq-sink.o

# libFuzzer targets (clang only)
FUZZCC = clang -std=gnu99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -iquote $(SRC)
tests/fuzz_smtpd: tests/fuzz_smtpd.c tests/blast_model.h addr.c data.c tests/.dir
	$(FUZZCC) -o $@ $(SRC)/tests/fuzz_smtpd.c $(SRC)/addr.c $(SRC)/data.c -l:libowfat.a

FUZZ_RULES_SRCS = rules.c pattern.c geoip.c addr.c control.c dnsbl.c io.c log.c stock.c valuser.c valsql.c \
  valldap.c
tests/fuzz_rules: tests/fuzz_rules.c $(FUZZ_RULES_SRCS) tests/.dir
	$(FUZZCC) -I/usr/include/mariadb -o $@ $(SRC)/tests/fuzz_rules.c $(addprefix $(SRC)/,$(FUZZ_RULES_SRCS)) \
	  -l:libowfat.a -lcares
# qmail-ldap: valldap.c loads libldap with dlopen when a recipient first needs LDAP
valldap.o: valldap.c valldap.h control.h conf-cc
	$(COMPILE) -c $(SRC)/valldap.c -o $@
tests/t_valldap: tests/t_valldap.c valldap.o control.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_valldap.c valldap.o control.o $(LIBS)
bench-ldap: all
	$(SRC)/bench/valldap
.PHONY: bench-ldap

deps:
	$(SRC)/install-deps

demo: deps $(PROGS)
	$(SRC)/tests/demo

check: deps
	$(SRC)/tests/check

# issue 9 (tarpit.c, store.c, mxguard-store): rules
smtpd.o: tarpit.h
bench: bench-store
bench-store: all
	MXG_BIN=$(CURDIR) $(SRC)/bench/store
.PHONY: bench-store
STATIC_DLOPEN_NOTE += -e "store.o: in function .redis_load.:"
tarpit.o: tarpit.c tarpit.h store.h control.h decision.h io.h log.h rules.h session.h conf-cc
	$(COMPILE) -c $(SRC)/tarpit.c -o $@
store.o: store.c store.h control.h log.h conf-cc
	$(COMPILE) -c $(SRC)/store.c -o $@
mxguard-store: mxguard-store.o store.o control.o log.o conf-ld
	$(LINK) -o $@ mxguard-store.o store.o control.o log.o $(LIBS) $(LIBS_STORE) 2>&1 | \
	  { grep -v $(STATIC_DLOPEN_NOTE) || true; } >&2
mxguard-store.o: mxguard-store.c store.h control.h conf-cc
	$(COMPILE) -c $(SRC)/mxguard-store.c -o $@
tests/t_tarpit: tests/t_tarpit.c tarpit.o store.o rules.o $(RULES_DEPS) tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_tarpit.c tarpit.o store.o rules.o $(RULES_DEPS) $(LIBS) $(LIBS_STORE)
tests/t_store: tests/t_store.c store.o control.o log.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_store.c store.o control.o log.o $(LIBS) $(LIBS_STORE)

bench: all
	$(SRC)/bench/run
	$(SRC)/bench/rules
	$(SRC)/bench/valuser
	$(SRC)/bench/dns
	$(SRC)/bench/tls
	MXG_BIN=$(CURDIR) $(SRC)/bench/front

clean:
	rm -f *.o bench/*.o $(PROGS) $(TESTPROGS) $(BENCHPROGS) tests/fuzz_smtpd tests/fuzz_rules tests/fuzz_mime \
	  tests/fuzz_content tests/.dir bench/.dir
	rm -rf san

.PHONY: default all deps demo check bench clean

# hardening (issue 12)
smtpd.o: rules.h
instruct.o: control.h
tls.o: log.h
# ---- operating: version, mxguard-check, mxguard-stats, install (issue 13)
VERSION = $(shell head -n 1 $(SRC)/VERSION)
vpath VERSION $(SRC)
MANDIR = $(QMAILHOME)/man
# (prerequisite lists above are expanded when read: name the additions here too)
SMTPD_OBJS += version.o
PROGS += mxguard-check mxguard-stats mxguard-import
mxguard-smtpd: version.o
default all: mxguard-check mxguard-stats mxguard-import
version.o: version.c version.h VERSION conf-cc
	$(COMPILE) -DMXG_VERSION='"$(VERSION)"' -c $(SRC)/version.c -o $@
# the checker and the statistics run by hand or from run scripts: linked dynamically
mxguard-check: mxguard-check.o instruct.o control.o dnsbl.o io.o log.o valsql.o version.o conf-ld
	$(subst -static,,$(LINK)) -o $@ mxguard-check.o instruct.o control.o dnsbl.o io.o log.o \
	  valsql.o version.o $(LIBS) -ldl
mxguard-check.o: mxguard-check.c instruct.h control.h dnsbl.h valsql.h tls.h version.h conf-cc
	$(COMPILE) -DAUTO_QMAIL='"$(QMAILHOME)"' -c $(SRC)/mxguard-check.c -o $@
mxguard-stats: mxguard-stats.o version.o conf-ld
	$(subst -static,,$(LINK)) -o $@ mxguard-stats.o version.o $(LIBS)
mxguard-stats.o: mxguard-stats.c version.h conf-cc
	$(COMPILE) -c $(SRC)/mxguard-stats.c -o $@
mxguard-import: mxguard-import.o version.o conf-ld
	$(subst -static,,$(LINK)) -o $@ mxguard-import.o version.o
mxguard-import.o: mxguard-import.c version.h conf-cc
	$(COMPILE) -c $(SRC)/mxguard-import.c -o $@
install: $(PROGS)
	DESTDIR='$(DESTDIR)' QMAILHOME='$(QMAILHOME)' MANDIR='$(MANDIR)' SRC='$(SRC)' $(SRC)/install.sh install
uninstall:
	DESTDIR='$(DESTDIR)' QMAILHOME='$(QMAILHOME)' MANDIR='$(MANDIR)' SRC='$(SRC)' $(SRC)/install.sh uninstall
clean: clean-ops
clean-ops:
	rm -f mxguard-check mxguard-stats mxguard-import
.PHONY: install uninstall clean-ops

# issue 14 item 3: mxguard-ossl.so - OpenSSL for STARTTLS as one shared object of our own, made
# here from Debian's libssl.a and libcrypto.a (libssl-dev) and dlopen()ed by ossl.c in place of
# libssl.so.3 + libcrypto.so.3 when it lies beside the binary. -Bsymbolic and the version
# script bind every call inside OpenSSL at link time: loading it relocates ~130 symbols
# instead of ~3 700 (3.19 M -> 0.48 M instructions). It exports only what ossl.h, tlscache.c
# and ossl.c look up (the list is made from those files), and ossl_prov.c's narrowed provider.
PROGS += mxguard-ossl.so
default all install: mxguard-ossl.so
STATIC_DLOPEN_NOTE += -e "ossl.o: in function .own.:"
OSSL_A = $(shell $(CC) -print-file-name=libssl.a) $(shell $(CC) -print-file-name=libcrypto.a)
mxguard-ossl.syms: ossl.h ossl.c tlscache.c $(SRC)/Makefile
	{ sed -n '/^#define OSSL_FUNCS/,/^$$/p' $(SRC)/ossl.h | grep -o 'F([A-Za-z0-9_]*)'; \
	  sed -n '/^#define TC_FUNCS/,/^static/p' $(SRC)/tlscache.c | grep -o 'F([A-Za-z0-9_]*)'; \
	  grep -o '"ERR_load_[A-Za-z0-9_]*"' $(SRC)/ossl.c; echo 'F(mxguard_ossl_init)'; } | \
	  tr -d '"' | sed 's/^F(\(.*\))$$/\1/' | sort -u > $@.tmp && mv $@.tmp $@
mxguard-ossl.map: mxguard-ossl.syms
	{ echo '{ global:'; sed 's/$$/;/' mxguard-ossl.syms; echo 'local: *; };'; } > $@
# the system's libssl.so.3 and libcrypto.so.3 (path, size, mtime) as they are now, compiled into
# ossl.o: when an update replaces them, mxguard-ossl.so is stale and ossl.c loads them instead
# until both are rebuilt (make reruns this rule, since the update replaces libssl.a and
# libcrypto.a too)
OSSL_SYSLIBS = $(shell readlink -f $$($(CC) -print-file-name=libssl.so.3) $$($(CC) -print-file-name=libcrypto.so.3))
mxguard-ossl-sys.inc: $(OSSL_A)
	for f in $(OSSL_SYSLIBS); do stat -L -c '{"%n", %sLL, %YLL},' "$$f" || exit 1; done > $@.tmp
	mv $@.tmp $@
ossl.o: mxguard-ossl-sys.inc
ossl.o: override EXTRA_CFLAGS += -DOSSL_SYSINC='"$(CURDIR)/mxguard-ossl-sys.inc"'
ossl_prov.o: ossl_prov.c conf-cc
	$(COMPILE) -fPIC -c $(SRC)/ossl_prov.c -o $@
mxguard-ossl.so: ossl_prov.o mxguard-ossl.syms mxguard-ossl.map
	$(CC) -shared -o $@ -Wl,-Bsymbolic -Wl,--version-script=mxguard-ossl.map \
	  -Wl,-z,now -Wl,-z,relro -Wl,--gc-sections $(EXTRA_LDFLAGS) \
	  $$(sed 's/^/-Wl,-u,/' mxguard-ossl.syms) ossl_prov.o $(OSSL_A) -pthread
clean: clean-ossl
clean-ossl:
	rm -f mxguard-ossl.syms mxguard-ossl.map mxguard-ossl-sys.inc
.PHONY: clean-ossl
# issue 14 item 2 (start-up): -fdata-sections with --sort-section=alignment was tried (the
# small variables a session touches packed together) and left out: 2-7 fewer page faults per
# exec, but the peak RSS of a 1 KB session went from 1 344 KB to 1 376 KB (bench/run (c)).
bench: bench-startup
bench-startup: all
	MXG_BIN=$(CURDIR) $(SRC)/bench/startup
# conf-order anew from callgrind runs of common sessions (then make again)
order: all
	MXG_BIN=$(CURDIR) MXG_SRC=$(SRC) $(SRC)/bench/order
.PHONY: order
.PHONY: bench-startup
# ---- mxguard-front (issue 14 item 5): the optional persistent listener in place of tcpserver
PROGS += mxguard-front
default all install: mxguard-front
# tarpit.o for its parsers and CONNRATE's key (it brings rules.o and the rest), store.o for
# CONNRATE in LMDB
FRONT_OBJS = $(sort mxguard-front.o handoff.o instruct.o tarpit.o store.o rules.o $(RULES_DEPS))
mxguard-front: $(FRONT_OBJS) conf-ld
	$(LINK) -o $@ $(FRONT_OBJS) $(LIBS) $(LIBS_STORE) 2>&1 | { grep -v $(STATIC_DLOPEN_NOTE) || true; } >&2
	test -f $@
mxguard-front.o: mxguard-front.c control.h dnsbl.h handoff.h instruct.h log.h store.h tarpit.h decision.h session.h conf-cc
	$(COMPILE) -c $(SRC)/mxguard-front.c -o $@
# both ends of the front's pre-started sessions (-P): the smtpd receives, the front sends
SMTPD_OBJS += handoff.o
mxguard-smtpd: handoff.o
handoff.o: handoff.c handoff.h conf-cc
	$(COMPILE) -c $(SRC)/handoff.c -o $@
smtpd.o: handoff.h
