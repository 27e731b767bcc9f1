// Hydrogen (hydrogen-view-sdk, the whole web app: login view, session, room list, timeline) in
// Debian's headless Chromium against a running hearth, driven by playwright-core.
//
// Over the client API, bob makes a room, alice (the Hydrogen user) joins it, bob uploads a PNG,
// makes it his avatar (PUT /profile/{userId}/avatar_url; the server must carry it into his
// m.room.member event in the room) and writes a message; then the room turns on encryption.
// In the browser, alice logs in through Hydrogen's login form with her password; the session
// must load (keys/upload of a new olm identity, the first /sync) to the Ready state with no load
// error. She opens the room from the room list: the message's avatar must be an <img> that
// loaded (naturalWidth > 0) from a thumbnail endpoint. She answers from the composer, and the
// server must receive an m.room.encrypted event (keys/query of the members on the way).
//
// Usage: node tests/clients/hydrogen/hydrogen_client.mjs http://127.0.0.1:PORT CACHE_DIR
// CACHE_DIR/node_modules holds hydrogen-view-sdk and playwright-core (tests/clients/run.sh
// installs them). The screenshot goes to $HYDROGEN_SCREENSHOT or /tmp/hearth-hydrogen.png.
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { deflateSync } from "node:zlib";

const base = process.argv[2];
const cacheDir = process.argv[3];
if (!base || !cacheDir) {
  console.error("usage: hydrogen_client.mjs BASE_URL CACHE_DIR");
  process.exit(2);
}
const screenshotPath = process.env.HYDROGEN_SCREENSHOT || "/tmp/hearth-hydrogen.png";
const here = dirname(fileURLToPath(import.meta.url));
const nodeModules = resolve(cacheDir, "node_modules");
const { chromium } = await import(pathToFileURL(join(nodeModules, "playwright-core/index.mjs")).href);

let context = null;
let server = null;
let profileDir = null;

async function cleanup() {
  if (context) await context.close().catch(() => {});
  context = null;
  if (server) server.close();
  server = null;
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  profileDir = null;
}

async function fail(message) {
  console.error(`hydrogen: ${message}`);
  if (context) {
    const page = context.pages()[0];
    if (page) {
      await page.screenshot({ path: screenshotPath }).catch(() => {});
      console.error(`hydrogen: screenshot of the failure: ${screenshotPath}`);
    }
  }
  await cleanup();
  process.exit(1);
}

// The whole test is bounded: a hang anywhere ends it.
const watchdog = setTimeout(() => fail("timed out after 180 s"), 180_000);

// --- the client API, as bob and alice set things up ----------------------------------------

async function api(method, path, { token, body, raw, contentType } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (raw) headers["content-type"] = contentType;
  else if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  if (!response.ok) await fail(`${method} ${path}: ${response.status} ${text}`);
  return json;
}

async function register(localpart, password) {
  return api("POST", "/_matrix/client/v3/register", {
    body: { username: localpart, password, auth: { type: "m.login.dummy" }, initial_device_display_name: "setup" },
  });
}

// A 128×128 PNG in four colours, made here (zlib is all it takes).
function avatarPng() {
  const size = 128;
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, "ascii");
    data.copy(out, 8);
    out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const rows = Buffer.alloc(size * (1 + size * 3));
  const colours = [
    [230, 80, 30],
    [30, 120, 230],
    [40, 180, 90],
    [250, 200, 30],
  ];
  for (let y = 0; y < size; y++) {
    const row = y * (1 + size * 3);
    rows[row] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      const [r, g, b] = colours[(y < size / 2 ? 0 : 2) + (x < size / 2 ? 0 : 1)];
      rows.set([r, g, b], row + 1 + x * 3);
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(rows)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const tag = `${process.pid}`;
const alicePassword = "hydrogen-pw";
const alice = await register(`halice${tag}`, alicePassword);
const bob = await register(`hbob${tag}`, "hydrogen-bob-pw");
const roomName = `Hydrogen room ${tag}`;
const { room_id: roomId } = await api("POST", "/_matrix/client/v3/createRoom", {
  token: bob.access_token,
  body: { preset: "private_chat", name: roomName, invite: [alice.user_id] },
});
const enc = encodeURIComponent;
await api("POST", `/_matrix/client/v3/join/${enc(roomId)}`, { token: alice.access_token, body: {} });

const { content_uri: avatarMxc } = await api("POST", "/_matrix/media/v3/upload?filename=bob.png", {
  token: bob.access_token,
  raw: avatarPng(),
  contentType: "image/png",
});
if (!avatarMxc?.startsWith("mxc://")) await fail(`upload answered no mxc URI: ${avatarMxc}`);
await api("PUT", `/_matrix/client/v3/profile/${enc(bob.user_id)}/avatar_url`, {
  token: bob.access_token,
  body: { avatar_url: avatarMxc },
});
// The spec's "events on change of profile information": the new avatar reaches the rooms.
// The server sends those member events in the background: wait for it, at most 10 s.
let member = {};
for (let attempt = 0; attempt < 100; attempt++) {
  member = await api("GET", `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.user_id)}`, {
    token: bob.access_token,
  });
  if (member.avatar_url === avatarMxc) break;
  await new Promise((resolve) => setTimeout(resolve, 100));
}
if (member.avatar_url !== avatarMxc || member.membership !== "join") {
  await fail(`bob's m.room.member after the avatar change is ${JSON.stringify(member)}, expected avatar_url ${avatarMxc}`);
}
const bobMessage = `hello from bob ${tag}, with an avatar`;
await api("PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/m1`, {
  token: bob.access_token,
  body: { msgtype: "m.text", body: bobMessage },
});
await api("PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.encryption/`, {
  token: bob.access_token,
  body: { algorithm: "m.megolm.v1.aes-sha2" },
});

// --- a static server for the page, the SDK and its assets -----------------------------------

const types = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".png": "image/png",
};
// URL prefix → directory. /cjs/ serves CommonJS files of node_modules wrapped as ES modules.
const roots = [
  ["/sdk/", join(nodeModules, "hydrogen-view-sdk")],
  ["/olm/", join(nodeModules, "@matrix-org/olm")],
  ["/modules/", nodeModules],
  ["/cjs/", nodeModules],
];

function fileUnder(root, rest) {
  const path = resolve(root, decodeURIComponent(rest));
  if (path !== root && !path.startsWith(root + sep)) return null;
  try {
    return statSync(path).isFile() ? path : null;
  } catch {
    return null;
  }
}

function asEsModule(source) {
  return [
    "const module = { exports: {} }; const exports = module.exports;",
    "const process = { env: { NODE_ENV: 'production' } };",
    "(function (module, exports, process) {",
    source,
    "}).call(globalThis, module, exports, process);",
    "export default module.exports;",
  ].join("\n");
}

const served = [];
server = createServer((request, response) => {
  const pathname = new URL(request.url, "http://127.0.0.1").pathname;
  served.push(pathname);
  const send = (status, type, body) => {
    response.writeHead(status, { "content-type": type, "cache-control": "no-store" });
    response.end(body);
  };
  if (pathname === "/" || pathname === "/index.html") return send(200, types[".html"], readFileSync(join(here, "index.html")));
  if (pathname === "/main.js") return send(200, types[".js"], readFileSync(join(here, "main.js")));
  if (pathname === "/sw.js") return send(200, types[".js"], readFileSync(join(nodeModules, "hydrogen-view-sdk/lib-build/sw.js")));
  if (pathname === "/config.json") return send(200, types[".json"], JSON.stringify({ defaultHomeServer: base }));
  if (pathname === "/empty.js") return send(200, types[".js"], "export {};\n");
  for (const [prefix, root] of roots) {
    if (!pathname.startsWith(prefix)) continue;
    const file = fileUnder(root, pathname.slice(prefix.length));
    if (!file) break;
    if (prefix === "/cjs/") return send(200, types[".js"], asEsModule(readFileSync(file, "utf8")));
    return send(200, types[extname(file)] ?? "application/octet-stream", readFileSync(file));
  }
  send(404, "text/plain", "not found");
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const pageUrl = `http://127.0.0.1:${server.address().port}/`;

// --- the browser ----------------------------------------------------------------------------

profileDir = mkdtempSync(join(tmpdir(), "hearth-hydrogen-profile-"));
context = await chromium.launchPersistentContext(profileDir, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1280, height: 800 },
  deviceScaleFactor: 1,
});
const page = context.pages()[0] ?? (await context.newPage());

const problems = [];
page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
page.on("console", (message) => {
  if (message.type() === "error") problems.push(`console error: ${message.text()}`);
});
// Every request to hearth the page made (through the service worker or not), with its answer.
const calls = [];
page.on("response", (response) => {
  const url = response.url();
  if (url.startsWith(base)) {
    calls.push({
      method: response.request().method(),
      url,
      path: new URL(url).pathname,
      status: response.status(),
      type: response.headers()["content-type"] ?? "",
    });
  }
});
const called = (method, suffix) => calls.filter((c) => c.method === method && c.path.endsWith(suffix));

await page.goto(pageUrl);
await page.waitForFunction(() => window.hearthTest || window.hearthTestError, null, { timeout: 30_000 }).catch(() => {});
const startError = await page.evaluate(() => window.hearthTestError);
if (startError) await fail(`Hydrogen did not start: ${startError}`);

// Login: the form Hydrogen shows once it has read the server's login flows.
await page.locator("#username").waitFor({ timeout: 30_000 });
if ((await page.inputValue("#homeserver").catch(() => base)) !== base) {
  await page.fill("#homeserver", base);
}
await page.fill("#username", alice.user_id.slice(1).split(":")[0]);
await page.fill("#password", alicePassword);
await page.getByRole("button", { name: "Log In" }).click();

// The session: Hydrogen creates its olm identity (keys/upload), syncs, and reaches Ready.
const loaded = await page
  .waitForFunction(
    () => {
      const client = window.__hydrogenViewModel?._sessionViewModel?._client;
      if (!client) return false;
      const status = client.loadStatus.get();
      if (client.loadError || status === "Error" || status === "LoginFailed") {
        return { status, error: `${client.loadError?.stack ?? client.loadError ?? client.loginFailure}` };
      }
      return status === "Ready" ? { status } : false;
    },
    null,
    { timeout: 60_000, polling: 100 },
  )
  .then((handle) => handle.jsonValue())
  .catch(async () => {
    const section = await page.evaluate(() => window.__hydrogenViewModel?.activeSection);
    const text = await page.locator("#app").innerText().catch(() => "");
    return { status: `not loaded (section ${section})`, error: text.slice(0, 500) };
  });
if (loaded.status !== "Ready" || loaded.error) {
  await fail(`session did not load: ${loaded.status}: ${loaded.error}`);
}
await page.locator(".SessionView").waitFor({ timeout: 10_000 });
const keyUploads = called("POST", "/keys/upload").filter((c) => c.status === 200);
if (keyUploads.length === 0) await fail(`no successful POST /keys/upload; calls: ${JSON.stringify(calls.map((c) => `${c.method} ${c.path} ${c.status}`))}`);
const syncs = called("GET", "/sync").filter((c) => c.status === 200);
if (syncs.length === 0) await fail("no successful GET /sync");

// The room, from the room list.
const tile = page.locator(".RoomList li", { hasText: roomName });
await tile.waitFor({ timeout: 30_000 });
await tile.locator("a").first().click();
const message = page.locator(".Timeline_message", { hasText: bobMessage });
await message.waitFor({ timeout: 30_000 });

// Bob's avatar beside his message: an <img> that loaded, from a thumbnail endpoint.
const avatar = message.locator(".Timeline_messageAvatar img");
await avatar.waitFor({ timeout: 30_000 }).catch(async () =>
  fail(`no avatar image beside bob's message: ${await message.innerHTML()}`),
);
const image = await page
  .waitForFunction(
    (img) => (img.complete && img.naturalWidth > 0 ? { src: img.src, width: img.naturalWidth, height: img.naturalHeight } : false),
    await avatar.elementHandle(),
    { timeout: 30_000, polling: 100 },
  )
  .then((handle) => handle.jsonValue())
  .catch(async () => {
    const src = await avatar.getAttribute("src");
    const answer = calls.find((c) => c.url === src);
    return fail(`avatar <img src=${src}> did not load (answer: ${JSON.stringify(answer)})`);
  });
const mediaId = avatarMxc.split("/").pop();
const thumbnailPath = /^\/_matrix\/(client\/v1\/media|media\/v3)\/thumbnail\//;
const imagePath = new URL(image.src).pathname;
if (!thumbnailPath.test(imagePath) || !imagePath.endsWith(`/${mediaId}`)) {
  await fail(`avatar came from ${image.src}, not a thumbnail of ${avatarMxc}`);
}
const thumbnailAnswer = calls.find((c) => c.url === image.src && c.status === 200);
if (!thumbnailAnswer || !thumbnailAnswer.type.startsWith("image/")) {
  await fail(`no 200 image answer recorded for ${image.src}: ${JSON.stringify(calls.filter((c) => c.path.includes("/thumbnail/")))}`);
}

// Alice answers from the composer: the room is encrypted, so Hydrogen queries the members'
// keys and sends an m.room.encrypted event.
const aliceMessage = `hello from Hydrogen ${tag}`;
const composer = page.locator(".MessageComposer textarea, .MessageComposer input[type=text]").first();
await composer.fill(aliceMessage);
await composer.press("Enter");
await page.locator(".Timeline_message", { hasText: aliceMessage }).waitFor({ timeout: 30_000 });
let encrypted = null;
for (let i = 0; i < 100 && !encrypted; i++) {
  const { chunk } = await api(
    "GET",
    `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=10`,
    { token: bob.access_token },
  );
  encrypted = chunk.find((e) => e.sender === alice.user_id && e.type === "m.room.encrypted");
  if (!encrypted) await new Promise((r) => setTimeout(r, 200));
}
if (!encrypted) await fail("alice's message never reached the server as m.room.encrypted");
if (encrypted.content.algorithm !== "m.megolm.v1.aes-sha2") {
  await fail(`alice's message is encrypted with ${encrypted.content.algorithm}`);
}
if (called("POST", "/keys/query").filter((c) => c.status === 200).length === 0) {
  await fail("Hydrogen sent its message without a successful POST /keys/query");
}

// Let the sent message settle in the timeline, then the picture.
await page.waitForTimeout(500);
await page.screenshot({ path: screenshotPath });
// Two 404s are expected: no [well_known] section in the test config, and no dehydrated
// devices (MSC2697/MSC3814). A 5xx is a server bug whatever Hydrogen made of it.
const expected404 = ["/.well-known/matrix/client", "/dehydrated_device"];
const failedCalls = calls.filter((c) => c.status >= 400 && !(c.status === 404 && expected404.some((p) => c.path.endsWith(p))));
const serverErrors = failedCalls.filter((c) => c.status >= 500);
const describe = (list) => list.map((c) => `${c.method} ${c.path} ${c.status}`).join(", ");
if (serverErrors.length) await fail(`hearth answered with server errors: ${describe(serverErrors)}`);
if (failedCalls.length) console.error(`hydrogen: requests answered with an error: ${describe(failedCalls)}`);
const unexplained = problems.filter((p) => !p.includes("Failed to load resource"));
if (unexplained.length) console.error(`hydrogen: browser console: ${unexplained.slice(0, 10).join(" | ")}`);
const endpoints = [...new Set(calls.map((c) => `${c.method} ${c.path.replace(/\/(!|%21|@|%40)[^/]*/g, "/…")}`))];
console.log(`hydrogen: endpoints used: ${endpoints.join(", ")}`);
console.log(
  `hydrogen: login, session Ready (keys/upload, sync), room list, avatar thumbnail ${image.width}×${image.height} from ${imagePath}, encrypted message ok; screenshot ${screenshotPath}`,
);
clearTimeout(watchdog);
await cleanup();
process.exit(0);
