#!/usr/bin/env python3
"""Complement results: go test -json → one line per test, merging, ratchet and comparisons.

  results.py summarize OUT.jsonl RUN.json… [--label L]  final outcome of each test and subtest
                                                        (later runs of a test override earlier)
  results.py crashed RUN.json                           if the test binary died mid-run: the
                                                        top-level tests to blame, one a line
  results.py finished RUN.json…                         top-level tests with an outcome
  results.py merge OUT.jsonl IN.jsonl…                  union, sorted by test name
  results.py regressions RECORDED.jsonl NEW.jsonl LIST… tests RECORDED passes that NEW does not
                                                        (a test missing from NEW counts as failed
                                                        when its top-level test is in a LIST file)
  results.py overlay OUT.jsonl BASE.jsonl TOP.jsonl     BASE with TOP's outcomes replacing its own
  results.py new-passes RECORDED.jsonl NEW.jsonl        tests NEW passes that RECORDED does not
  results.py compare OURS.jsonl OTHER.jsonl             side by side with another server's results
"""
import json
import sys


def load(path):
    results = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                entry = json.loads(line)
                results[entry["Test"]] = entry["Action"]
    return results


def write(path, results):
    with open(path, "w") as f:
        for test in sorted(results):
            f.write(json.dumps({"Action": results[test], "Test": test}, separators=(",", ":")) + "\n")


def counts(results):
    top = {"pass": 0, "fail": 0, "skip": 0}
    sub = {"pass": 0, "fail": 0, "skip": 0}
    for test, action in results.items():
        (sub if "/" in test else top)[action] += 1
    return top, sub


def fmt(c):
    return f"{c['pass']} pass, {c['fail']} fail, {c['skip']} skip"


def events(run_json):
    with open(run_json) as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def outcomes(run_json):
    """(final outcome per test, tests that started, whether the package failed).

    Only outcomes the test binary reported itself (its `--- PASS/FAIL/SKIP: name` line)
    count: when the binary dies, go test marks the tests still running as failed too, and
    those did not finish."""
    results, started, reported, package_failed = {}, set(), set(), False
    for event in events(run_json):
        test, action = event.get("Test"), event.get("Action")
        if not test:
            if action == "fail":
                package_failed = True
            continue
        if action == "run":
            started.add(test)
        elif action == "output":
            line = (event.get("Output") or "").strip()
            for prefix in ("--- PASS: ", "--- FAIL: ", "--- SKIP: "):
                if line.startswith(prefix + test + " ") or line == prefix + test:
                    reported.add(test)
        elif action in ("pass", "fail", "skip") and test in reported:
            results[test] = action
    return results, started, package_failed


def crashed(run_json):
    results, started, _ = outcomes(run_json)
    unfinished = {t.split("/", 1)[0] for t in started - results.keys()}
    if not unfinished:
        return
    culprits = set()
    for event in events(run_json):
        test, output = event.get("Test"), event.get("Output") or ""
        if test and output.startswith("panic:"):
            culprits.add(test.split("/", 1)[0])
    for test in sorted(culprits or unfinished):
        print(test)


def finished(run_jsons):
    done = set()
    for run_json in run_jsons:
        results, _, _ = outcomes(run_json)
        done.update(t for t in results if "/" not in t)
    for test in sorted(done):
        print(test)


def summarize(out, run_jsons, label):
    results, package_failed = {}, False
    for run_json in run_jsons:
        found, started, failed = outcomes(run_json)
        # A test that started and never finished (panic, timeout) failed, unless a later run
        # (after the binary died) finishes it.
        for test in started - found.keys():
            found[test] = "fail"
        results.update(found)
        package_failed = package_failed or failed
    write(out, results)
    top, sub = counts(results)
    note = "" if results or not package_failed else " (package failed before any test ran)"
    print(f"{label}: top-level {fmt(top)}; subtests {fmt(sub)}{note}")


def merge(out, inputs):
    merged = {}
    for path in inputs:
        for test, action in load(path).items():
            # The same name in two packages: a failure anywhere wins.
            if merged.get(test) != "fail":
                merged[test] = action
    write(out, merged)
    top, sub = counts(merged)
    print(f"all: top-level {fmt(top)}; subtests {fmt(sub)}")


def regressions(recorded_path, new_path, lists):
    recorded, new = load(recorded_path), load(new_path)
    in_scope = set()
    for path in lists:
        with open(path) as f:
            in_scope.update(line.strip() for line in f if line.strip())
    for test, action in sorted(recorded.items()):
        if action != "pass":
            continue
        top = test.split("/", 1)[0]
        outcome = new.get(test)
        if outcome is None and top not in in_scope:
            continue  # its package did not run
        if outcome != "pass":
            print(f"{test}\t{outcome or 'missing'}")


def overlay(out, base_path, top_path):
    merged = load(base_path)
    merged.update(load(top_path))
    write(out, merged)


def new_passes(recorded_path, new_path):
    recorded, new = load(recorded_path), load(new_path)
    for test in sorted(new):
        if new[test] == "pass" and recorded.get(test) != "pass":
            print(test)


def compare(ours_path, other_path):
    ours, other = load(ours_path), load(other_path)
    both = [t for t in ours if ours[t] == "pass" and other.get(t) == "pass"]
    only_other = sorted(t for t in other if other[t] == "pass" and ours.get(t) != "pass")
    only_ours = sorted(t for t in ours if ours[t] == "pass" and other.get(t) != "pass")
    for label, results in (("ours", ours), ("other", other)):
        top, sub = counts(results)
        print(f"{label}: top-level {fmt(top)}; subtests {fmt(sub)}")
    print(f"pass in both: {len(both)}")
    print(f"pass only in {other_path} ({len(only_other)}):")
    for t in only_other:
        print(f"  {t}  (ours: {ours.get(t, 'not run')})")
    print(f"pass only in {ours_path} ({len(only_ours)}):")
    for t in only_ours:
        print(f"  {t}  (other: {other.get(t, 'not run')})")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "summarize":
        label = args[0]
        if "--label" in args:
            i = args.index("--label")
            label = args[i + 1]
            args = args[:i] + args[i + 2:]
        summarize(args[0], args[1:], label)
    elif cmd == "crashed":
        crashed(args[0])
    elif cmd == "finished":
        finished(args)
    elif cmd == "merge":
        merge(args[0], args[1:])
    elif cmd == "regressions":
        regressions(args[0], args[1], args[2:])
    elif cmd == "overlay":
        overlay(args[0], args[1], args[2])
    elif cmd == "new-passes":
        new_passes(args[0], args[1])
    elif cmd == "compare":
        compare(args[0], args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
