#!/usr/bin/env bash
# Tests scripts/setup.sh as on a fresh machine: each case runs in a mount
# namespace that hides the PostgreSQL installation (and promtool, or Go),
# as root and as a user without sudo.  Needs root (mount namespaces).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "$(id -u)" -ne 0 ]]; then
    echo "test-setup: needs root, to make mount namespaces (CI runs as root)" >&2
    exit 1
fi

# A copy of what setup.sh reads, which any user can read.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tree/scripts" "$work/empty" "$work/fakego"
cp scripts/setup.sh "$work/tree/scripts/"
cp go.mod "$work/tree/"
: > "$work/nothing"
printf '#!/bin/sh\necho go1.20.1\n' > "$work/fakego/go"
chmod -R a+rX "$work"
chmod a+x "$work/fakego/go"

# hide PATHS...: bind empty directories and files over them.
hide() {
    local p out=""
    for p in "$@"; do
        if [[ -d "$p" ]]; then out+="mount --bind $work/empty $p; "
        elif [[ -e "$p" ]]; then out+="mount --bind $work/nothing $p; "
        fi
    done
    echo "$out"
}
pg_hidden="$(hide /usr/lib/postgresql /usr/share/postgresql /usr/bin/pg_config)"
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp)

# The system's PATH: server programs on the caller's PATH (a private copy
# of PostgreSQL) would not be hidden.
syspath="/usr/local/go/bin:/usr/sbin:/usr/bin:/sbin:/bin"

failed=0
# check NAME WANT_EXIT WANT_TEXT MOUNTS COMMAND...: run COMMAND (as a shell
# word list) after MOUNTS in a new mount namespace.
check() {
    local name="$1" want_code="$2" want="$3" mounts="$4"; shift 4
    local out code=0
    out="$(PATH="$syspath" unshare --mount --propagation private sh -c "$mounts exec \"\$@\"" sh "$@" 2>&1)" || code=$?
    if [[ "$code" -ne "$want_code" ]] || [[ "$out" != *"$want"* ]]; then
        echo "FAIL $name: exit $code (want $want_code), output:"
        echo "$out" | sed 's/^/    /'
        echo "    want: $want"
        failed=1
    else
        echo "ok   $name"
    fi
}
setup="$work/tree/scripts/setup.sh"

check "demo, root, no PostgreSQL" 0 "setup: would install as root: postgresql-15" \
    "$pg_hidden" env PGQUE_SETUP_DRYRUN=1 "$setup" demo
check "test, root, no PostgreSQL, no promtool" 0 \
    "setup: would install as root: postgresql-15 postgresql-server-dev-15 prometheus" \
    "$pg_hidden$(hide /usr/bin/promtool)" env PGQUE_SETUP_DRYRUN=1 "$setup" test
check "demo, no sudo: stops with the command" 1 \
    "sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends postgresql-15'" \
    "$pg_hidden" "${nobody[@]}" "$setup" demo
check "test, no sudo: stops with the command" 1 \
    "apt-get install -y --no-install-recommends postgresql-15 postgresql-server-dev-15" \
    "$pg_hidden" "${nobody[@]}" "$setup" test
pgq_hidden="$(hide /usr/share/postgresql/15/extension/pgq.control)"
check "bench, root, no PgQ" 0 "setup: would install as root: postgresql-15-pgq3" \
    "$pgq_hidden" env PGQUE_SETUP_DRYRUN=1 "$setup" bench
check "bench, no sudo, no PgQ: goes on without it" 0 "the bench runs without it" \
    "$pgq_hidden" "${nobody[@]}" "$setup" bench
check "no Go: says which, before anything" 1 "setup: Go 1.25.0 or newer is needed (found: none)" \
    "$pg_hidden$(hide /usr/local/go)" env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$setup" demo
check "old Go" 1 "setup: Go 1.25.0 or newer is needed (found: 1.20.1)" \
    "" env "PATH=$work/fakego:/usr/sbin:/usr/bin:/sbin:/bin" "$setup" test
check "nothing missing" 0 "" "" "$setup" test
exit "$failed"
