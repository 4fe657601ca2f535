#!/usr/bin/env bash
# Installs what peermcp needs to build, test and benchmark, and nothing that is already there.
# Debian packages through apt-get (only the absent ones); npm packages for the interop tests
# (pinned in tests/package.json) when called with --tests; the load generator for the benchmarks
# (wrk) with --bench.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

build_pkgs=(build-essential pkg-config meson ninja-build
  libuv1-dev libjansson-dev libsodium-dev libsqlite3-dev sqlite3 libssl-dev
  libprotobuf-c-dev protobuf-c-compiler libmicrohttpd-dev)
test_pkgs=(libcmocka-dev clang libclang-rt-14-dev llvm valgrind nodejs npm python3 prometheus # prometheus: promtool
  iproute2 nftables) # network namespaces and NAT routers of suites 45 and 48
bench_pkgs=(wrk python3)

want=("${build_pkgs[@]}")
[ "${1:-}" = "--tests" ] && want+=("${test_pkgs[@]}")
[ "${1:-}" = "--bench" ] && want+=("${bench_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    # a tool may be present without its Debian package (e.g. a NodeSource node)
    case "$p" in
      nodejs) command -v node >/dev/null && continue ;;
      npm) command -v npm >/dev/null && continue ;;
      python3) command -v python3 >/dev/null && continue ;;
    esac
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [ "${1:-}" = "--tests" ]; then
  cd "$here/tests"
  stamp=node_modules/.peermcp-stamp
  if [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ]; then
    echo "setup: npm install in tests/" >&2
    npm install --no-audit --no-fund --loglevel=error >&2
    touch "$stamp"
  fi
fi
