#!/bin/sh
# Installs l4lb: scripts/install.sh BINARY   (called by `make install`)
#
# Environment (the Makefile passes its variables):
#   DESTDIR   staging root, prepended to every path below (default: empty)
#   PREFIX    /usr/local
#   SBINDIR   $PREFIX/sbin                 the binary
#   UNITDIR   /lib/systemd/system          l4lb.service
#   MANDIR    $PREFIX/share/man            l4lb(8), l4lb.yaml(5)
#   DOCDIR    $PREFIX/share/doc/l4lb       README.md, l4lb.yaml.example
# The config goes to /etc/l4lb/l4lb.yaml (the binary's default), only if none exists.
# The unit and the man pages are rewritten to name the paths actually used.
# Runs no systemctl: it prints the next steps instead.
set -eu

BIN=${1:?usage: scripts/install.sh BINARY}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SBINDIR=${SBINDIR:-$PREFIX/sbin}
UNITDIR=${UNITDIR:-/lib/systemd/system}
MANDIR=${MANDIR:-$PREFIX/share/man}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/l4lb}
CONFDIR=/etc/l4lb

for v in PREFIX SBINDIR UNITDIR MANDIR DOCDIR; do
  eval "p=\$$v"
  case $p in
    /*) ;;
    *) echo "install.sh: $v must be an absolute path, got \"$p\"" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || { echo "install.sh: $BIN is not an executable (run make first)" >&2; exit 1; }

# sed replacement text: escape \, & and the | delimiter.
esc() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }
subst() {  # subst SRC DEST MODE: copy SRC with the default paths replaced
  tmp="$2.tmp.$$"
  sed -e "s|/usr/local/sbin/l4lb|$(esc "$SBINDIR")/l4lb|g" \
      -e "s|/usr/local/share/doc/l4lb|$(esc "$DOCDIR")|g" \
      -e "s|/lib/systemd/system/l4lb.service|$(esc "$UNITDIR")/l4lb.service|g" \
      "$1" > "$tmp"
  chmod "$3" "$tmp"
  mv -f "$tmp" "$2"
}

install -d -m 0755 "$DESTDIR$SBINDIR" "$DESTDIR$UNITDIR" "$DESTDIR$MANDIR/man8" \
  "$DESTDIR$MANDIR/man5" "$DESTDIR$DOCDIR" "$DESTDIR$CONFDIR"
install -m 0755 "$BIN" "$DESTDIR$SBINDIR/l4lb"
subst "$ROOT/systemd/l4lb.service" "$DESTDIR$UNITDIR/l4lb.service" 0644
subst "$ROOT/docs/l4lb.8" "$DESTDIR$MANDIR/man8/l4lb.8" 0644
subst "$ROOT/docs/l4lb.yaml.5" "$DESTDIR$MANDIR/man5/l4lb.yaml.5" 0644
install -m 0644 "$ROOT/conf/l4lb.yaml" "$DESTDIR$DOCDIR/l4lb.yaml.example"
install -m 0644 "$ROOT/README.md" "$DESTDIR$DOCDIR/README.md"
# logrotate for the access log (SIGUSR1 reopens it); under /etc like the config.
install -d -m 0755 "$DESTDIR/etc/logrotate.d"
install -m 0644 "$ROOT/conf/logrotate.d/l4lb" "$DESTDIR/etc/logrotate.d/l4lb"

# The config: readable by the unit's dynamic user; an existing one is never touched.
if [ -e "$DESTDIR$CONFDIR/l4lb.yaml" ]; then
  config_note="kept the existing $CONFDIR/l4lb.yaml (the new example is $DOCDIR/l4lb.yaml.example)"
else
  install -m 0644 "$ROOT/conf/l4lb.yaml" "$DESTDIR$CONFDIR/l4lb.yaml"
  config_note="installed the example as $CONFDIR/l4lb.yaml"
fi

cat <<EOF
l4lb installed under ${DESTDIR:-/}: $SBINDIR/l4lb, $UNITDIR/l4lb.service,
man pages l4lb(8) and l4lb.yaml(5) in $MANDIR; $config_note.
Next steps (nothing was started or enabled):
  1. edit $CONFDIR/l4lb.yaml, then check it:  $SBINDIR/l4lb -t -c $CONFDIR/l4lb.yaml
  2. systemctl daemon-reload
  3. systemctl enable --now l4lb
  4. after editing the config:                 systemctl reload l4lb
     logs:                                    journalctl -u l4lb
EOF
