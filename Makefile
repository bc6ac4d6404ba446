# pgque: build, install and test. Plain make (no PGXS): the extension is SQL only.
#
#   make                  generate extension/pgque--<version>.sql from extension/src/*.sql
#                         and the upgrade scripts from extension/upgrade/*.sql
#   make check-generated  fail if a committed generated script is stale, or a
#                         released one changed (extension/releases.sha256)
#   make install          copy control + script into $(PG_CONFIG) --sharedir/extension
#   make pgtest           install, then run pg_tests/ with pg_regress on a temp instance
#   make isotest          install, then run the isolation specs in pg_tests/isolation
#   make gotest           install, then run the Go tests (as an unprivileged user)
#   make gotest-caller    install, then run pgquetest's tests as the caller (root too)
#   make test             everything CI runs (.ci/run calls exactly this); it
#                         first installs what is missing (scripts/setup.sh)
#   make test-matrix      pgtest, isotest and gotest on each PostgreSQL major
#                         of PG_VERSIONS (default 15 16 17 18; scripts/pg-fetch.sh)
#   make bench            install, then run `pgque bench` (flags in BENCH_FLAGS)
#   make demo             install, then run `pgque demo` (flags in DEMO_FLAGS)
#   make failovertest     the failover test: a primary crashed
#                         under load, its synchronous standby promoted (.ci/run
#                         runs it after make test; flags in FAILOVERTEST_FLAGS)

PG_CONFIG ?= pg_config
# Go's own installer puts it in /usr/local/go; scripts/setup.sh checks it.
export PATH := $(PATH):/usr/local/go/bin

# PG_BIN: the bin directory of a relocatable PostgreSQL build to test
# against instead of pg_config's, as scripts/pg-fetch.sh prints (test-matrix
# sets it); the Go tests get it as $PGQUE_PG_BIN.
PG_BIN ?=
ifeq ($(PG_BIN),)
# Lazily evaluated (=) so `make`/`make check-generated` work without pg_config.
PG_BINDIR   = $(shell $(PG_CONFIG) --bindir)
PG_EXTDIR   = $(shell $(PG_CONFIG) --sharedir)/extension
PG_PGXS     = $(patsubst %/src/makefiles/pgxs.mk,%,$(shell $(PG_CONFIG) --pgxs))
else
PG_BINDIR   = $(PG_BIN)
PG_EXTDIR   = $(abspath $(PG_BIN)/../share/postgresql/extension)
PG_PGXS     = $(abspath $(PG_BIN)/../lib/postgresql/pgxs)
export PGQUE_PG_BIN := $(PG_BIN)
# Its isolationtester finds its libpq only this way (its RUNPATH is its
# build machine's).
PG_DRIVER_ENV = env LD_LIBRARY_PATH=$(abspath $(PG_BIN)/../lib)
endif
# pg_regress is not on PATH; it ships beside the PGXS makefiles.
PG_REGRESS  = $(PG_PGXS)/src/test/regress/pg_regress
PG_ISOLATION_REGRESS = $(PG_PGXS)/src/test/isolation/pg_isolation_regress

# The version being built is the control file's default_version.
EXT_VERSION = $(shell sed -n "s/^default_version *= *'\\(.*\\)'/\\1/p" extension/pgque.control)
EXT_SCRIPT  = extension/pgque--$(EXT_VERSION).sql
EXT_UPGRADE_SRC = $(wildcard extension/upgrade/*.sql)
EXT_CONTROL = extension/pgque.control
# GNU make's $(sort) compares bytes, i.e. LC_ALL=C filename order.
EXT_SRC     = $(sort $(wildcard extension/src/*.sql))
PG_TESTS    = $(sort $(basename $(notdir $(wildcard pg_tests/sql/*.sql))))
ISO_TESTS   = $(sort $(basename $(notdir $(wildcard pg_tests/isolation/specs/*.spec))))

.PHONY: all check-generated install uninstall pgtest isotest gotest gotest-caller setuptest test test-matrix matrix-one bench demo demo-run clean failovertest
.DEFAULT_GOAL := all

all: $(EXT_SCRIPT)

# extension/gen writes the install script of the control file's version
# and the upgrade scripts to it, and checks the released ones
# (extension/releases.sha256).  Go builds it: Go is needed for everything
# but pure SQL work anyway.
EXT_GEN     = go run ./extension/gen

$(EXT_SCRIPT): $(EXT_SRC) $(EXT_UPGRADE_SRC) extension/src extension/upgrade extension/gen/main.go $(EXT_CONTROL) extension/releases.sha256
	@$(EXT_GEN)
	@touch $@

check-generated:
	@$(EXT_GEN) -check

install: $(EXT_SCRIPT)
	@test -n "$(PG_EXTDIR:/extension=)" || { echo "install: '$(PG_CONFIG) --sharedir' failed" >&2; exit 1; }
	install -d $(DESTDIR)$(PG_EXTDIR)
	install -m 644 $(EXT_CONTROL) extension/pgque--*.sql $(DESTDIR)$(PG_EXTDIR)/

uninstall:
	rm -f $(DESTDIR)$(PG_EXTDIR)/pgque.control $(DESTDIR)$(PG_EXTDIR)/pgque--*.sql

# pg_regress runs through scripts/run-unprivileged.sh because initdb/postgres
# refuse to run as root. That user may not be able to read this checkout (e.g.
# under /root), so the tests are copied into a scratch dir handed to it, which
# also holds the temp instance and all outputs. Kept on failure, removed on success.
# Settings for the temp instance can go in pg_tests/regress.conf.
PGTEST_OPTS = --no-locale --encoding=UTF8

# run_regress(driver, dir, extra options, tests): run a pg_regress-style
# driver on a temp instance, in a scratch copy of pg_tests/ (outputs in
# $$scratch/pg_tests/<dir>), printing the diffs on failure.
define run_regress
@test -x "$(1)" || { echo "$@: $(notdir $(1)) not found at '$(1)'" \
  "(Debian: apt-get install postgresql-server-dev-15)" >&2; exit 1; }
@test -n "$(4)" || { echo "$@: no tests in pg_tests/$(2)" >&2; exit 1; }
@set -e; scratch=$$(mktemp -d /tmp/pgque-$@.XXXXXX); \
cp -R pg_tests "$$scratch/pg_tests"; d="$$scratch/pg_tests/$(2)"; \
rm -rf "$$d/results" "$$d/log" "$$d/tmp_check" "$$d"/regression.*; \
conf=; if [ -f "$$scratch/pg_tests/regress.conf" ]; then conf="--temp-config=$$scratch/pg_tests/regress.conf"; fi; \
if (cd "$$scratch" && "$(CURDIR)/scripts/run-unprivileged.sh" --chown "$$scratch" -- \
      $(PG_DRIVER_ENV) "$(1)" --temp-instance="$$scratch/tmp_check" --bindir="$(PG_BINDIR)" \
      --inputdir="$$d" --outputdir="$$d" $(PGTEST_OPTS) $(3) $$conf $(4)); then \
  rm -rf "$$scratch"; \
else \
  if [ -s "$$d/regression.diffs" ]; then \
    n=$$(wc -l < "$$d/regression.diffs"); \
    echo "======== regression.diffs ($$n lines) ========"; \
    head -n 300 "$$d/regression.diffs"; \
    [ "$$n" -le 300 ] || echo "======== truncated; full file: $$d/regression.diffs ========"; \
  else \
    for f in "$$d"/log/*.log "$$scratch"/tmp_check/log/*.log; do \
      if [ -f "$$f" ]; then echo "======== $$f (last 50 lines) ========"; tail -n 50 "$$f"; fi; \
    done; \
  fi; \
  echo "$@: FAILED; outputs kept in $$scratch" >&2; exit 1; \
fi
endef

pgtest: install
	$(call run_regress,$(PG_REGRESS),.,,$(PG_TESTS))

# The isolation specs: races between sessions (pg_isolation_regress).
isotest: install
	$(call run_regress,$(PG_ISOLATION_REGRESS),isolation,--load-extension=pgque,$(ISO_TESTS))

# Go tests start their own servers (go/pgque/pgquetest), so they too run as
# the unprivileged user, on a copy of the tree it can read.  Installing first
# lets them use CREATE EXTENSION; the plain-SQL install path is tested too.
GOTEST_FLAGS ?= -race -count=1
GOTEST_PKGS  ?= ./...

gotest: install
	@set -e; scratch=$$(mktemp -d /tmp/pgque-gotest.XXXXXX); \
	tar --exclude=./.git -cf - . | tar -xf - -C "$$scratch"; \
	if (cd "$$scratch" && "$(CURDIR)/scripts/run-unprivileged.sh" --chown "$$scratch" -- \
	      go test $(GOTEST_FLAGS) $(GOTEST_PKGS)); then \
	  rm -rf "$$scratch"; \
	else \
	  echo "gotest: FAILED (tree copy kept in $$scratch)" >&2; exit 1; \
	fi

# pgquetest once more as the user running make (root in CI and most
# containers), the way users' own tests run it: not through
# run-unprivileged.sh, so that it must run its server as another user.
gotest-caller: install
	go test $(GOTEST_FLAGS) ./go/pgque/pgquetest/

# scripts/setup.sh as on a fresh machine (mount namespaces hide PostgreSQL
# and Go).  It makes mount namespaces, so it runs as root only, as in CI.
setuptest:
	@if [ "$$(id -u)" -eq 0 ]; then scripts/test-setup.sh; \
	else echo "setuptest: not run: it needs root (mount namespaces); CI runs it"; fi

# scripts/setup.sh installs what is missing (or says how) before anything;
# check-generated must run before anything can regenerate the script.
test:
	@scripts/setup.sh test
	@$(MAKE) --no-print-directory check-generated
	@$(MAKE) --no-print-directory setuptest
	@$(MAKE) --no-print-directory pgtest
	@$(MAKE) --no-print-directory isotest
	@$(MAKE) --no-print-directory gotest
	@$(MAKE) --no-print-directory gotest-caller

# The SQL suite and the Go tests on each major version: 15 is the system's
# (pg_config), the others builds scripts/pg-fetch.sh fetches into a cache.
# Each version's time is printed; a failure stops at that version.
PG_VERSIONS ?= 15 16 17 18
MATRIX_GOTEST_FLAGS ?= $(GOTEST_FLAGS)

test-matrix:
	@scripts/setup.sh test
	@set -e; for v in $(PG_VERSIONS); do \
	  start=$$(date +%s); echo "==== test-matrix: PostgreSQL $$v ===="; \
	  if [ "$$v" = 15 ]; then bin=; else bin=$$(scripts/pg-fetch.sh $$v); fi; \
	  $(MAKE) --no-print-directory matrix-one PG_BIN="$$bin" GOTEST_FLAGS="$(MATRIX_GOTEST_FLAGS)" || \
	    { echo "test-matrix: PostgreSQL $$v FAILED" >&2; exit 1; }; \
	  echo "==== test-matrix: PostgreSQL $$v passed in $$(( $$(date +%s) - start )) s ===="; \
	done

matrix-one: pgtest isotest gotest

clean:
	rm -rf pg_tests/results pg_tests/log pg_tests/tmp_check \
	       pg_tests/regression.diffs pg_tests/regression.out $(EXT_SCRIPT).tmp

# `pgque bench` against a throwaway server it starts (as an unprivileged user
# when run as root), or the server of --dsn / $PGQUE_DSN.  Installing first
# makes CREATE EXTENSION use this tree's engine.  Examples:
#   make bench BENCH_FLAGS='--scenarios produce,consume --duration 5s'
#   make bench BENCH_FLAGS='--json bench.json'
BENCH_FLAGS ?=

bench: install
	scripts/setup.sh bench
	go run ./go/cmd/pgque bench $(BENCH_FLAGS)

# `pgque demo`: a producer, consumers and the ticker on a throwaway server
# (or the server of --dsn / $PGQUE_DSN), with live counts and latency.  The
# README's first command, so it must work on a fresh machine: scripts/setup.sh
# installs the PostgreSQL server when it is missing (or says how).  Where the
# extension files can be installed (as `make install` does) the demo uses
# CREATE EXTENSION with this tree's engine on the server of that pg_config;
# where they cannot (no pg_config, or its extension directory is not
# writable, as for a normal user) the demo installs the same engine into its
# database as plain SQL.  Examples:
#   make demo DEMO_FLAGS='--duration 1m --rate 500'
#   make demo DEMO_FLAGS='--duration 0'      # until Ctrl-C
DEMO_FLAGS ?=
DEMO_SHAREDIR = $(shell $(PG_CONFIG) --sharedir 2>/dev/null)
DEMO_BINDIR   = $(shell $(PG_CONFIG) --bindir 2>/dev/null)

# A make of its own after the setup, so that pg_config is asked only then.
# With $PGQUE_DSN the demo uses that database and starts no server, so it
# gets no --pg-bin (which does not go with a DSN).
demo:
	@scripts/setup.sh demo
	@$(MAKE) --no-print-directory demo-run

demo-run: $(EXT_SCRIPT)
	@ext="$(DEMO_SHAREDIR)/extension"; \
	if [ -n "$(DEMO_SHAREDIR)" ] && { [ -w "$$ext" ] || { [ ! -e "$$ext" ] && [ -w "$(DEMO_SHAREDIR)" ]; }; }; then \
	  $(MAKE) --no-print-directory install && { \
	  pgbin="--pg-bin=$(DEMO_BINDIR)"; [ -z "$$PGQUE_DSN" ] || pgbin=; \
	  go run ./go/cmd/pgque demo $$pgbin $(DEMO_FLAGS); }; \
	else \
	  if [ -z "$(DEMO_SHAREDIR)" ]; then why="there is no $(PG_CONFIG) (PostgreSQL's server development files)"; \
	  else why="$$ext is not writable"; fi; \
	  echo "demo: $$why, so the demo installs this tree's engine into its own database as plain SQL"; \
	  go run ./go/cmd/pgque demo --sql-install $(DEMO_FLAGS); \
	fi

# The failover test (go/pgque/failover_test.go, build tag failover): a
# primary crashed under load and its synchronous standby promoted, with
# consumers, producers and a ticker on a multi-host DSN.  A target of its
# own, which .ci/run runs after make test: it starts two servers of its
# own, and plain go test leaves it out.  Like gotest, it runs as the
# unprivileged user on a copy of the tree; it installs pgque as plain SQL,
# so it needs no make install (only the generated script it embeds).
FAILOVERTEST_FLAGS ?= -race -count=1

failovertest: $(EXT_SCRIPT)
	@set -e; scratch=$$(mktemp -d /tmp/pgque-failovertest.XXXXXX); \
	tar --exclude=./.git -cf - . | tar -xf - -C "$$scratch"; \
	if (cd "$$scratch" && "$(CURDIR)/scripts/run-unprivileged.sh" --chown "$$scratch" -- \
	      go test -tags failover -run '^TestFailover$$' $(FAILOVERTEST_FLAGS) ./go/pgque/); then \
	  rm -rf "$$scratch"; \
	else \
	  echo "failovertest: FAILED (tree copy kept in $$scratch)" >&2; exit 1; \
	fi
