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
  valuser.o valsql.o dnsbl.o rules.o
PROGS = mxguard-smtpd qq-maildir mxguard-users
TESTPROGS = tests/qq-recorder tests/t_addr tests/t_control tests/t_data tests/t_queue \
  tests/t_instruct tests/t_log tests/t_stock tests/t_valuser tests/t_auth \
  tests/t_dnsbl
BENCHPROGS = bench/banner bench/qq-sink
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
# Static libcares brings getservbyname (ares_getaddrinfo) and getservbyport_r (ares_getnameinfo):
# dnsbl.c only calls ares_query, which never asks for a service name, so neither runs.
STATIC_DLOPEN_NOTE += -e "libcares_la-ares_getaddrinfo.o): in function .ares_getaddrinfo.:" \
  -e "libcares_la-ares_getnameinfo.o): in function .lookup_service" \
  -e "^(.text+0x[0-9a-f]*): warning: Using .getservbyname. in statically linked" \
  -e "^(.text+0x[0-9a-f]*): warning: Using .getservbyport_r. in statically linked"
mxguard-smtpd: $(SMTPD_OBJS) conf-ld
	rm -f $@
	$(LINK) -o $@ $(SMTPD_OBJS) $(LIBS) 2>&1 | { grep -v $(STATIC_DLOPEN_NOTE) || true; } >&2
	test -f $@

qq-maildir: qq-maildir.o conf-ld
	$(LINK) -o $@ qq-maildir.o $(LIBS)

smtpd.o: smtpd.c addr.h auth.h content.h control.h data.h decision.h instruct.h io.h log.h queue.h session.h \
  stock.h tls.h dnsbl.h conf-cc
	$(COMPILE) -c $(SRC)/smtpd.c -o $@
dnsbl.o: dnsbl.c dnsbl.h control.h decision.h io.h log.h session.h conf-cc
	$(COMPILE) -c $(SRC)/dnsbl.c -o $@
addr.o: addr.c addr.h conf-cc
	$(COMPILE) -c $(SRC)/addr.c -o $@
auth.o: auth.c auth.h decision.h conf-cc
	$(COMPILE) -c $(SRC)/auth.c -o $@
tls.o: tls.c tls.h ossl.h control.h io.h conf-cc
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
queue.o: queue.c queue.h conf-cc
	$(COMPILE) -c $(SRC)/queue.c -o $@
stock.o: stock.c stock.h control.h decision.h session.h conf-cc
	$(COMPILE) -c $(SRC)/stock.c -o $@
valuser.o: valuser.c valuser.h valsql.h control.h decision.h log.h session.h conf-cc
	$(COMPILE) -c $(SRC)/valuser.c -o $@
ossl.o: ossl.c ossl.h conf-cc
	$(COMPILE) -c $(SRC)/ossl.c -o $@
valsql.o: valsql.c valsql.h control.h conf-cc
	$(COMPILE) -I/usr/include/mariadb -c $(SRC)/valsql.c -o $@
# mxguard-users: valuser's live lookup over every backend into one cdb (run as root from cron;
# linked dynamically: start-up cost does not matter, getpwent/NSS and dlopen do)
mxguard-users: mxguard-users.o valuser.o valsql.o control.o log.o conf-ld
	$(subst -static,,$(LINK)) -o $@ mxguard-users.o valuser.o valsql.o control.o log.o $(LIBS)
mxguard-users.o: mxguard-users.c valuser.h valsql.h control.h conf-cc
	$(COMPILE) -c $(SRC)/mxguard-users.c -o $@
rules.o: rules.c rules.h decision.h session.h conf-cc
	$(COMPILE) -c $(SRC)/rules.c -o $@
qq-maildir.o: qq-maildir.c conf-cc
	$(COMPILE) -c $(SRC)/qq-maildir.c -o $@

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
tests/t_queue: tests/t_queue.c queue.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_queue.c queue.o $(LIBS)
tests/t_instruct: tests/t_instruct.c instruct.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_instruct.c instruct.o $(LIBS)
tests/t_log: tests/t_log.c log.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_log.c log.o $(LIBS)
tests/t_valuser: tests/t_valuser.c valuser.o valsql.o control.o log.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_valuser.c valuser.o valsql.o control.o log.o $(LIBS)
tests/t_auth: tests/t_auth.c auth.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_auth.c auth.o $(LIBS)
tests/t_dnsbl: tests/t_dnsbl.c dnsbl.o control.o io.o log.o tests/check.h tests/.dir
	$(COMPILE) -o $@ $(SRC)/tests/t_dnsbl.c dnsbl.o control.o io.o log.o $(LIBS)
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

deps:
	$(SRC)/install-deps

demo: deps $(PROGS)
	$(SRC)/tests/demo

check: deps
	$(SRC)/tests/check

bench: all
	$(SRC)/bench/run
	$(SRC)/bench/valuser
	$(SRC)/bench/dns
	$(SRC)/bench/tls

clean:
	rm -f *.o bench/*.o $(PROGS) $(TESTPROGS) $(BENCHPROGS) tests/fuzz_smtpd tests/fuzz_mime tests/fuzz_content tests/.dir bench/.dir
	rm -rf san

.PHONY: default all deps demo check bench clean
