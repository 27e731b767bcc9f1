#!/usr/bin/env bash
# CI ratchet over Complement: runs the suite and fails when a test that complement/results.jsonl
# records as "pass" does not pass now. A failing test gets one retry (its whole top-level test
# runs again); failing twice is a regression.
#
#   complement/ratchet.sh [packages…]     default: $HEARTH_RATCHET_PACKAGES, else every package
#
# New passes are listed; commit them (the new results file) with the change that made them pass.
set -euo pipefail

# The whole script is one function, read completely before it runs: editing the file during
# a run cannot change what the run does.
main() {
  here="$(cd "$(dirname "$0")" && pwd)"
  work="$here/.work"
  recorded="$here/results.jsonl"
  packages=("$@")
  if ((${#packages[@]} == 0)) && [ -n "${HEARTH_RATCHET_PACKAGES:-}" ]; then
    read -r -a packages <<< "$HEARTH_RATCHET_PACKAGES"
  fi
  [ -f "$recorded" ] || { echo "ratchet: $recorded is missing" >&2; exit 1; }

  mkdir -p "$work"
  first="$work/ratchet-first.jsonl"
  "$here/run.sh" -o "$first" "${packages[@]}"
  # run.sh leaves the binary it tested here: retries use the same one.
  export HEARTH_BIN="${HEARTH_BIN:-$work/bin/hearth}"

  # The tests each package holds (run.sh's go test -list), kept apart from the retries' runs.
  rm -rf "$work/ratchet-lists"
  cp -r "$work/results" "$work/ratchet-lists"
  lists=("$work"/ratchet-lists/*.list)
  regressions="$(python3 "$here/results.py" regressions "$recorded" "$first" "${lists[@]}")"
  final="$first"
  if [ -n "$regressions" ]; then
    echo "ratchet: recorded passes that failed; retrying once:" >&2
    echo "$regressions" | sed 's/^/  /' >&2
    retried="$work/ratchet-retry.jsonl"
    : > "$retried"
    tops="$(echo "$regressions" | cut -f1 | cut -d/ -f1 | sort -u)"
    for list in "${lists[@]}"; do
      mine="$(grep -Fxf "$list" <<< "$tops" || true)"
      [ -n "$mine" ] || continue
      pkg="./$(basename "$list" .list | tr _ /)"
      pattern="^($(paste -sd'|' <<< "$mine"))\$"
      "$here/run.sh" -o "$work/ratchet-retry-part.jsonl" "$pkg" -run "$pattern"
      cat "$work/ratchet-retry-part.jsonl" >> "$retried"
    done
    final="$work/ratchet-final.jsonl"
    python3 "$here/results.py" overlay "$final" "$first" "$retried"
    regressions="$(python3 "$here/results.py" regressions "$recorded" "$final" "${lists[@]}")"
  fi

  new="$(python3 "$here/results.py" new-passes "$recorded" "$final")"
  if [ -n "$new" ]; then
    echo "ratchet: $(wc -l <<< "$new") test(s) pass that results.jsonl does not record as passing:" >&2
    echo "$new" | sed 's/^/  /' >&2
    echo "ratchet: commit them: complement/run.sh (full run) rewrites complement/results.jsonl" >&2
  fi
  if [ -n "$regressions" ]; then
    echo "ratchet: REGRESSIONS (recorded as pass, failed twice):" >&2
    echo "$regressions" | sed 's/^/  /' >&2
    exit 1
  fi
  echo "ratchet: no regressions against complement/results.jsonl" >&2
}

main "$@"
