// matrix-js-sdk (the SDK inside Element Web) against a running hearth: two users register,
// both start the client the way Element does (startClient: push rules, capabilities, filters,
// the first sync), chat in a room, and the receiver sees the message and its unread count.
// Usage: node tests/clients/jssdk_client.mjs http://127.0.0.1:PORT SDK_DIR
// The SDK comes from SDK_DIR/node_modules (tests/clients/run.sh installs it there).
import { pathToFileURL } from "node:url";

const base = process.argv[2];
const sdkPath = `${process.argv[3]}/node_modules/matrix-js-sdk/lib/index.js`;
const sdk = await import(pathToFileURL(sdkPath).href);
// The SDK logs every request at debug level; warnings and errors are enough here.
const { logger } = await import(pathToFileURL(`${process.argv[3]}/node_modules/matrix-js-sdk/lib/logger.js`).href);
logger.setLevel("warn");

function fail(message) {
  console.error(`jssdk: ${message}`);
  process.exit(1);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function register(localpart) {
  const response = await fetch(`${base}/_matrix/client/v3/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: localpart, password: "js-pw", auth: { type: "m.login.dummy" } }),
  });
  const body = await response.json();
  if (!response.ok) fail(`register ${localpart}: ${JSON.stringify(body)}`);
  return body;
}

async function started(session) {
  const client = sdk.createClient({
    baseUrl: base,
    userId: session.user_id,
    accessToken: session.access_token,
    deviceId: session.device_id,
  });
  const prepared = new Promise((resolve, reject) => {
    client.on(sdk.ClientEvent.Sync, (state, _previous, data) => {
      if (state === "PREPARED") resolve();
      if (state === "ERROR") reject(new Error(`sync error: ${data?.error?.message ?? state}`));
    });
  });
  await client.startClient({ initialSyncLimit: 10 });
  await withTimeout(prepared, 20000, `first sync of ${session.user_id}`);
  return client;
}

const aliceSession = await register(`alice${process.pid}`);
const bobSession = await register(`bob${process.pid}`);
const alice = await started(aliceSession);
const bob = await started(bobSession);

// startClient read the push rules: the server defaults are there.
const rules = alice.pushRules;
if (!rules?.global?.override?.some((r) => r.rule_id === ".m.rule.master")) {
  fail(`push rules not loaded: ${JSON.stringify(rules)}`);
}

const { room_id: roomId } = await alice.createRoom({ preset: "public_chat", name: "js room" });
const joined = new Promise((resolve) => {
  bob.on(sdk.RoomEvent.MyMembership, (room, membership) => {
    if (room.roomId === roomId && membership === "join") resolve();
  });
});
await bob.joinRoom(roomId);
await withTimeout(joined, 20000, "bob's join reaching his sync");

const received = new Promise((resolve) => {
  bob.on(sdk.RoomEvent.Timeline, (event, room) => {
    if (room?.roomId === roomId && event.getType() === "m.room.message") resolve(event);
  });
});
await alice.sendTextMessage(roomId, "hello from js-sdk");
const event = await withTimeout(received, 20000, "the message reaching bob");
if (event.getContent().body !== "hello from js-sdk") fail(`wrong message ${JSON.stringify(event.getContent())}`);

// The unread count of the room follows the push rules (a plain message notifies).
const counted = await withTimeout(
  (async () => {
    for (;;) {
      const room = bob.getRoom(roomId);
      const total = room?.getUnreadNotificationCount(sdk.NotificationCountType.Total) ?? 0;
      if (total >= 1) return total;
      await new Promise((r) => setTimeout(r, 100));
    }
  })(),
  20000,
  "the unread count",
);
if (counted !== 1) fail(`unread count ${counted}, expected 1`);

alice.stopClient();
bob.stopClient();
console.log("jssdk: startClient, push rules, room, message and unread count ok");
process.exit(0);
