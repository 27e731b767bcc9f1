"""compare.sh's results, kept in benches/results.jsonl (one line per scenario and server, the
newest run of each scenario), as benches/RESULTS.md: one table per scenario with both servers
and the Synapse/Hearth ratio (how many times more the reference server needs).

  report.py merge NEW.jsonl COMMIT   replace the scenarios NEW measured in results.jsonl
  report.py render                   print RESULTS.md from results.jsonl"""

import datetime
import json
import os
import sys

STORE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.jsonl")


def load(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def merge(new_path, commit):
    new = load(new_path)
    today = datetime.date.today().isoformat()
    for row in new:
        row.setdefault("date", today)
        row.setdefault("commit", commit)
    measured = {row["scenario"] for row in new}
    kept = [row for row in (load(STORE) if os.path.exists(STORE) else []) if row["scenario"] not in measured]
    with open(STORE, "w") as out:
        for row in kept + new:
            out.write(json.dumps(row) + "\n")


def flatten(value, prefix=""):
    out = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            out.update(flatten(item, name + "."))
        elif isinstance(item, (int, float)):
            out[name] = item
    return out


def render():
    by_scenario = {}
    for row in load(STORE):
        by_scenario.setdefault(row["scenario"], {})[row["server"]] = row
    mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    print("# Hearth vs Synapse — client-API load, same machine\n")
    print(f"- machine: {os.cpu_count()} cores, {mem_kib // 1024} MiB memory (shared, noisy: trust CPU per operation and ratios over wall time)")
    print("- Hearth: release build, RocksDB, fsync'd writes, argon2id 19 MiB/2 passes; Synapse: PyPI release, SQLite, bcrypt (its default cost)")
    print("- both on loopback, rate limits off, measured one after the other in the same run of `benches/compare.sh` (`SCENARIOS=\"…\"` reruns some; the raw numbers are in `benches/results.jsonl`)")
    print("- each scenario waits until both servers are idle after its setup, then measures; latencies run from sending the request to the last byte of the answer (the client's JSON parsing is not counted)")
    print("- `initial-sync`: the first of the samples fills Hearth's caches; p50 is the steady state, p99 shows the cold request\n")
    for scenario, servers in by_scenario.items():
        hearth_row, synapse_row = servers.get("hearth", {}), servers.get("synapse", {})
        print(f"## {scenario}\n")
        print(f"measured {hearth_row.get('date', '?')}, Hearth at commit `{hearth_row.get('commit', '?')}`\n")
        hearth, synapse = hearth_row.get("result", {}), synapse_row.get("result", {})
        if "error" in hearth or "error" in synapse:
            print(f"- hearth: {hearth.get('error', 'ok')}\n- synapse: {synapse.get('error', 'ok')}\n")
        h, s = flatten(hearth), flatten(synapse)
        print("| metric | Hearth | Synapse | Synapse / Hearth |\n| --- | ---: | ---: | ---: |")
        for key in sorted(set(h) | set(s)):
            hv, sv = h.get(key), s.get(key)
            ratio = f"{sv / hv:.1f}×" if isinstance(hv, (int, float)) and isinstance(sv, (int, float)) and hv else ""
            print(f"| {key} | {hv if hv is not None else ''} | {sv if sv is not None else ''} | {ratio} |")
        print()


if __name__ == "__main__":
    if sys.argv[1:2] == ["merge"]:
        merge(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["render"]:
        render()
    else:
        sys.exit(__doc__)
