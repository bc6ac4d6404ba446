#!/usr/bin/env bash
# Run a command as an unprivileged user when invoked as root.
#
# Why: initdb and postgres refuse to run as root, yet CI and most dev containers
# run everything as root. `make pgtest` (and later the Go tests, which start
# ephemeral servers too) therefore go through this wrapper.
#
# Usage: scripts/run-unprivileged.sh [--chown PATH]... [--] CMD [ARG]...
#
#   Not root: exec CMD as is (--chown is ignored; the caller already owns PATH).
#   Root:     pick the user ($PGQUE_TEST_USER, else `postgres` if it exists, else
#             a `pgque` system user, created on first use), hand every --chown PATH
#             to that user, and run CMD as that user with HOME set to a fresh
#             temporary directory (removed afterwards). The caller's environment
#             is passed through. Go's caches default to a persistent directory
#             owned by that user ($PGQUE_GOCACHE_DIR, default /var/tmp/pgque-gocache)
#             so repeated `go test` runs stay fast; GOCACHE/GOMODCACHE/GOPATH set
#             by the caller win.
#   CMD runs in the current directory, which that user must be able to enter:
#   callers whose checkout may be private (e.g. under /root) should copy what
#   CMD needs into a --chown'ed directory, cd there and use absolute paths.
#   Exit status is CMD's.
set -euo pipefail

chown_paths=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --chown) chown_paths+=("$2"); shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
if [[ $# -eq 0 ]]; then
    echo "usage: $0 [--chown PATH]... [--] CMD [ARG]..." >&2
    exit 2
fi

if [[ "$(id -u)" -ne 0 ]]; then
    exec "$@"
fi

user="${PGQUE_TEST_USER:-}"
if [[ -z "$user" ]]; then
    if id -u postgres >/dev/null 2>&1; then
        user=postgres
    else
        user=pgque
        if ! id -u "$user" >/dev/null 2>&1; then
            # `|| id` tolerates a concurrent run creating it first.
            useradd --system --user-group --no-create-home \
                --home-dir /nonexistent --shell /usr/sbin/nologin "$user" ||
                id -u "$user" >/dev/null
        fi
    fi
fi
group="$(id -gn "$user")"

for p in ${chown_paths[@]+"${chown_paths[@]}"}; do
    chown -R "$user:$group" "$p"
done

home="$(mktemp -d /tmp/pgque-home.XXXXXX)"
trap 'rm -rf "$home"' EXIT
chown "$user:$group" "$home"

gocache_dir="${PGQUE_GOCACHE_DIR:-/var/tmp/pgque-gocache}"
mkdir -p "$gocache_dir"
if [[ "$(stat -c %U "$gocache_dir")" != "$user" ]]; then
    chown -R "$user:$group" "$gocache_dir"
fi

# Variables set after the switch so no PAM/login setting can override them.
envs=(
    HOME="$home" USER="$user" LOGNAME="$user" PATH="$PATH"
    GOCACHE="${GOCACHE:-$gocache_dir/build}"
    GOMODCACHE="${GOMODCACHE:-$gocache_dir/mod}"
    GOPATH="${GOPATH:-$gocache_dir/gopath}"
)

cmd=(env "${envs[@]}" "$@")
if command -v runuser >/dev/null 2>&1; then
    switch=(runuser -u "$user" -- "${cmd[@]}")
elif command -v setpriv >/dev/null 2>&1; then
    switch=(setpriv "--reuid=$user" "--regid=$group" --init-groups -- "${cmd[@]}")
elif command -v su >/dev/null 2>&1; then
    # su only takes a shell command line: quote the arguments for bash.
    switch=(su -m -s /bin/bash -c "exec $(printf '%q ' "${cmd[@]}")" "$user")
else
    echo "$0: need runuser, setpriv or su to drop root privileges" >&2
    exit 1
fi

status=0
"${switch[@]}" || status=$?
exit "$status"
