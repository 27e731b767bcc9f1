"""Turns compare.sh's JSON lines into benches/RESULTS.md: one table per scenario, both servers,
and the Synapse/Hearth ratio (how many times more the reference server needs)."""

import datetime
import json
import os
import sys

path, commit = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(path)]
by_scenario = {}
for row in rows:
    by_scenario.setdefault(row["scenario"], {})[row["server"]] = row["result"]


def flatten(value, prefix=""):
    out = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            out.update(flatten(item, name + "."))
        elif isinstance(item, (int, float)):
            out[name] = item
    return out


mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
print("# Hearth vs Synapse — client-API load, same machine, same run\n")
print(f"- date: {datetime.date.today().isoformat()}, commit `{commit}`")
print(f"- machine: {os.cpu_count()} cores, {mem_kib // 1024} MiB memory (shared, noisy: trust CPU per operation and ratios over wall time)")
print("- Hearth: release build, RocksDB, fsync'd writes, argon2id 19 MiB/2 passes; Synapse: PyPI release, SQLite, bcrypt (its default cost)")
print("- both on loopback, rate limits off; `benches/compare.sh` reproduces this file")
print("- each scenario waits until both servers are idle after its setup, then measures; latencies run from sending the request to the last byte of the answer (the client's JSON parsing is not counted)")
print("- `initial-sync`: the first of the samples fills Hearth's caches; p50 is the steady state, p99 shows the cold request\n")
for scenario, servers in by_scenario.items():
    print(f"## {scenario}\n")
    hearth, synapse = servers.get("hearth", {}), servers.get("synapse", {})
    if "error" in hearth or "error" in synapse:
        print(f"- hearth: {hearth.get('error', 'ok')}\n- synapse: {synapse.get('error', 'ok')}\n")
    h, s = flatten(hearth), flatten(synapse)
    print("| metric | Hearth | Synapse | Synapse / Hearth |\n| --- | ---: | ---: | ---: |")
    for key in sorted(set(h) | set(s)):
        hv, sv = h.get(key), s.get(key)
        ratio = f"{sv / hv:.1f}×" if isinstance(hv, (int, float)) and isinstance(sv, (int, float)) and hv else ""
        print(f"| {key} | {hv if hv is not None else ''} | {sv if sv is not None else ''} | {ratio} |")
    print()
