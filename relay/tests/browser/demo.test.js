// Headless Chromium test of the wsmp-relay demo page (relay/web/), driven by
// playwright-core. Started by run.sh, which provides:
//   PLAYWRIGHT_CORE  path of the installed playwright-core package
//   CHROMIUM         browser binary (Debian's /usr/bin/chromium)
//   RELAY_URL        http://127.0.0.1:PORT of a running relay
//   SCREENSHOT, SCREENSHOT_B  PNG paths for pages A and B
//   RELAY_JWT_URL    http://127.0.0.1:PORT of a relay with --jwt-key-file JWT_KEY_FILE
//   JWT_KEY_FILE     its HS256 secret (one trailing newline stripped)
// Exits 0 when every check passed, 1 on the first failure.
"use strict";

const { chromium } = require(process.env.PLAYWRIGHT_CORE || "playwright-core");
const crypto = require("crypto");
const fs = require("fs");

const RELAY_URL = process.env.RELAY_URL;
const STEP_MS = 10000; // any single wait
const TOTAL_MS = 75000; // the whole run

function fail(msg) {
  const err = new Error(msg);
  err.isCheck = true;
  throw err;
}

function check(cond, msg) {
  if (!cond) fail(msg);
}

const log = (...a) => console.log("[demo.test]", ...a);

// An HS256 JWT (RFC 7519) signed with `secret`, written out here so the
// test does not share code with the relay's verifier.
function signJwt(claims, secret) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const input = b64({ alg: "HS256", typ: "JWT" }) + "." + b64(claims);
  const sig = crypto.createHmac("sha256", secret).update(input).digest("base64url");
  return input + "." + sig;
}

async function main() {
  check(RELAY_URL, "RELAY_URL not set");
  const room = "browser-" + Math.random().toString(36).slice(2, 10);
  const pageUrl = RELAY_URL + "/room/" + room;

  // The flags this machine needs (env/machines/rust.md); Playwright adds
  // --headless and a fresh empty --user-data-dir (under TMPDIR) itself.
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    timeout: 30000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const problems = [];
  try {
    const open = async (name) => {
      const ctx = await browser.newContext({ viewport: { width: 1000, height: 760 } });
      const page = await ctx.newPage();
      page.setDefaultTimeout(STEP_MS);
      page.on("pageerror", (e) => problems.push(`${name}: page error: ${e.message}`));
      page.on("response", (r) => {
        if (r.status() >= 400) problems.push(`${name}: HTTP ${r.status()} for ${r.url()}`);
      });
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(`${name}: console error: ${m.text()}`);
      });
      const resp = await page.goto(pageUrl, { waitUntil: "load" });
      check(resp && resp.status() === 200, `${name}: GET ${pageUrl} -> ${resp && resp.status()}`);
      check((await page.title()) === "wsmp-relay demo", `${name}: unexpected title`);
      // /room/NAME pre-fills the room field.
      check((await page.inputValue("#room")) === room, `${name}: room not pre-filled from the URL`);
      check(await page.isDisabled("#text"), `${name}: text input enabled before connecting`);
      return page;
    };

    const join = async (name, page) => {
      await page.click("#connect");
      await page.waitForFunction(() => /^you are peer \d+$/.test(document.getElementById("me").textContent));
      const id = Number((await page.textContent("#me")).replace("you are peer ", ""));
      check(Number.isInteger(id) && id >= 2, `${name}: bad own id ${id}`);
      check((await page.textContent("#status")) === "Connected", `${name}: status not "Connected"`);
      await page.waitForFunction(() => !document.getElementById("text").disabled);
      // permessage-deflate negotiated (the relay's default --compression shared),
      // as the page reports it from ws.extensions.
      const ext = await page.getAttribute("#compression", "data-extensions");
      check(
        ext === "permessage-deflate; server_no_context_takeover",
        `${name}: ws.extensions is ${JSON.stringify(ext)}, want permessage-deflate; server_no_context_takeover`,
      );
      check((await page.textContent("#compression")) === "compressed", `${name}: page does not say compressed`);
      log(`${name} is peer ${id} (${ext})`);
      return id;
    };

    // Peer list = exactly `ids` (sorted), count badge and target <select> agree.
    const expectPeers = async (name, page, ids) => {
      const want = ids.slice().sort((a, b) => a - b).map(String);
      try {
        await page.waitForFunction(
          (w) => {
            const got = Array.from(document.querySelectorAll("#peers li[data-id]")).map((li) => li.dataset.id);
            return JSON.stringify(got) === JSON.stringify(w);
          },
          want,
        );
      } catch (e) {
        const got = await page.$$eval("#peers li[data-id]", (lis) => lis.map((li) => li.dataset.id));
        fail(`${name}: peer list ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
      }
      check((await page.textContent("#peer-count")) === String(want.length), `${name}: peer count badge`);
      const opts = await page.$$eval("#target option", (os) => os.map((o) => o.value));
      check(JSON.stringify(opts) === JSON.stringify(["0", ...want]), `${name}: target options ${opts}`);
      for (const id of want) {
        check((await page.textContent(`#peers li[data-id="${id}"]`)) === "peer " + id, `${name}: label of ${id}`);
      }
    };

    // Every chat line (not system lines) as {who, text}.
    const chatLines = (page) =>
      page.$$eval("#messages li", (lis) =>
        lis
          .filter((li) => !li.classList.contains("sys") && !li.classList.contains("err"))
          .map((li) => {
            const who = li.querySelector(".who");
            return { cls: li.className, who: who ? who.textContent : "", text: li.lastChild.textContent };
          }),
      );

    const expectChat = async (name, page, who, text) => {
      try {
        await page.waitForFunction(
          ([w, t]) =>
            Array.from(document.querySelectorAll("#messages li")).some(
              (li) => li.querySelector(".who")?.textContent === w && li.lastChild.textContent === t,
            ),
          [who, text],
        );
      } catch (e) {
        fail(`${name}: no message ${JSON.stringify(text)} from ${JSON.stringify(who)}; has ${JSON.stringify(await chatLines(page))}`);
      }
    };

    const say = async (page, target, text) => {
      await page.selectOption("#target", String(target));
      await page.fill("#text", text);
      await page.press("#text", "Enter");
      await page.waitForFunction(() => document.getElementById("text").value === "");
    };

    const a = await open("A");
    const b = await open("B");
    const c = await open("C");

    const idA = await join("A", a);
    await expectPeers("A", a, []);
    const idB = await join("B", b);
    check(idA !== idB, "A and B got the same id");
    await expectPeers("A", a, [idB]);
    await expectPeers("B", b, [idA]);
    const idC = await join("C", c);
    check(idC !== idA && idC !== idB, "C's id is not unique");
    await expectPeers("A", a, [idB, idC]);
    await expectPeers("B", b, [idA, idC]);
    await expectPeers("C", c, [idA, idB]);

    // Broadcast (target 0): 07 03 00 00 00 00 03 <text> -> everyone but the sender.
    const hello = "hello everyone ✓ " + room;
    await say(a, 0, hello);
    await expectChat("A", a, "you → everyone", hello);
    await expectChat("B", b, "peer " + idA, hello);
    await expectChat("C", c, "peer " + idA, hello);

    // Single peer: B clicks A in its peer list, which selects A as the target.
    await b.click(`#peers li[data-id="${idA}"]`);
    check((await b.inputValue("#target")) === String(idA), "B: clicking peer A did not select it");
    check(
      await b.$eval(`#peers li[data-id="${idA}"]`, (li) => li.classList.contains("selected")),
      "B: peer A not highlighted",
    );
    const secret = "just for you, " + idA;
    await b.fill("#text", secret);
    await b.click("#send");
    await expectChat("B", b, "you → peer " + idA, secret);
    await expectChat("A", a, "peer " + idB, secret);

    // C sends to B only; afterwards C must have seen neither private message
    // and A not C's (the marker proves the private one had time to arrive).
    const toB = "only B sees this";
    await say(c, idB, toB);
    await expectChat("B", b, "peer " + idC, toB);
    const marker = "marker " + room;
    await say(b, 0, marker);
    await expectChat("A", a, "peer " + idB, marker);
    await expectChat("C", c, "peer " + idB, marker);
    check(!(await chatLines(c)).some((l) => l.text === secret), "C received B's message for A");
    check(!(await chatLines(a)).some((l) => l.text === toB), "A received C's message for B");
    check(!(await chatLines(a)).some((l) => l.text === hello && l.who !== "you → everyone"), "A got its own broadcast back");

    // C leaves: DEL_PEER reaches A and B.
    await c.click("#disconnect");
    await c.waitForFunction(() => document.getElementById("status").textContent === "Not connected");
    await expectPeers("A", a, [idB]);
    await expectPeers("B", b, [idA]);
    check(await c.isEnabled("#connect"), "C: Connect not enabled after leaving");

    // The player-token field: ?token= on the upgrade (relay with --jwt-key-file).
    if (process.env.RELAY_JWT_URL) {
      const secret = fs.readFileSync(process.env.JWT_KEY_FILE, "utf8").replace(/\r?\n$/, "");
      const tokenRoom = "jwt-" + room;
      const exp = Math.floor(Date.now() / 1000) + 600;
      const ctx = await browser.newContext();
      const t = await ctx.newPage();
      t.setDefaultTimeout(STEP_MS);
      t.on("pageerror", (e) => problems.push(`T: page error: ${e.message}`));
      await t.goto(process.env.RELAY_JWT_URL + "/room/" + tokenRoom, { waitUntil: "load" });
      // A token for another room: the upgrade is refused (HTTP 401) and the page says so.
      await t.fill("#jwt", signJwt({ exp, room: "elsewhere", sub: "browser" }, secret));
      await t.click("#connect");
      await t.waitForFunction(() =>
        Array.from(document.querySelectorAll("#messages li.err")).some((li) =>
          li.textContent.includes("refused the connection")),
      );
      check((await t.textContent("#status")) === "Not connected", "T: wrong-room token not refused");
      // A token for this room: joined at once, without the auth exchange.
      await t.fill("#jwt", signJwt({ exp, room: tokenRoom, sub: "browser" }, secret));
      await t.click("#connect");
      await t.waitForFunction(() => /^you are peer \d+$/.test(document.getElementById("me").textContent));
      check((await t.textContent("#status")) === "Connected", "T: valid token: status not \"Connected\"");
      await t.waitForFunction(() => !document.getElementById("text").disabled);
      check(
        !(await t.textContent("#status")).includes(secret) && !(await t.textContent("#messages")).includes("eyJ"),
        "T: the token is shown on the page",
      );
      await t.click("#disconnect");
      await t.waitForFunction(() => document.getElementById("status").textContent === "Not connected");
      log("player token: refused for another room, joined with ?token= for its room");
    }

    await a.screenshot({ path: process.env.SCREENSHOT || "relay-demo.png", fullPage: true });
    if (process.env.SCREENSHOT_B) await b.screenshot({ path: process.env.SCREENSHOT_B, fullPage: true });

    check(problems.length === 0, "browser reported errors:\n  " + problems.join("\n  "));
    log("all checks passed; screenshot", process.env.SCREENSHOT);
  } finally {
    await browser.close();
  }
}

const guard = setTimeout(() => {
  console.error("[demo.test] FAILED: timed out after", TOTAL_MS, "ms");
  process.exit(1);
}, TOTAL_MS);
main().then(
  () => {
    clearTimeout(guard);
    process.exit(0);
  },
  (e) => {
    console.error("[demo.test] FAILED:", e.isCheck ? e.message : e.stack || e);
    process.exit(1);
  },
);
