// End-to-end encryption with a real crypto stack: matrix-js-sdk with its Rust crypto (the
// crypto of Element Web) against a running hearth. Alice sets up cross-signing and chats with
// Bob in an encrypted room; Bob's messages decrypt; a second device of Bob that logs in later
// decrypts what is sent after it appears; Alice's key backup is created, uploaded and restored
// on a new device of hers; Bob sees Alice's cross-signing keys.
// Usage: node tests/clients/jssdk_e2ee.mjs http://127.0.0.1:PORT SDK_DIR
import { pathToFileURL } from "node:url";

const [base, sdkDir] = process.argv.slice(2);
const lib = (file) => pathToFileURL(`${sdkDir}/node_modules/matrix-js-sdk/lib/${file}`).href;
const sdk = await import(lib("index.js"));
const { logger } = await import(lib("logger.js"));
logger.setLevel("error");

const password = "e2ee-pw";
const suffix = process.pid;

function fail(message) {
  console.error(`jssdk-e2ee: ${message}`);
  process.exit(1);
}

function step(message) {
  console.log(`ok   ${message}`);
}

async function within(ms, what, check) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) fail(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function api(method, path, token, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) fail(`${method} ${path}: ${JSON.stringify(json)}`);
  return json;
}

async function register(name) {
  return api("POST", "/_matrix/client/v3/register", null, {
    username: name,
    password,
    auth: { type: "m.login.dummy" },
  });
}

async function login(name) {
  return api("POST", "/_matrix/client/v3/login", null, {
    type: "m.login.password",
    identifier: { type: "m.id.user", user: name },
    password,
  });
}

/** A started client with Rust crypto, once its first sync is done. */
async function start(session) {
  const client = sdk.createClient({
    baseUrl: base,
    userId: session.user_id,
    accessToken: session.access_token,
    deviceId: session.device_id,
  });
  await client.initRustCrypto({ useIndexedDB: false });
  const prepared = new Promise((resolve) => {
    client.on(sdk.ClientEvent.Sync, (state) => state === "PREPARED" && resolve());
  });
  await client.startClient({ initialSyncLimit: 20 });
  await prepared;
  return client;
}

/** The decrypted body of the first message in `roomId` whose clear text satisfies `want`. */
async function decrypted(client, roomId, want, what) {
  return within(30000, what, async () => {
    const room = client.getRoom(roomId);
    for (const event of room?.getLiveTimeline().getEvents() ?? []) {
      if (event.getWireType() !== "m.room.encrypted") continue;
      await client.decryptEventIfNeeded(event);
      const body = event.getClearContent()?.body;
      if (body && want(body)) return body;
    }
    return null;
  });
}

const aliceName = `alice${suffix}`;
const bobName = `bob${suffix}`;
const aliceSession = await register(aliceName);
const bobSession = await register(bobName);
const alice = await start(aliceSession);
const bob = await start(bobSession);

await alice.getCrypto().bootstrapCrossSigning({
  setupNewCrossSigning: true,
  authUploadDeviceSigningKeys: async (makeRequest) =>
    makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: aliceName }, password }),
});
step("alice sets up cross-signing");

const { room_id: roomId } = await alice.createRoom({
  invite: [bobSession.user_id],
  initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
});
await within(20000, "bob's invite", () => bob.getRoom(roomId)?.getMyMembership() === "invite");
await bob.joinRoom(roomId);
await within(20000, "alice seeing bob join", () => alice.getRoom(roomId)?.getMember(bobSession.user_id)?.membership === "join");
step("encrypted room with bob");

await alice.sendTextMessage(roomId, "secret one");
const first = await decrypted(bob, roomId, (b) => b === "secret one", "bob decrypting the first message");
if (first !== "secret one") fail(`bob read ${first}`);
step("bob decrypts alice's message");

await bob.sendTextMessage(roomId, "reply from bob");
await decrypted(alice, roomId, (b) => b === "reply from bob", "alice decrypting bob's reply");
step("alice decrypts bob's reply");

// A second device of Bob logs in; Alice's client must learn of it from device_lists.
const bob2 = await start(await login(bobName));
await within(30000, "alice seeing bob's second device", async () => {
  const devices = await alice.getCrypto().getUserDeviceInfo([bobSession.user_id], true);
  return devices.get(bobSession.user_id)?.has(bob2.getDeviceId());
});
await alice.sendTextMessage(roomId, "secret two");
await decrypted(bob2, roomId, (b) => b === "secret two", "bob's new device decrypting");
step("bob's second device decrypts what is sent after it appeared");

// Bob sees Alice's cross-signing keys.
const hasKeys = await bob.getCrypto().userHasCrossSigningKeys(aliceSession.user_id, true);
if (!hasKeys) fail("bob does not see alice's cross-signing keys");
step("bob sees alice's cross-signing keys");

// Key backup: created, filled, restored on a new device of Alice.
await alice.getCrypto().resetKeyBackup();
const check = await alice.getCrypto().checkKeyBackupAndEnable();
const backupInfo = check?.backupInfo;
if (!backupInfo?.version) fail(`no backup version after resetKeyBackup: ${JSON.stringify(check)}`);
await within(30000, "room keys reaching the backup", async () => {
  const keys = await api("GET", `/_matrix/client/v3/room_keys/keys?version=${backupInfo.version}`, aliceSession.access_token);
  return Object.keys(keys.rooms?.[roomId]?.sessions ?? {}).length > 0;
});
step("alice's room keys are backed up");
const backupKey = await alice.getCrypto().getSessionBackupPrivateKey();
if (!backupKey) fail("no backup key");
const alice2 = await start(await login(aliceName));
await alice2.getCrypto().storeSessionBackupPrivateKey(backupKey, backupInfo.version);
const restored = await alice2.getCrypto().restoreKeyBackup();
if (!(restored.imported > 0)) fail(`restore imported ${JSON.stringify(restored)}`);
await decrypted(alice2, roomId, (b) => b === "secret one", "the restored key decrypting history");
step(`alice's new device restores ${restored.imported} key(s) and reads the history`);

for (const client of [alice, bob, bob2, alice2]) client.stopClient();
console.log("jssdk-e2ee: encrypted chat, new device, cross-signing and key backup ok");
process.exit(0);
