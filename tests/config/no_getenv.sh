#!/bin/sh
# Only src/config/ reads the process environment (docs/config.md, docs/ARCHITECTURE.md): this
# test fails, listing them, when getenv / secure_getenv / environ appear anywhere else in src/.
# It first checks itself on a planted file, so it cannot pass by matching nothing.
set -u
root=${1:?usage: no_getenv.sh SOURCE_ROOT}
pattern='(^|[^A-Za-z0-9_])(secure_getenv|getenv)[[:space:]]*\(|(^|[^A-Za-z0-9_])environ([^A-Za-z0-9_]|$)'

# find_uses DIR: every use outside DIR/config/, one "file:line: text" per line
find_uses() {
  grep -rnE "$pattern" "$1" --include='*.c' --include='*.h' | grep -v "^$1/config/"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/config" "$tmp/src/p2p"
printf 'const char *v = getenv("HOME");\n' >"$tmp/src/config/config.c"
printf 'static int k = 1; /* the environment */\n' >"$tmp/src/p2p/ok.c"
printf 'static const char *f(void) { return getenv ("X"); }\nextern char **environ;\n' >"$tmp/src/p2p/bad.c"
planted=$(find_uses "$tmp/src" | wc -l)
if [ "$planted" -ne 2 ]; then
  echo "self-check failed: expected 2 planted uses, found $planted"
  exit 1
fi

hits=$(find_uses "$root/src")
if [ -n "$hits" ]; then
  echo "the environment is read outside src/config/ (make it a config key):"
  echo "$hits"
  exit 1
fi
echo "no getenv outside src/config/"
