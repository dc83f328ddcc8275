# deploy/install.mk - install the host integration the Debian way.
#
# Called by `make install` after the binaries, the library and the config
# are in place:
#
#   make -f deploy/install.mk PREFIX=/usr DESTDIR=/tmp/pkg BUILD=build
#
# It installs:
#   the systemd unit       UNITDIR/vmingestd.service (binary path filled in)
#   sysusers.d, tmpfiles.d SYSUSERSDIR/vmingest.conf, TMPFILESDIR/vmingest.conf
#   man pages              MANDIR/man{1,5,8}/*.gz (gzip -9n, as Debian policy)
#   Postfix snippets       DOCDIR/postfix/ (examples: main.cf, mailbox map)
#
# With PREFIX=/usr (a package) the unit, sysusers and tmpfiles go where
# systemd.pc says; with any other prefix (/usr/local) under /etc, since
# systemd-sysusers and systemd-tmpfiles do not read /usr/local.  Nothing is
# started, enabled or created on the running system: after installing,
# run systemd-sysusers, systemd-tmpfiles --create, then
# systemctl enable --now vmingestd (docs/OPERATIONS.md).

PREFIX    ?= /usr/local
DESTDIR   ?=
BUILD     ?= build
INSTALL   ?= install

SBINDIR   ?= $(PREFIX)/sbin
MANDIR    ?= $(PREFIX)/share/man
DOCDIR    ?= $(PREFIX)/share/doc/vmingest
# A package (PREFIX=/usr) uses the directories systemd.pc names (Debian 12:
# /lib/systemd/system, /usr/lib/sysusers.d, /usr/lib/tmpfiles.d).
sdvar = $(or $(shell pkg-config --variable=$(1) systemd 2>/dev/null),$(2))
ifeq ($(PREFIX),/usr)
UNITDIR     ?= $(call sdvar,systemdsystemunitdir,/usr/lib/systemd/system)
SYSUSERSDIR ?= $(call sdvar,sysusersdir,/usr/lib/sysusers.d)
TMPFILESDIR ?= $(call sdvar,tmpfilesdir,/usr/lib/tmpfiles.d)
else
UNITDIR     ?= /etc/systemd/system
SYSUSERSDIR ?= /etc/sysusers.d
TMPFILESDIR ?= /etc/tmpfiles.d
endif

MAN1 := $(wildcard docs/man/*.1)
MAN5 := $(wildcard docs/man/*.5)
MAN8 := $(wildcard docs/man/*.8)

.PHONY: install-deploy
install-deploy:
	$(INSTALL) -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	    $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(DOCDIR)/postfix
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
	    deploy/systemd/vmingestd.service > $(DESTDIR)$(UNITDIR)/vmingestd.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/vmingestd.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/vmingestd.service.tmp $(DESTDIR)$(UNITDIR)/vmingestd.service
	$(INSTALL) -m 0644 deploy/sysusers.d/vmingest.conf $(DESTDIR)$(SYSUSERSDIR)/vmingest.conf
	$(INSTALL) -m 0644 deploy/tmpfiles.d/vmingest.conf $(DESTDIR)$(TMPFILESDIR)/vmingest.conf
	$(INSTALL) -m 0644 deploy/postfix/main.cf deploy/postfix/vmingest_mailboxes \
	    $(DESTDIR)$(DOCDIR)/postfix/
	set -e; for p in $(MAN1) $(MAN5) $(MAN8); do \
	    s=$${p##*.}; n=$$(basename $$p); \
	    gzip -9n -c $$p > $(DESTDIR)$(MANDIR)/man$$s/$$n.gz; \
	    chmod 0644 $(DESTDIR)$(MANDIR)/man$$s/$$n.gz; \
	done
