#!/usr/bin/env bash
# Bring this machine to what `make demo` or `make test` needs, before either
# does anything else.  One list of what each needs, used by the Makefile and
# by .ci/run alike.
#
# Usage: scripts/setup.sh demo|test|bench
#
#   demo  Go (the version go.mod names, or newer) and the PostgreSQL server
#         programs (initdb, pg_ctl, postgres).
#   test  those, plus PostgreSQL's server development files (pg_config,
#         pg_regress, pg_isolation_regress), promtool, chromium (the
#         dashboard's browser test), pgbouncer (the tests behind it), npm
#         (make test-matrix fetches PostgreSQL 16 to 18 with it) and make.
#   bench demo's, plus PgQ (postgresql-15-pgq3), the peer `pgque bench`
#         measures send against, when it can be installed: without it the
#         bench says PgQ was not measured.
#
# Go missing or too old: it says which version is needed and stops, before
# anything is installed (Go is not an apt package of the version needed).
# Other things missing are installed with apt-get (Debian, Ubuntu): as root
# directly, otherwise with sudo when sudo works without a password prompt
# (it says so first); when neither is possible it stops, naming the exact
# command to run.  PGQUE_SETUP_DRYRUN=1 prints what it would install and
# installs nothing.  PGQUE_PG_MAJOR picks the PostgreSQL major version of the
# packages (default 15).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile="${1:-}"
case "$profile" in
    demo|test|bench) ;;
    *) echo "usage: $0 demo|test|bench" >&2; exit 2 ;;
esac
major="${PGQUE_PG_MAJOR:-15}"

say() { echo "setup: $*"; }
# have CMD: CMD is on PATH and executable (bash's command -v also names a
# file that is not).
have() { local p; p="$(command -v "$1" 2>/dev/null)" && [[ -x "$p" ]]; }

# --- Go: first, since nothing works without it -----------------------------
need_go="$(sed -n 's/^go \([0-9][0-9.]*\)$/\1/p' go.mod)"
go_bin=""
if have go; then go_bin="$(command -v go)"; elif [[ -x /usr/local/go/bin/go ]]; then go_bin=/usr/local/go/bin/go; fi
have_go=""
[[ -z "$go_bin" ]] || have_go="$("$go_bin" env GOVERSION 2>/dev/null | sed 's/^go//; s/[^0-9.].*//')"
# version_ge A B: A >= B, comparing dot-separated numbers.
version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]; }
if [[ -z "$have_go" ]] || ! version_ge "$have_go" "$need_go"; then
    say "Go $need_go or newer is needed (found: ${have_go:-none});" \
        "install it from https://go.dev/dl (e.g. into /usr/local/go) and put its bin directory on PATH" >&2
    exit 1
fi

# --- PostgreSQL and the rest -------------------------------------------------
# bindir: the directory of the server programs, found as localpg finds them
# (initdb on PATH, else the newest /usr/lib/postgresql/*/bin).
server_bindir() {
    local d
    if have initdb; then
        d="$(command -v initdb)"
        d="$(dirname "$(readlink -f "$d")")"
        [[ -x "$d/pg_ctl" && -x "$d/postgres" ]] && { echo "$d"; return; }
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]] && { echo "$d"; return; }
    done
    return 1
}

# regress_ok: pg_config works and PGXS has pg_regress and pg_isolation_regress.
regress_ok() {
    local pgxs
    have pg_config || return 1
    pgxs="$(pg_config --pgxs 2>/dev/null)" || return 1
    pgxs="${pgxs%/src/makefiles/pgxs.mk}/src/test"
    [[ -x "$pgxs/regress/pg_regress" && -x "$pgxs/isolation/pg_isolation_regress" ]]
}

missing_packages() {
    server_bindir >/dev/null || echo "postgresql-$major"
    if [[ "$profile" == bench ]]; then
        [[ -s "/usr/share/postgresql/$major/extension/pgq.control" ]] || echo "postgresql-$major-pgq3"
    fi
    [[ "$profile" == test ]] || return 0
    regress_ok || echo "postgresql-server-dev-$major"
    have promtool || echo prometheus
    have chromium || echo chromium
    have make || echo make
    # Go tests behind PgBouncer; make test-matrix fetches PostgreSQL 16-18 with npm.
    [[ -x /usr/sbin/pgbouncer ]] || have pgbouncer || echo pgbouncer
    have npm || echo npm
}

mapfile -t pkgs < <(missing_packages)
if [[ ${#pkgs[@]} -eq 0 ]]; then
    exit 0
fi
apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
how="as root"
if [[ "$(id -u)" -ne 0 ]]; then
    if have sudo && sudo -n true 2>/dev/null; then
        apt=(sudo env DEBIAN_FRONTEND=noninteractive apt-get)
        how="with sudo"
    else
        apt=()
    fi
fi
have apt-get || apt=()
cmd="apt-get update && apt-get install -y --no-install-recommends ${pkgs[*]}"
if [[ -n "${PGQUE_SETUP_DRYRUN:-}" ]]; then
    if [[ ${#apt[@]} -eq 0 ]]; then
        say "would stop: missing ${pkgs[*]}"
    else
        say "would install $how: ${pkgs[*]}"
    fi
    exit 0
fi
if [[ ${#apt[@]} -eq 0 && "$profile" == bench && "${pkgs[*]}" == "postgresql-$major-pgq3" ]]; then
    say "PgQ (postgresql-$major-pgq3) is not installed and cannot be installed here: the bench runs without it" >&2
    exit 0
fi
if [[ ${#apt[@]} -eq 0 ]]; then
    if have apt-get; then
        say "missing: ${pkgs[*]} (for make $profile). Install them as root, then run make $profile again:" >&2
        say "  sudo sh -c '$cmd'" >&2
    else
        say "missing: ${pkgs[*]} (for make $profile), and this machine has no apt-get:" \
            "install the PostgreSQL $major server (and for make test its development files, promtool and chromium) by hand" >&2
    fi
    exit 1
fi
say "installing $how, for make $profile: ${pkgs[*]}"
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq --no-install-recommends "${pkgs[@]}" </dev/null
mapfile -t still < <(missing_packages)
if [[ ${#still[@]} -gt 0 ]]; then
    say "still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
