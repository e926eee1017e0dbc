#!/bin/sh
# install.sh - "make install" / "make uninstall": the programs into QMAILHOME/bin with qmail's
# owners and modes (root:qmail 755), the man pages into MANDIR, the tree's control/ defaults
# copied only where absent, the state directory QMAILHOME/mxguard/state owned by the user the
# smtpd runs as (SMTPDUSER, qmaild). DESTDIR is put in front of every path. When not run as
# root, or when the qmail users do not exist, the files keep the installing user's owner and a
# warning says so. Environment: DESTDIR QMAILHOME MANDIR SRC (from the Makefile), SMTPDUSER.
set -e
: "${QMAILHOME:?}" "${MANDIR:?}" "${SRC:=.}"
SMTPDUSER=${SMTPDUSER:-qmaild}
PROGS="mxguard-smtpd mxguard-users mxguard-rules mxguard-check mxguard-stats mxguard-import mxguard-tlscache"
# OpenSSL for STARTTLS, loaded by mxguard-smtpd from beside itself (ossl.c)
PROGS="$PROGS mxguard-ossl.so"
PROGS="$PROGS mxguard-front"
home=$DESTDIR$QMAILHOME
man=$DESTDIR$MANDIR

warn() { echo "install.sh: warning: $*" >&2; }

owner=
if [ "$(id -u)" = 0 ]; then
  if getent group qmail >/dev/null; then owner=root:qmail
  else warn "group qmail does not exist: files stay root-owned (run qmail's own install first)"; fi
else
  warn "not root: files stay owned by $(id -un)"
fi
own() { [ -z "$owner" ] || chown "$owner" "$@"; }

case $1 in
install)
  mkdir -p "$home/bin" "$home/control" "$man/man7" "$man/man8"
  for p in $PROGS; do
    cp "$p" "$home/bin/$p.new"
    own "$home/bin/$p.new"
    chmod 755 "$home/bin/$p.new"
    mv -f "$home/bin/$p.new" "$home/bin/$p"   # atomic: a running tcpserver never sees half a file
    echo "installed $home/bin/$p"
  done
  for m in "$SRC"/man/*.[78]; do
    [ -f "$m" ] || continue
    s=${m##*.}
    cp "$m" "$man/man$s/"
    own "$man/man$s/${m##*/}"
    chmod 644 "$man/man$s/${m##*/}"
  done
  echo "installed man pages into $man"
  for c in "$SRC"/control/*; do
    f=${c##*/}
    [ -f "$c" ] && [ "$f" != README ] || continue
    if [ -e "$home/control/$f" ]; then
      echo "kept $home/control/$f (exists)"
    else
      cp "$c" "$home/control/$f"
      own "$home/control/$f"
      chmod 644 "$home/control/$f"
      echo "installed default $home/control/$f"
    fi
  done
  mkdir -p "$home/mxguard/state"
  chmod 755 "$home/mxguard"
  chmod 700 "$home/mxguard/state"
  if [ "$(id -u)" = 0 ] && id "$SMTPDUSER" >/dev/null 2>&1; then
    chown "$SMTPDUSER:$(id -gn "$SMTPDUSER")" "$home/mxguard/state"
  else
    warn "user $SMTPDUSER does not exist or not root: $home/mxguard/state left owned by $(id -un);" \
      "chown it to the user mxguard-smtpd runs as"
  fi
  if [ -e "$home/control/me" ] || [ -e "$home/control/smtpgreeting" ]; then
    # what the service run scripts will check before they start
    if QMAILHOME=$home "$home/bin/mxguard-check"; then echo "mxguard-check: no findings"
    else warn "mxguard-check reported the findings above: fix them before starting the service"; fi
  else
    warn "$home/control/me does not exist: qmail is not configured here yet"
  fi
  ;;
uninstall)
  for p in $PROGS; do rm -f "$home/bin/$p" && echo "removed $home/bin/$p"; done
  for m in "$SRC"/man/*.[78]; do
    [ -f "$m" ] || continue
    rm -f "$man/man${m##*.}/${m##*/}"
  done
  echo "removed man pages from $man"
  echo "left in place: $home/control (your configuration) and $home/mxguard/state (remove by hand)"
  ;;
*) echo "usage: install.sh install|uninstall" >&2; exit 100 ;;
esac
