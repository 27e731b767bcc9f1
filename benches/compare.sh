#!/usr/bin/env bash
# Runs hearth-bench's scenarios against Hearth and Synapse on this machine, in alternation,
# and writes benches/RESULTS.md. Synapse comes from PyPI into ~/.cache/synapse-venv (SQLite, its
# default embedded store). Both servers listen on loopback only, with rate limits off.
#
# Sizes can be overridden: REGISTER_USERS, SEND_MESSAGES, CONCURRENT_SENDERS,
# CONCURRENT_MESSAGES, FANOUT_RECEIVERS, FANOUT_MESSAGES, SYNC_ROOMS, SYNC_MEMBERS,
# SYNC_EVENTS, SYNC_SAMPLES, PUSH_MEMBERS, PUSH_PUSHERS, PUSH_MESSAGES, MEDIA_MIB,
# MEDIA_ROUNDS, MEDIA_PHOTOS, KEYS_USERS, KEYS_DEVICES, KEYS_SAMPLES, PROFILE_ROOMS, IDLE_CLIENTS,
# IDLE_SECONDS.
# SCENARIOS="push media" runs only those; their rows replace the old ones in
# benches/results.jsonl, from which benches/RESULTS.md is rendered.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth-target}"
venv="${SYNAPSE_VENV:-$HOME/.cache/synapse-venv}"
work="$(mktemp -d)"
hearth_pid=""
synapse_pid=""
cleanup() {
  for pid in "$hearth_pid" "$synapse_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

./hearth.sh setup
if ! "$venv/bin/python" -c 'import synapse' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q matrix-synapse
fi
cargo build -q --release --bin hearth --bin hearth-bench
bench="$CARGO_TARGET_DIR/release/hearth-bench"

# Hearth: defaults (argon2id 19 MiB/2 passes, fsync'd writes), registration open, no rate limits.
cat > "$work/hearth.toml" <<EOT
database_path = "$work/hearth-db"
port = 18208
allow_registration = true
log_level = "warn"
[rate_limits]
enabled = false
[push]
# The bench is the push gateway, on loopback.
allow_private_addresses = true
EOT
"$CARGO_TARGET_DIR/release/hearth" --config "$work/hearth.toml" serve > "$work/hearth.log" 2>&1 &
hearth_pid=$!

# Synapse: generated config, SQLite, registration open without verification, rate limits off.
mkdir -p "$work/synapse"
(cd "$work/synapse" && "$venv/bin/python" -m synapse.app.homeserver --server-name localhost \
  --config-path "$work/synapse/homeserver.yaml" --data-directory "$work/synapse" --generate-config --report-stats=no > /dev/null)
# The generated file may end without a newline (a trailing comment): start on a fresh line.
printf '\n' >> "$work/synapse/homeserver.yaml"
cat >> "$work/synapse/homeserver.yaml" <<EOT
enable_registration: true
enable_registration_without_verification: true
suppress_key_server_warning: true
trusted_key_servers: []
rc_message: {per_second: 100000, burst_count: 100000}
rc_registration: {per_second: 100000, burst_count: 100000}
rc_login: {address: {per_second: 100000, burst_count: 100000}, account: {per_second: 100000, burst_count: 100000}, failed_attempts: {per_second: 100000, burst_count: 100000}}
rc_joins: {local: {per_second: 100000, burst_count: 100000}, remote: {per_second: 100000, burst_count: 100000}}
rc_joins_per_room: {per_second: 100000, burst_count: 100000}
rc_room_creation: {per_second: 100000, burst_count: 100000}
rc_invites: {per_room: {per_second: 100000, burst_count: 100000}, per_user: {per_second: 100000, burst_count: 100000}}
rc_presence: {per_user: {per_second: 100000, burst_count: 100000}}
# The bench is the push gateway, on loopback.
ip_range_whitelist: ['127.0.0.0/8']
EOT
python3 - "$work/synapse/homeserver.yaml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(r"(?ms)^listeners:.*?(?=^\S)", "listeners:\n  - port: 18108\n    tls: false\n    type: http\n    x_forwarded: false\n    bind_addresses: ['127.0.0.1']\n    resources:\n      - names: [client]\n        compress: false\n", text)
open(path, "w").write(text)
PY
# Synapse writes its log file into the working directory: keep it in the scratch dir.
(cd "$work/synapse" && exec "$venv/bin/python" -m synapse.app.homeserver --config-path "$work/synapse/homeserver.yaml" > "$work/synapse.log" 2>&1) &
synapse_pid=$!

wait_up() {
  for _ in $(seq 1 300); do
    if python3 -c "import urllib.request; urllib.request.urlopen('$1/_matrix/client/versions')" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "server at $1 did not start" >&2; return 1
}
wait_up http://127.0.0.1:18208
wait_up http://127.0.0.1:18108

results="$work/results.jsonl"
all_scenarios="register send concurrent fanout initial-sync push keys-query keys-claim media profile idle"
selected=" ${SCENARIOS:-$all_scenarios} "
scenario() {
  local name="$1"; shift
  [[ "$selected" == *" $name "* ]] || return 0
  for server in hearth synapse; do
    local url pid
    local other
    if [ "$server" = hearth ]; then url=http://127.0.0.1:18208; pid=$hearth_pid; other=$synapse_pid; else url=http://127.0.0.1:18108; pid=$synapse_pid; other=$hearth_pid; fi
    local out
    # The other server must be idle too: its background work would land in this one's numbers.
    out="$("$bench" --url "$url" --pid "$pid" --also-idle "$other" --prefix "${name//-/}$RANDOM" "$@" 2>/dev/null || true)"
    [ -n "$out" ] || out='{"error":"no output"}'
    printf '{"scenario":"%s","server":"%s","result":%s}\n' "$name" "$server" "$out" >> "$results"
    echo "$name $server: $out"
  done
}
scenario register register --users "${REGISTER_USERS:-50}"
scenario send send --messages "${SEND_MESSAGES:-500}"
scenario concurrent concurrent --senders "${CONCURRENT_SENDERS:-10}" --messages "${CONCURRENT_MESSAGES:-50}"
scenario fanout fanout --receivers "${FANOUT_RECEIVERS:-20}" --messages "${FANOUT_MESSAGES:-50}"
scenario initial-sync initial-sync --rooms "${SYNC_ROOMS:-50}" --members "${SYNC_MEMBERS:-50}" --events "${SYNC_EVENTS:-20}" --samples "${SYNC_SAMPLES:-20}"
scenario push push --members "${PUSH_MEMBERS:-1000}" --pushers "${PUSH_PUSHERS:-100}" --messages "${PUSH_MESSAGES:-20}"
scenario keys-query keys-query --users "${KEYS_USERS:-500}" --samples "${KEYS_SAMPLES:-20}"
scenario keys-claim keys-claim --devices "${KEYS_DEVICES:-100}" --samples "${KEYS_SAMPLES:-20}"
scenario media media --size-mib "${MEDIA_MIB:-20}" --rounds "${MEDIA_ROUNDS:-3}" --photos "${MEDIA_PHOTOS:-3}"
scenario profile profile --rooms "${PROFILE_ROOMS:-500}"
scenario idle idle --clients "${IDLE_CLIENTS:-200}" --seconds "${IDLE_SECONDS:-10}"

python3 benches/report.py merge "$results" "$(git rev-parse --short HEAD)"
python3 benches/report.py render > benches/RESULTS.md
echo "wrote benches/RESULTS.md"
