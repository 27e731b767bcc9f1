#!/usr/bin/env bash
# Runs real Matrix client libraries against a freshly started hearth process: the admin CLI
# creates a user through the admin socket, matrix-nio (PyPI) registers another, logs in, reads
# and writes the profile, lists devices and logs out; two nio clients then chat (room, invite,
# messages both ways, typing, read receipts) and share media (an image and a file as m.image and
# m.file, byte-identical downloads, thumbnails of the asked sizes); matrix-js-sdk (npm, the SDK
# inside Element Web) starts two clients as Element does and chats, then chats end-to-end
# encrypted with its Rust crypto (new devices, cross-signing, key backup); Hydrogen (npm
# hydrogen-view-sdk, the whole web app) runs in Debian's headless Chromium through playwright-core,
# logs in with a password, loads its end-to-end encrypted session, shows a user's avatar as a
# thumbnail and sends an encrypted message; then the server must stop cleanly on SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/hearth-target}"
venv="${HEARTH_CLIENT_VENV:-$HOME/.cache/hearth-venv}"
nio_version="0.26.0"
jssdk="${HEARTH_JSSDK:-$HOME/.cache/hearth-jssdk}"
jssdk_version="37.5.0"
hydrogen="${HYDROGEN_CACHE:-$HOME/.cache/hearth-hydrogen}"
hydrogen_version="0.3.1"
playwright_version="1.65.1"

if ! "$venv/bin/python" -c 'import nio' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "matrix-nio==$nio_version"
fi
if [ "$(node -p "require('$jssdk/node_modules/matrix-js-sdk/package.json').version" 2>/dev/null)" != "$jssdk_version" ]; then
  command -v npm >/dev/null || { echo "run.sh: Node.js 20+ with npm is needed for matrix-js-sdk" >&2; exit 1; }
  mkdir -p "$jssdk"
  npm install --prefix "$jssdk" --no-audit --no-fund --silent "matrix-js-sdk@$jssdk_version"
fi
if [ "$(node -p "require('$hydrogen/node_modules/hydrogen-view-sdk/package.json').version + ' ' + require('$hydrogen/node_modules/playwright-core/package.json').version" 2>/dev/null)" != "$hydrogen_version $playwright_version" ]; then
  mkdir -p "$hydrogen"
  npm install --prefix "$hydrogen" --no-audit --no-fund --silent "hydrogen-view-sdk@$hydrogen_version" "playwright-core@$playwright_version"
fi
[ -x /usr/bin/chromium ] || { echo "run.sh: Debian's chromium is needed for Hydrogen (./hearth.sh setup installs it)" >&2; exit 1; }
# HEARTH_BIN=path runs that binary instead of building one (the target dir may be shared).
# It is unset before hearth starts: hearth reads every HEARTH_* variable as a setting.
hearth_bin="${HEARTH_BIN:-}"
unset HEARTH_BIN
if [ -z "$hearth_bin" ]; then
  cargo build -q --bin hearth
  hearth_bin="$target/debug/hearth"
fi

work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$work/hearth.toml" <<EOT
database_path = "$work/db"
port = $port
allow_registration = true
[rate_limits]
enabled = false
EOT

"$hearth_bin" --config "$work/hearth.toml" serve > "$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/_matrix/client/versions')" 2>/dev/null; then break; fi
  sleep 0.1
done

printf 'admin-made-pw\n' > "$work/pw"
"$hearth_bin" --config "$work/hearth.toml" user create cli-user --password-file "$work/pw"

status=0
"$venv/bin/python" tests/clients/nio_client.py "http://127.0.0.1:$port" || status=$?
"$venv/bin/python" tests/clients/nio_chat.py "http://127.0.0.1:$port" || status=$?
"$venv/bin/python" tests/clients/nio_media.py "http://127.0.0.1:$port" || status=$?
node tests/clients/jssdk_client.mjs "http://127.0.0.1:$port" "$jssdk" || status=$?
node tests/clients/jssdk_e2ee.mjs "http://127.0.0.1:$port" "$jssdk" || status=$?
# The screenshot goes to $HYDROGEN_SCREENSHOT, default /tmp/hearth-hydrogen.png.
node tests/clients/hydrogen/hydrogen_client.mjs "http://127.0.0.1:$port" "$hydrogen" || status=$?

kill -TERM "$pid"
server_status=0
wait "$pid" || server_status=$?
pid=""
if [ "$server_status" != 0 ]; then
  echo "hearth exited with $server_status after SIGTERM" >&2
  status=1
fi
if [ "$status" != 0 ]; then
  echo "--- server log ---" >&2
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
