#!/usr/bin/env bash
# Hearth's front door. Usage:
#   ./hearth.sh run [hearth serve args…]   build (release) and run the server: ./data, localhost, 127.0.0.1:8008
#   ./hearth.sh test                       run every test: unit, integration, real Matrix clients (nio, js-sdk, Hydrogen)
#   ./hearth.sh ci                         what CI runs: format and lint checks, then the tests
#   ./hearth.sh setup                      only install what the build needs
# Whatever cargo cannot fetch is installed here (Debian/Ubuntu, as root or with sudo), or named
# with the command that installs it.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth-target}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else return 1
  fi
}

# bindgen (librocksdb-sys) dlopens libclang.so or libclang-N.so.1; libclang-cpp.so, which images ship
# on their own, is a different library and does not count. $1: a root to look under (tests).
have_libclang() {
  local root="${1:-}" dir
  for dir in "$root"/usr/lib/llvm-*/lib "$root"/usr/lib/*-linux-gnu "$root"/usr/lib "$root"/usr/local/lib; do
    compgen -G "$dir/libclang.so" >/dev/null && return 0
    compgen -G "$dir/libclang-*.so.1" >/dev/null && return 0
    compgen -G "$dir/libclang.so.[0-9]*" >/dev/null && return 0
  done
  return 1
}

# Proves the detection on made-up trees (an image with only libclang-cpp must not count), and
# that setup left the library bindgen needs on this machine.
check_setup() {
  local fake
  fake="$(mktemp -d)"
  mkdir -p "$fake/usr/lib/llvm-14/lib"
  touch "$fake/usr/lib/llvm-14/lib/libclang-cpp.so.14"
  if have_libclang "$fake"; then
    echo "hearth: libclang detection counts libclang-cpp, which bindgen cannot load" >&2
    rm -rf "$fake"; exit 1
  fi
  touch "$fake/usr/lib/llvm-14/lib/libclang-14.so.1"
  if ! have_libclang "$fake"; then
    echo "hearth: libclang detection misses libclang-14.so.1" >&2
    rm -rf "$fake"; exit 1
  fi
  rm -rf "$fake"
  if ! have_libclang; then
    echo "hearth: setup finished but libclang is still missing" >&2
    exit 1
  fi
}

setup() {
  local missing=()
  have_libclang || missing+=(libclang-dev)
  command -v c++ >/dev/null 2>&1 || missing+=(g++)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  # The Hydrogen client test drives Debian's headless Chromium (playwright cannot fetch a browser here).
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  if ((${#missing[@]})); then
    echo "hearth: installing system packages: ${missing[*]}" >&2
    if ! { as_root apt-get update -qq && as_root apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
      echo "hearth: could not install ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "hearth: Rust is missing; install it from https://rustup.rs and retry" >&2
    exit 1
  fi
}

lint_tools() {
  if command -v rustup >/dev/null 2>&1; then
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
  fi
}

run_tests() {
  cargo test --all-targets
  tests/clients/run.sh
}

case "${1:-}" in
  run)
    shift
    setup
    cargo build --release --bin hearth
    exec "$CARGO_TARGET_DIR/release/hearth" serve "$@"
    ;;
  test)
    setup
    run_tests
    ;;
  ci)
    setup
    check_setup
    lint_tools
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings
    run_tests
    ;;
  setup)
    setup
    ;;
  *)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
