# vmingest - one GNU Makefile.
#
#   make              build build/vmingestd, build/vmingest, the libraries
#   make check        unit tests, fuzz seed replay, e2e tests (+ corpus if present)
#   make check-unit   cmocka unit tests only
#   make check-e2e    pytest end-to-end tests only (E2E_ARGS=-k... to select)
#   make check-corpus CORPUS=../shared/corpus   corpus under ASan+UBSan
#   make demo         build, start vmingestd on ./var, feed sample mail, show it
#   make bench        reproducible benchmarks, results in bench/RESULTS.md
#   make fuzz         build the libFuzzer harnesses (clang)
#   make asan         build everything with ASan+UBSan into build-asan/
#   make install      PREFIX=/usr/local DESTDIR=
#   make clean
#
# Sources are picked up by directory: lib/*.c form libvmingest.a (pure
# logic), daemon/*.c the daemon (main.c apart, so tests can link the rest),
# client/*.c the subscriber library except the CLI (client/vmingest.c and
# client/cmd_*.c).  A new module needs no Makefile edit.

VERSION  := 0.1.0
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
CORPUS   ?= ../shared/corpus
PYTHON   ?= /usr/bin/python3
CC       ?= cc

PKGS     := gmime-3.0 glib-2.0 libprotobuf-c lmdb libzmq libmicrohttpd inih jansson libsystemd libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# -Wall -Wextra and the OpenSMTPD set (usr.sbin/smtpd/smtpd/Makefile).
WARN     := -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes \
	    -Wmissing-declarations -Wshadow -Wpointer-arith -Wcast-qual \
	    -Wsign-compare -Wformat=2 -Wno-unused-parameter
OPT      ?= -O2 -g
SAN      ?=
ifeq ($(SAN),1)
OPT      := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif
CPPFLAGS += -D_GNU_SOURCE -DVMI_VERSION=\"$(VERSION)\" -iquote lib -iquote daemon -iquote client -isystem $(BUILD)/gen
CFLAGS   += -std=gnu11 $(OPT) $(WARN) -pthread $(PKG_CFLAGS)
LDFLAGS  += -pthread $(filter -fsanitize%,$(OPT))
LDLIBS   += $(PKG_LIBS) -lm

GEN      := $(BUILD)/gen
PROTO_C  := $(GEN)/vmingest.pb-c.c
PROTO_H  := $(GEN)/vmingest.pb-c.h

LIB_SRC    := $(sort $(wildcard lib/*.c)) $(PROTO_C)
DAEMON_SRC := $(filter-out daemon/main.c,$(sort $(wildcard daemon/*.c)))
CLI_SRC    := $(sort client/vmingest.c $(wildcard client/cmd_*.c))
CLIENT_SRC := $(filter-out $(CLI_SRC),$(sort $(wildcard client/*.c)))
TEST_SRC   := $(sort $(wildcard tests/unit/test_*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(patsubst $(GEN)/%,gen/%,$(1)))

LIB_OBJ    := $(call obj,$(LIB_SRC))
DAEMON_OBJ := $(call obj,$(DAEMON_SRC))
CLIENT_OBJ := $(call obj,$(CLIENT_SRC))
CLI_OBJ    := $(call obj,$(CLI_SRC))
TESTS      := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRC))

LIBVMI     := $(BUILD)/libvmingest.a
LIBVMID    := $(BUILD)/libvmingestd.a
LIBCLIENT  := $(BUILD)/libvmingest-client.a
ALL_LIBS   := $(LIBVMID) $(LIBCLIENT) $(LIBVMI)

.PHONY: all deps check check-unit check-e2e check-corpus check-fuzz demo bench \
	fuzz asan install clean man

all: $(BUILD)/vmingestd $(BUILD)/vmingest $(LIBCLIENT) man

# Install missing Debian packages (no-op when all are present).
deps:
	@deploy/install-deps.sh --check >/dev/null 2>&1 || deploy/install-deps.sh

$(PROTO_C) $(PROTO_H): proto/vmingest.proto
	@mkdir -p $(GEN)
	protoc-c --proto_path=proto --c_out=$(GEN) proto/vmingest.proto

$(BUILD)/obj/gen/%.o: $(GEN)/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-missing-prototypes -Wno-cast-qual -c -o $@ $<

$(BUILD)/obj/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIBVMI): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(LIBVMID): $(DAEMON_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(LIBCLIENT): $(CLIENT_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/vmingestd: $(BUILD)/obj/daemon/main.o $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $< $(ALL_LIBS) $(LDLIBS)

$(BUILD)/vmingest: $(CLI_OBJ) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(ALL_LIBS) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-missing-prototypes -Wno-missing-declarations \
	    -DTEST_DATA=\"$(CURDIR)/tests/data\" -o $@ $< $(LDFLAGS) $(ALL_LIBS) $(LDLIBS) \
	    $(shell pkg-config --libs cmocka)

# ---- man pages: docs/man/*.md -> build/man/* (pandoc-free: see docs/man) ----
MAN_SRC  := $(wildcard docs/man/*.[1-8])
man: $(MAN_SRC)

# ---- tests ----
# check, demo and bench install missing packages first, then build in a
# fresh make: pkg-config above is evaluated when make starts, before deps.
check: deps
	@$(MAKE) --no-print-directory all $(TESTS)
	@$(MAKE) --no-print-directory check-unit
	@$(MAKE) --no-print-directory check-fuzz
	@if [ -d "$(CORPUS)" ]; then $(MAKE) --no-print-directory check-corpus; \
	 else echo "check-corpus: $(CORPUS) not found, skipped"; fi
	@$(MAKE) --no-print-directory check-e2e

check-unit: $(TESTS)
	@tests/run-unit.sh $(TESTS)

check-e2e: all
	VMI_BUILD=$(CURDIR)/$(BUILD) VMI_CORPUS=$(abspath $(CORPUS)) \
	    $(PYTHON) -m pytest -q -ra tests/e2e $(E2E_ARGS)

# Corpus and fuzz seeds run under ASan+UBSan in build-asan/.
check-corpus:
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 build-asan/tests/corpus_check
	ASAN_OPTIONS=detect_leaks=1 build-asan/tests/corpus_check $(abspath $(CORPUS))

check-fuzz:
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 $(patsubst tests/fuzz/%.c,build-asan/tests/%,$(wildcard tests/fuzz/fuzz_*.c))
	@tests/fuzz/replay.sh build-asan/tests

$(BUILD)/tests/corpus_check: tests/corpus_check.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS) $(ALL_LIBS) $(LDLIBS)

# A fuzz harness is built two ways: as a replay binary (tests/fuzz/standalone.c
# gives it a main) for check-fuzz, and with clang -fsanitize=fuzzer by `make fuzz`.
$(BUILD)/tests/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/standalone.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-missing-prototypes -o $@ $< tests/fuzz/standalone.c \
	    $(LDFLAGS) $(ALL_LIBS) $(LDLIBS)

fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang SAN=1 \
	    OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined" \
	    build-fuzz/libvmingest.a build-fuzz/libvmingestd.a build-fuzz/libvmingest-client.a
	@mkdir -p build-fuzz/fuzz
	for f in tests/fuzz/fuzz_*.c; do \
	    n=$$(basename $$f .c); \
	    clang $(CPPFLAGS:$(BUILD)/gen=build-fuzz/gen) -Ibuild-fuzz/gen $(PKG_CFLAGS) -g -O1 \
	        -fsanitize=fuzzer,address,undefined -o build-fuzz/fuzz/$$n $$f \
	        build-fuzz/libvmingestd.a build-fuzz/libvmingest-client.a build-fuzz/libvmingest.a $(LDLIBS) || exit 1; \
	done
	@echo "run: build-fuzz/fuzz/fuzz_NAME tests/fuzz/seeds/NAME"

asan:
	$(MAKE) BUILD=build-asan SAN=1 all

demo: deps
	@$(MAKE) --no-print-directory all
	@tests/demo.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh $(BUILD)

# Benchmark helpers (bench/*.c), built on demand by the bench/*.sh scripts.
$(BUILD)/bench/%: bench/%.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS) $(ALL_LIBS) $(LDLIBS)

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	    $(DESTDIR)$(PREFIX)/share/doc/vmingest $(DESTDIR)/etc/vmingest
	install -m 0755 $(BUILD)/vmingestd $(DESTDIR)$(PREFIX)/sbin/vmingestd
	install -m 0755 $(BUILD)/vmingest $(DESTDIR)$(PREFIX)/bin/vmingest
	install -m 0644 $(LIBCLIENT) $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 client/vmingest-client.h $(DESTDIR)$(PREFIX)/include/ 2>/dev/null || true
	install -m 0644 config/vmingestd.conf $(DESTDIR)/etc/vmingest/vmingestd.conf
	install -m 0644 README.md docs/*.md proto/vmingest.proto $(DESTDIR)$(PREFIX)/share/doc/vmingest/
	@if [ -f deploy/install.mk ]; then $(MAKE) -f deploy/install.mk PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) BUILD=$(BUILD); fi

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
