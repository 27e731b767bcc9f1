#!/usr/bin/env bash
# Runs Complement against hearth with the process deployer in complement/deployer.
#
#   complement/run.sh [-o FILE] [packages…] [-run PATTERN]
#
# packages: ./tests/csapi, ./tests, ./tests/msc…; default: all of them.
# -run PATTERN: go test's -run (one test: -run '^TestLogin$', a subtest: -run 'TestLogin/sub').
# -o FILE: where the results go (default complement/results.jsonl for a full run without
#          -run, complement/.work/results-partial.jsonl otherwise).
#
# Builds hearth (release) unless HEARTH_BIN names a binary; copies ../shared/complement into
# complement/.work (never touching ../shared); rewrites each package's TestMain to use our
# deployer; runs `go test -json` per package; writes one line per test and subtest,
# {"Action":"pass|fail|skip","Test":"Name/sub"}; prints counts per package.
# Environment: HEARTH_SHARED (default <repo>/../shared), HEARTH_COMPLEMENT_TIMEOUT (per
# package, default 45m), HEARTH_COMPLEMENT_LOG_LEVEL, HEARTH_COMPLEMENT_KEEP=1,
# COMPLEMENT_ALWAYS_PRINT_SERVER_LOGS=1 (print server logs of passing tests too).
set -euo pipefail

# The whole script is one function, read completely before it runs: editing the file during
# a run cannot change what the run does.
main() {
  here="$(cd "$(dirname "$0")" && pwd)"
  repo="$(cd "$here/.." && pwd)"
  shared="${HEARTH_SHARED:-$repo/../shared}"
  work="$here/.work"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth-target}"
  export PATH="$PATH:/usr/local/go/bin"

  out="" run_pattern="" packages=()
  while (($#)); do
    case "$1" in
      -run) run_pattern="$2"; shift 2 ;;
      -o) out="$2"; shift 2 ;;
      -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
      *) packages+=("$1"); shift ;;
    esac
  done

  case "$out" in "" | /*) ;; *) out="$PWD/$out" ;; esac
  command -v go >/dev/null || { echo "run.sh: Go is missing (https://go.dev/dl, 1.25 or later)" >&2; exit 1; }
  command -v python3 >/dev/null || { echo "run.sh: python3 is missing" >&2; exit 1; }
  [ -d "$shared/complement/complement" ] || { echo "run.sh: no Complement sources in $shared/complement" >&2; exit 1; }

  if [ -z "${HEARTH_BIN:-}" ]; then
    echo "run.sh: building hearth (release)" >&2
    (cd "$repo" && cargo build --release --bin hearth)
    # The target dir may be shared with other checkouts: run a copy of what was just built.
    mkdir -p "$work/bin"
    cp "$CARGO_TARGET_DIR/release/hearth" "$work/bin/hearth.tmp"
    mv "$work/bin/hearth.tmp" "$work/bin/hearth"
    HEARTH_BIN="$work/bin/hearth"
  fi
  HEARTH_BIN="$(cd "$(dirname "$HEARTH_BIN")" && pwd)/$(basename "$HEARTH_BIN")"
  [ -x "$HEARTH_BIN" ] || { echo "run.sh: $HEARTH_BIN is not an executable" >&2; exit 1; }
  export HEARTH_BIN

  # A fresh scratch copy of Complement and gomatrixserverlib, wired to our deployer.
  rm -rf "$work/complement" "$work/gomatrixserverlib"
  mkdir -p "$work"
  cp -r "$shared/complement/complement" "$shared/complement/gomatrixserverlib" "$work/"
  chmod -R u+w "$work/complement" "$work/gomatrixserverlib"
  cd "$work/complement"
  go mod edit \
    -replace github.com/matrix-org/gomatrixserverlib=../gomatrixserverlib \
    -require hearth.local/complement/deployer@v0.0.0-00010101000000-000000000000 \
    -replace hearth.local/complement/deployer=../../deployer
  for main in tests/main_test.go tests/*/main_test.go; do
    grep -q 'complement.TestMain(m, "[^"]*")' "$main" || { echo "run.sh: unexpected TestMain in $main" >&2; exit 1; }
    sed -i \
      -e 's|complement.TestMain(m, \("[^"]*"\))|complement.TestMain(m, \1, complement.WithDeployment(deployer.Deploy), complement.WithCleanup(deployer.Cleanup))|' \
      -e 's|^\(\s*\)"github.com/matrix-org/complement"$|\1"github.com/matrix-org/complement"\n\1deployer "hearth.local/complement/deployer"|' \
      "$main"
  done

  if ((${#packages[@]} == 0)); then
    packages=(./tests/csapi ./tests)
    for dir in tests/msc*/; do packages+=("./${dir%/}"); done
  fi
  if [ -z "$out" ]; then
    if [ -z "$run_pattern" ]; then out="$here/results.jsonl"; else out="$work/results-partial.jsonl"; fi
  fi

  export COMPLEMENT_BASE_IMAGE="${COMPLEMENT_BASE_IMAGE:-hearth}"
  export COMPLEMENT_HOSTNAME_RUNNING_COMPLEMENT=127.0.0.1
  export HEARTH_COMPLEMENT_DIR="$work/run"
  rm -rf "$work/results"
  mkdir -p "$HEARTH_COMPLEMENT_DIR/pids" "$work/results"
  # Deployments live under a short path: hearth's admin socket path must fit in sun_path.
  HEARTH_COMPLEMENT_DATA="$(mktemp -d "${TMPDIR:-/tmp}/hearth-complement.XXXXXX")"
  export HEARTH_COMPLEMENT_DATA

  # Stops servers a crashed test binary left behind, by the pids the deployer recorded.
  sweep() {
    local file pid
    for file in "$HEARTH_COMPLEMENT_DIR"/pids/*; do
      [ -e "$file" ] || continue
      pid="$(basename "$file")"
      if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$HEARTH_BIN" ]; then
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
      fi
      rm -f "$file"
    done
  }
  finish() {
    sweep
    if [ -n "${HEARTH_COMPLEMENT_KEEP:-}" ]; then
      echo "run.sh: servers' data dirs and logs kept in $HEARTH_COMPLEMENT_DATA" >&2
    else
      rm -rf "$HEARTH_COMPLEMENT_DATA"
    fi
  }
  trap finish EXIT

  echo "run.sh: compiling the test packages" >&2
  go vet "${packages[@]}" hearth.local/complement/deployer >/dev/null
  # The deployer's own test (register, restart, stop/start, pause, TLS federation): a broken
  # harness must not pass for a broken server.
  if ! go test -count=1 hearth.local/complement/deployer > "$work/deployer-test.log" 2>&1; then
    cat "$work/deployer-test.log" >&2
    echo "run.sh: the deployer's own test failed" >&2
    exit 1
  fi

  files=()
  for pkg in "${packages[@]}"; do
    name="$(echo "${pkg#./}" | tr / _)"
    skip="$(awk -v p="$pkg" '$1 == p { printf "%s%s", sep, $2; sep = "|" }' "$here/docker-only.txt")"
    go test -list '.*' "$pkg" 2>/dev/null | grep '^Test' > "$work/results/$name.list" || true
    started=$(date +%s)
    # A test can kill the whole test binary (a panic, such as t.Fatalf from a goroutine after
    # its test ended). Then the package runs again without the tests that finished and the
    # one to blame, which is recorded as failed; at most 10 times.
    runs=() attempt=1 skip_more=""
    while :; do
      args=(-json -count=1 -timeout "${HEARTH_COMPLEMENT_TIMEOUT:-45m}")
      skip_all="$(printf '%s\n' "$skip" "$skip_more" | grep -v '^$' | paste -sd'|' || true)"
      [ -n "$skip_all" ] && args+=(-skip "^($skip_all)\$")
      [ -n "$run_pattern" ] && args+=(-run "$run_pattern")
      echo "run.sh: go test $pkg${skip_more:+ (run $attempt, after a crash)}" >&2
      json="$work/results/$name.$attempt.json"
      go test "${args[@]}" "$pkg" > "$json" 2> "$work/results/$name.$attempt.stderr" || true
      sweep
      runs+=("$json")
      blame="$(python3 "$here/results.py" crashed "$json")"
      if [ -z "$blame" ] || ((attempt >= 10)); then break; fi
      echo "run.sh: the test binary died in: $(paste -sd' ' <<< "$blame")" >&2
      skip_more="$( { python3 "$here/results.py" finished "${runs[@]}"; echo "$blame"; echo "$skip_more"; } | grep -v '^$' | sort -u)"
      attempt=$((attempt + 1))
    done
    python3 "$here/results.py" summarize "$work/results/$name.jsonl" "${runs[@]}" \
      --label "$pkg ($(( $(date +%s) - started ))s)"
    files+=("$work/results/$name.jsonl")
  done
  python3 "$here/results.py" merge "$out" "${files[@]}"
  echo "run.sh: results in $out" >&2
}

main "$@"
