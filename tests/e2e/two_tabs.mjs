// End-to-end test of the web client: people in separate browser contexts (separate "tabs") use
// the page served by the real service, with a real Mosquitto behind it. Started by run_e2e.py,
// which passes the URLs in the environment (E2E_BASE_URL, E2E_LIVEKIT_URL, E2E_RING_TIMEOUT_S,
// E2E_AUTH_MODE, the user ids and, in jwt mode, their tokens). Driven by playwright-core from
// web/node_modules and the system Chromium.
//
// Story: Dave opens the page with one contact, Carol (?contact=), and an invalid one; then Alice,
// Bob and Carol go online and see each other, while Dave's list shows Carol only (Alice and Bob
// went online before her, so their presence would have reached him first); Dave leaves. Alice calls, Bob's page rings, Bob
// accepts; both pages are in the call, each fetched a LiveKit token for the call's room
// (GET /token 200) and says that no LiveKit server is reachable; Alice hangs up and Bob's page
// shows the call ended. A second call Bob declines (Alice sees "declined"); while it rings,
// Carol tries Bob and her page shows the service's "Receiver busy". A third call rings out and
// both show it missed. A fourth call: Bob reloads his tab while it rings (it rings again and he
// accepts) and again during the call (it goes on); Alice hangs up. Bob closes his tab and leaves
// Alice's list; Carol's tab crashes (no pagehide) and the broker's Last Will takes her off it too. With E2E_AUTH_MODE=jwt everyone
// pastes a user token, which must reach every REST request as `Authorization: Bearer` (and the
// broker as the MQTT password). Screenshots go to tests/e2e/screenshots/ (E2E_SCREENSHOTS
// overrides). Exit 0 = pass, 1 = fail.

import { createRequire } from 'node:module';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const require = createRequire(path.join(repo, 'web', 'package.json'));
const { chromium } = require('playwright-core');

const BASE = process.env.E2E_BASE_URL;
const LIVEKIT_URL = process.env.E2E_LIVEKIT_URL || '';
const RING_TIMEOUT_S = Number(process.env.E2E_RING_TIMEOUT_S || '3');
const SHOTS = process.env.E2E_SCREENSHOTS || path.join(here, 'screenshots');
const JWT = process.env.E2E_AUTH_MODE === 'jwt';
const PREFIX = JWT ? 'jwt-' : ''; // the two modes may run at once: separate screenshot names
const T = 8000; // default wait for anything the UI should show promptly

if (!BASE) {
  console.error('E2E_BASE_URL is not set (run tests/e2e/run_e2e.py)');
  process.exit(1);
}
mkdirSync(SHOTS, { recursive: true });
for (const f of readdirSync(SHOTS)) if (f.startsWith(PREFIX + 'failure-')) rmSync(path.join(SHOTS, f));

const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1) + 's';
const rand = Math.random().toString(16).slice(2, 8);
const ALICE_ID = process.env.E2E_ALICE_ID || `alice-${rand}`;
const BOB_ID = process.env.E2E_BOB_ID || `bob-${rand}`;
const CAROL_ID = process.env.E2E_CAROL_ID || `carol-${rand}`;
const DAVE_ID = process.env.E2E_DAVE_ID || `dave-${rand}`;

class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

function decodeJwt(token) {
  const part = token.split('.')[1];
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

/** One person: a browser context with one page, and what that page saw on the wire. */
async function person(browser, name, id, location, token) {
  const context = await browser.newContext({ viewport: { width: 1180, height: 760 }, colorScheme: 'light' });
  context.setDefaultTimeout(T);
  await context.grantPermissions(['notifications'], { origin: BASE });
  const page = await context.newPage();
  const p = { name, id, location, token, context, page, tokenResponses: [], apiRequests: [], pageErrors: [],
              console: [] };
  page.on('pageerror', (e) => p.pageErrors.push(String(e && e.stack ? e.stack : e)));
  page.on('console', (m) => p.console.push(`[${m.type()}] ${m.text()}`));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (/^\/(calls\/|calls$|token$|users$)/.test(u.pathname)) {
      p.apiRequests.push({ path: u.pathname, authorization: r.headers()['authorization'] || null });
    }
  });
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/token') {
      p.tokenResponses.push({ status: r.status(), room: u.searchParams.get('room'), id: u.searchParams.get('id') });
    }
  });
  return p;
}

async function goOnline(p, query = '') {
  const { page } = p;
  await page.goto(BASE + '/' + query);
  await page.locator('body[data-ready="true"]').waitFor({ timeout: T });
  await page.getByLabel('Name').fill(p.name);
  await page.getByLabel('User id').fill(p.id);
  await page.getByLabel('Location').fill(p.location);
  const tokenField = page.getByLabel('User token');
  check(await tokenField.isVisible() === JWT, `the user-token field is ${JWT ? 'hidden' : 'shown'} in this mode`);
  if (JWT) await tokenField.fill(p.token);
  await page.getByTestId('connect').click();
  await page.locator('[data-testid="conn-status"][data-state="online"]').waitFor({ timeout: T });
}

const userItem = (p, other) => p.page.locator(`[data-testid="user"][data-user-id="${other.id}"]`);
const recent = (p, callId) => p.page.locator(`[data-testid="recent-call"][data-call-id="${callId}"]`);

async function expectOutcome(p, outcome, textPattern) {
  const o = p.page.locator(`[data-testid="call-outcome"][data-outcome="${outcome}"]`);
  await o.waitFor({ timeout: T });
  if (textPattern) {
    const text = await o.textContent();
    check(textPattern.test(text), `${p.name}: outcome text ${JSON.stringify(text)} does not match ${textPattern}`);
  }
}

async function expectRecent(p, callId, outcome, labelPattern) {
  const r = recent(p, callId);
  await r.waitFor({ timeout: T });
  const got = await r.getAttribute('data-outcome');
  check(got === outcome, `${p.name}: recent call ${callId} is "${got}", expected "${outcome}"`);
  const label = await r.getByTestId('recent-outcome').textContent();
  check(labelPattern.test(label), `${p.name}: recent call label ${JSON.stringify(label)} does not match ${labelPattern}`);
}

/** Alice presses Call on Bob; both pages show it; returns the call id. */
async function placeCall(a, b) {
  await userItem(a, b).getByTestId('call-button').click();
  await a.page.getByTestId('calling-view').waitFor({ state: 'visible', timeout: T });
  const calling = await a.page.getByTestId('calling-name').textContent();
  check(calling === b.name, `${a.name}'s calling view names ${JSON.stringify(calling)}`);
  const dialog = b.page.getByTestId('incoming-dialog');
  await dialog.waitFor({ state: 'visible', timeout: T });
  const from = await b.page.getByTestId('incoming-name').textContent();
  check(from === a.name, `${b.name}'s ringing dialog names ${JSON.stringify(from)}`);
  const callId = await dialog.getAttribute('data-call-id');
  check(/^[0-9a-f-]{36}$/.test(callId || ''), `ringing dialog has no call id: ${callId}`);
  return callId;
}

async function shot(p, name) {
  return p.page.screenshot({ path: path.join(SHOTS, PREFIX + name + '.png') });
}

/** The two tabs side by side in one picture (the README's screenshot is one of these). */
async function sideBySide(browser, name, left, right) {
  const page = await browser.newPage({ viewport: { width: 1600, height: 540 } });
  const img = (png, label) => `<figure><img src="data:image/png;base64,${png.toString('base64')}" alt="">` +
    `<figcaption>${label}</figcaption></figure>`;
  await page.setContent(`<style>body{margin:0;padding:14px;display:flex;gap:14px;background:#d9dee7;
    font:600 15px system-ui,sans-serif;color:#333}figure{margin:0;flex:1}img{width:100%;display:block;
    border-radius:8px;box-shadow:0 2px 10px rgba(0,0,0,.18)}figcaption{text-align:center;padding-top:8px}
    </style>${img(left.png, left.label)}${img(right.png, right.label)}`);
  await page.screenshot({ path: path.join(SHOTS, PREFIX + name + '.png'), fullPage: true });
  await page.close();
}

/** What the page's call sounds are doing: { sound: 'ringtone'|'ringback'|'off', audio: 'running'|
 *  'suspended', nodes: tones not ended yet, scheduled: tones scheduled since the pattern started }. */
async function soundOf(p) {
  return p.page.evaluate(() => ({ sound: document.body.dataset.sound, audio: document.body.dataset.audio,
                                  nodes: window.callsignal.sound.activeNodes(),
                                  scheduled: window.callsignal.sound.scheduledCount() }));
}

async function expectSound(p, want) {
  await p.page.locator(`body[data-sound="${want}"]`).waitFor({ timeout: T });
  const s = await soundOf(p);
  // Audible unless the browser's autoplay rules hold it back, and then the page offers a click.
  if (want !== 'off' && s.audio !== 'running') {
    const offer = p.page.getByTestId(want === 'ringtone' ? 'dialog-sound-enable' : 'sound-enable');
    await offer.waitFor({ state: 'visible', timeout: T });
  }
  if (want !== 'off' && s.audio === 'running') check(s.scheduled > 0, `${p.name}: ${want} but no tone scheduled`);
  if (want === 'off') check(s.nodes === 0, `${p.name}: silent, yet ${s.nodes} tones still scheduled`);
  return s;
}

/** The page believes it is in a background tab (document.hidden), or back in front. */
async function setHidden(p, hidden) {
  await p.page.evaluate((h) => {
    if (h) {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    } else {
      delete document.hidden;
      delete document.visibilityState;
    }
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

/** Tabs (at most `limit` presses) until the focused element matches the test id and user. */
async function tabTo(p, testid, userId, limit = 40) {
  for (let i = 0; i < limit; i++) {
    await p.page.keyboard.press('Tab');
    const at = await p.page.evaluate(() => {
      const e = document.activeElement;
      const li = e && e.closest('[data-user-id]');
      return { testid: e && e.dataset ? e.dataset.testid : null, user: li ? li.dataset.userId : null };
    });
    if (at.testid === testid && (!userId || at.user === userId)) return i + 1;
  }
  throw new Failure(`${p.name}: ${limit} Tab presses did not reach ${testid} ${userId || ''}`);
}

const busyBadge = (p, other) => userItem(p, other).getByTestId('busy-badge');

/** Four states in one picture, two by two (docs/web-client-states.png is a copy). */
async function grid(browser, name, tiles) {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const img = (t) => `<figure><img src="data:image/png;base64,${t.png.toString('base64')}" alt="">` +
    `<figcaption>${t.label}</figcaption></figure>`;
  await page.setContent(`<style>body{margin:0;padding:14px;display:grid;grid-template-columns:1fr 1fr;gap:14px;
    background:#d9dee7;font:600 15px system-ui,sans-serif;color:#333}figure{margin:0}img{width:100%;display:block;
    border-radius:8px;box-shadow:0 2px 10px rgba(0,0,0,.18)}figcaption{text-align:center;padding-top:8px}
    </style>${tiles.map(img).join('')}`);
  await page.screenshot({ path: path.join(SHOTS, PREFIX + name + '.png'), fullPage: true });
  await page.close();
}
const gallery = {};

const steps = [];
async function step(title, fn) {
  const s = Date.now();
  await fn();
  steps.push(title);
  console.log(`ok   ${title} (${((Date.now() - s) / 1000).toFixed(1)}s)`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
         '--autoplay-policy=document-user-activation-required', // the desktop default: sound needs a gesture '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const alice = await person(browser, 'Alice Martin', ALICE_ID, 'Lyon', process.env.E2E_ALICE_TOKEN);
const bob = await person(browser, 'Bob Tanaka', BOB_ID, 'Osaka', process.env.E2E_BOB_TOKEN);
const carol = await person(browser, 'Carol Diaz', CAROL_ID, 'Porto', process.env.E2E_CAROL_TOKEN);
const dave = await person(browser, 'Dave Okafor', DAVE_ID, 'Lagos', process.env.E2E_DAVE_TOKEN);
if (JWT) check(alice.token && bob.token && carol.token && dave.token, 'jwt mode needs E2E_{ALICE,BOB,CAROL,DAVE}_TOKEN');
let failed = false;
let reloadCallId = null;
let carolBusyError = null; // Carol's "Receiver busy" notice, which must clear itself

try {
  await step('Dave goes online with Carol as his only contact (?contact=), an invalid one is left out', async () => {
    const q = `?contact=${encodeURIComponent(carol.id)}&contact=${encodeURIComponent('not/valid')}`;
    await goOnline(dave, q);
    await dave.page.locator('[data-testid="error"]', { hasText: 'left out of the contacts' }).waitFor({ timeout: T });
    const contacts = await dave.page.evaluate(() => window.callsignal.contacts);
    check(JSON.stringify(contacts) === JSON.stringify([carol.id]), `Dave's contacts: ${JSON.stringify(contacts)}`);
  });

  await step('three go online; Alice sees Bob and Carol, Bob sees Alice', async () => {
    await goOnline(alice);
    await goOnline(bob);
    await goOnline(carol);
    await userItem(alice, bob).waitFor({ timeout: T });
    await userItem(alice, carol).waitFor({ timeout: T });
    await userItem(bob, alice).waitFor({ timeout: T });
    const shown = await userItem(alice, bob).getByTestId('user-name').textContent();
    check(shown === bob.name, `Alice's list shows ${JSON.stringify(shown)} for Bob`);
    check(await alice.page.locator(`[data-testid="user"][data-user-id="${alice.id}"]`).count() === 0,
          'Alice is listed as callable by herself');
  });

  await step('Dave sees his contact Carol, never Alice or Bob (online before her); he leaves', async () => {
    await userItem(dave, carol).waitFor({ timeout: T });
    await userItem(alice, dave).waitFor({ timeout: T }); // Dave's own presence reached the others
    const others = await dave.page.locator('[data-testid="user"]').evaluateAll((els) => els.map((e) => e.dataset.userId));
    console.log(`     Dave's list: ${JSON.stringify(others)} (contact: ${carol.id})`);
    check(JSON.stringify(others) === JSON.stringify([carol.id]), `Dave's list shows ${JSON.stringify(others)}`);
    await dave.page.close();
    await dave.context.close();
    await userItem(alice, dave).waitFor({ state: 'detached', timeout: T });
    await userItem(carol, dave).waitFor({ state: 'detached', timeout: T });
  });

  await shot(alice, 'online-list');

  await step('Alice\'s device pickers list the fake camera and microphone, with a preview', async () => {
    const { page } = alice;
    await page.getByTestId('devices').locator('summary').click();
    await page.getByTestId('preview-toggle').click();
    await page.locator('[data-testid="devices"][data-preview="on"]').waitFor({ timeout: T });
    for (const sel of ['cam-select', 'mic-select']) {
      const labels = await page.getByTestId(sel).locator('option').allTextContents();
      check(labels.length > 0 && labels.every((l) => l.trim() !== ''), `${sel} lists ${JSON.stringify(labels)}`);
      console.log(`     ${sel}: ${labels.join(' | ')}`);
    }
    const playing = await page.evaluate(() => {
      const v = document.getElementById('preview');
      return Boolean(v.srcObject) && v.srcObject.getVideoTracks().length === 1 && v.srcObject.getAudioTracks().length === 1;
    });
    check(playing, 'the preview shows no camera and microphone');
    gallery.devices = await shot(alice, 'device-preview');
    await page.getByTestId('preview-toggle').click();
    await page.locator('[data-testid="devices"][data-preview="off"]').waitFor({ timeout: T });
    await page.getByTestId('devices').locator('summary').click();
  });

  let callId;
  await step('Alice calls Bob; Bob\'s page rings (ringtone), Alice hears the ringback', async () => {
    callId = await placeCall(alice, bob);
    const b = await expectSound(bob, 'ringtone');
    const a = await expectSound(alice, 'ringback');
    console.log(`     Bob: ${b.sound} (audio ${b.audio}, ${b.nodes} tones), Alice: ${a.sound} (audio ${a.audio})`);
    check(await bob.page.evaluate(() => document.activeElement && document.activeElement.dataset.testid) === 'accept',
          'the ringing dialog does not have the focus on Accept');
  });

  await step('Bob accepts; both are in the call with a LiveKit token for its room', async () => {
    await bob.page.getByTestId('accept').click({ timeout: T });
    await bob.page.getByTestId('incoming-dialog').waitFor({ state: 'hidden', timeout: T });
    for (const p of [alice, bob]) {
      const view = p.page.locator(`[data-testid="call-view"][data-call-id="${callId}"]`);
      await view.waitFor({ state: 'visible', timeout: T });
      await p.page.locator(`[data-testid="call-view"][data-token-room="${callId}"]`).waitFor({ timeout: T });
      const token = await p.page.evaluate((id) => window.callsignal.tokens[id], callId);
      check(typeof token === 'string' && token.split('.').length === 3, `${p.name}: no LiveKit token for the call`);
      const claims = decodeJwt(token);
      check(claims.sub === p.id, `${p.name}: token sub ${claims.sub}`);
      check(claims.video && claims.video.room === callId && claims.video.roomJoin === true,
            `${p.name}: token grants ${JSON.stringify(claims.video)}`);
      const ok = p.tokenResponses.filter((r) => r.room === callId && r.id === p.id && r.status === 200);
      check(ok.length === 1, `${p.name}: GET /token for the call answered ${JSON.stringify(p.tokenResponses)}`);
      const peer = await p.page.getByTestId('call-peer').textContent();
      check(peer === (p === alice ? bob.name : alice.name), `${p.name}: in call with ${JSON.stringify(peer)}`);
      await expectSound(p, 'off');
    }
    // Carol sees both of them busy (per user: her list is not redrawn).
    for (const other of [alice, bob]) await busyBadge(carol, other).waitFor({ state: 'visible', timeout: T });
    gallery.busy = await shot(carol, 'busy-badges');
    // Mute before the media is up: the choice is shown and kept.
    await alice.page.getByTestId('toggle-mic').click();
    await alice.page.locator('[data-testid="toggle-mic"][aria-pressed="true"]').waitFor({ timeout: T });
    await alice.page.getByTestId('toggle-mic').click();
    await alice.page.locator('[data-testid="toggle-mic"][aria-pressed="false"]').waitFor({ timeout: T });
  });

  await step('without a reachable LiveKit server both pages say so clearly', async () => {
    for (const p of [alice, bob]) {
      const status = p.page.locator('[data-testid="media-status"][data-state="unreachable"]');
      await status.waitFor({ timeout: 20000 });
      const text = await status.textContent();
      check(text.includes('No LiveKit server reachable') && text.includes(LIVEKIT_URL),
            `${p.name}: media status ${JSON.stringify(text)}`);
    }
    await shot(alice, 'alice-in-call');
  });

  await step('Alice hangs up; Bob\'s page shows the call ended', async () => {
    await alice.page.getByTestId('hangup').click();
    for (const p of [alice, bob]) {
      await p.page.getByTestId('call-view').waitFor({ state: 'hidden', timeout: T });
      await expectOutcome(p, 'ended', /ended/);
      await expectRecent(p, callId, 'ended', /^Ended/);
    }
    for (const other of [alice, bob]) await busyBadge(carol, other).waitFor({ state: 'hidden', timeout: T });
  });

  await step('a second call that Bob declines shows as declined (Carol\'s try meanwhile: Receiver busy)', async () => {
    const id2 = await placeCall(alice, bob);
    check(id2 !== callId, 'the second call reused the first call id');
    // Meanwhile Carol tries Bob too: the service's error message reaches her page as it is.
    // (Only her request must land while it rings; her page is checked after Bob declines.)
    const carolStart = carol.page.waitForResponse((r) => new URL(r.url()).pathname === '/calls/start');
    await userItem(carol, bob).getByTestId('call-button').click();
    const busy = await carolStart;
    check(busy.status() === 400, `Carol's POST /calls/start answered ${busy.status()}, expected 400`);
    await bob.page.getByTestId('decline').click();
    const error = carol.page.getByTestId('error').filter({ hasText: 'Receiver busy' });
    await error.waitFor({ timeout: T });
    // The notice sits above the page, not over the call stage and its buttons.
    const overlap = await carol.page.evaluate(() => {
      const n = document.querySelector('[data-testid="error"]').getBoundingClientRect();
      const s = document.getElementById('stage').getBoundingClientRect();
      return !(n.bottom <= s.top || n.top >= s.bottom || n.right <= s.left || n.left >= s.right);
    });
    check(!overlap, 'the error notice covers the call stage');
    carolBusyError = error;
    const failedTry = carol.page.locator('[data-testid="recent-call"][data-outcome="failed"]');
    await failedTry.waitFor({ timeout: T });
    check(/Receiver busy/.test(await failedTry.textContent()), 'Carol\'s failed call does not say why');
    check(await carol.page.getByTestId('calling-view').isHidden(), 'Carol\'s page still shows a call');
    await bob.page.getByTestId('incoming-dialog').waitFor({ state: 'hidden', timeout: T });
    await alice.page.getByTestId('calling-view').waitFor({ state: 'hidden', timeout: T });
    await expectOutcome(alice, 'declined', /declined/);
    await expectRecent(alice, id2, 'declined', /Declined/);
    await expectRecent(bob, id2, 'declined', /Declined/);
    for (const p of [alice, bob]) await expectSound(p, 'off');
    // Bob's page learnt of Carol's try too (the service's missed-call record, endReason BUSY)
    const busyTry = bob.page.locator('[data-testid="recent-call"][data-outcome="missed"]').filter({ hasText: 'Busy' });
    await busyTry.waitFor({ timeout: T });
    check(/Carol/.test(await busyTry.textContent()), 'Bob\'s busy record does not name Carol');
  });

  await step('a third call rings out and shows as missed on both', async () => {
    const id3 = await placeCall(alice, bob);
    const rangAt = Date.now();
    // This call rings out anyway: the time to take pictures of a ringing call without racing
    // the ring timeout (screenshots can take seconds on a loaded machine).
    const ringingShots = [await shot(alice, 'alice-calling'), await shot(bob, 'bob-ringing')];
    gallery.ringing = ringingShots[1];
    const wait = (RING_TIMEOUT_S + 6) * 1000;
    await bob.page.getByTestId('incoming-dialog').waitFor({ state: 'hidden', timeout: wait });
    check(Date.now() - rangAt >= (RING_TIMEOUT_S - 1) * 1000, 'the ringing stopped before the ring timeout');
    await alice.page.getByTestId('calling-view').waitFor({ state: 'hidden', timeout: T });
    for (const p of [alice, bob]) {
      await expectOutcome(p, 'missed', /Missed/);
      await expectRecent(p, id3, 'missed', /Missed/);
    }
    check(await alice.page.getByTestId('recent-call').count() === 3, 'Alice does not list 3 recent calls');
    check(await bob.page.getByTestId('recent-call').count() === 4, 'Bob does not list 4 recent calls (3 and Carol\'s try)');
    for (const p of [alice, bob]) await expectSound(p, 'off');
    const a = await shot(alice, 'alice-recents');
    const b = await shot(bob, 'bob-recents');
    await sideBySide(browser, 'two-tabs-recents', { png: a, label: 'Tab 1: Alice' }, { png: b, label: 'Tab 2: Bob' });
    await sideBySide(browser, 'two-tabs-ringing', { png: ringingShots[0], label: 'Tab 1: Alice calls Bob' },
                     { png: ringingShots[1], label: 'Tab 2: Bob\'s page rings' });
  });

  await step('keyboard only: Alice tabs to Bob and presses Enter, Bob presses Enter to accept, Escape to decline', async () => {
    await alice.page.locator('#users-title').focus();
    const presses = await tabTo(alice, 'call-button', bob.id);
    await alice.page.keyboard.press('Enter');
    const dialog = bob.page.getByTestId('incoming-dialog');
    await dialog.waitFor({ state: 'visible', timeout: T });
    const id5 = await dialog.getAttribute('data-call-id');
    check(await bob.page.evaluate(() => document.activeElement.dataset.testid) === 'accept', 'Accept has no focus');
    await bob.page.keyboard.press('Enter');
    for (const p of [alice, bob]) {
      await p.page.locator(`[data-testid="call-view"][data-call-id="${id5}"]`).waitFor({ state: 'visible', timeout: T });
    }
    gallery.call = await shot(bob, 'in-call');
    await alice.page.getByTestId('hangup').focus();
    await alice.page.keyboard.press('Enter');
    for (const p of [alice, bob]) await expectRecent(p, id5, 'ended', /^Ended/);
    // and Escape declines
    await alice.page.locator('#users-title').focus();
    await tabTo(alice, 'call-button', bob.id);
    await alice.page.keyboard.press('Enter');
    await dialog.waitFor({ state: 'visible', timeout: T });
    const id6 = await dialog.getAttribute('data-call-id');
    await bob.page.keyboard.press('Escape');
    await expectRecent(alice, id6, 'declined', /Declined/);
    await expectRecent(bob, id6, 'declined', /Declined/);
    console.log(`     ${presses} Tab presses from the list's heading to Bob's Call button`);
    // Meanwhile Carol's error notice cleared itself (after 10 s; the bound is generous).
    await carolBusyError.waitFor({ state: 'detached', timeout: 20000 });
  });

  await step('Bob\'s tab in the background: the ring shows a desktop notification, closed when Alice cancels; its Decline declines', async () => {
    await setHidden(bob, true);
    const id7 = await placeCall(alice, bob);
    await bob.page.waitForFunction((id) => window.callsignal.notifications.some((n) => n.callId === id), id7,
                                   { timeout: T });
    const shown = await bob.page.evaluate(async (id) => {
      const n = window.callsignal.notifications.find((x) => x.callId === id);
      if (n.via !== 'worker') return { via: n.via, open: null };
      const reg = await navigator.serviceWorker.ready;
      const open = await reg.getNotifications({ tag: `ring-${id}` });
      return { via: n.via, open: open.map((x) => ({ title: x.title, actions: (x.actions || []).map((a) => a.action) })) };
    }, id7);
    console.log(`     notification: ${JSON.stringify(shown)}`);
    if (shown.via === 'worker') {
      check(shown.open.length === 1 && shown.open[0].title === `${alice.name} is calling`,
            `no ringing notification is open: ${JSON.stringify(shown)}`);
    }
    await alice.page.getByTestId('cancel-call').click();
    await expectRecent(bob, id7, 'missed', /Missed/);
    await expectSound(bob, 'off');
    if (shown.via === 'worker') {
      await bob.page.waitForFunction(async (id) => {
        const reg = await navigator.serviceWorker.ready;
        return (await reg.getNotifications({ tag: `ring-${id}` })).length === 0;
      }, id7, { timeout: T });
    }
    // Another ring, declined from the notification's Decline button: the page's service worker
    // gets the click (dispatched in the worker, as the browser would) and the tab declines.
    const id7b = await placeCall(alice, bob);
    await bob.page.waitForFunction((id) => window.callsignal.notifications.some((n) => n.callId === id), id7b,
                                   { timeout: T });
    if (shown.via === 'worker') {
      const sw = bob.context.serviceWorkers().find((w) => w.url().endsWith('/sw.js'));
      check(sw, 'no service worker of the page');
      const clicked = await sw.evaluate(async (tag) => {
        const [n] = await self.registration.getNotifications({ tag });
        if (!n) return false;
        self.dispatchEvent(new NotificationEvent('notificationclick', { notification: n, action: 'decline' }));
        return true;
      }, `ring-${id7b}`);
      check(clicked, 'the second ring has no notification to click');
      await expectRecent(bob, id7b, 'declined', /Declined/);
      await expectRecent(alice, id7b, 'declined', /Declined/);
    } else {
      await alice.page.getByTestId('cancel-call').click();
      await expectRecent(bob, id7b, 'missed', /Missed/);
    }
    await setHidden(bob, false);
  });

  await step('Bob reloads while Alice\'s call rings: his page rings again and he accepts', async () => {
    const id4 = await placeCall(alice, bob);
    await bob.page.reload();
    // The reloaded page signs in again by itself and reads its retained call topic.
    await bob.page.locator('[data-testid="conn-status"][data-state="online"]').waitFor({ timeout: T });
    const dialog = bob.page.getByTestId('incoming-dialog');
    await dialog.waitFor({ state: 'visible', timeout: T });
    const again = await dialog.getAttribute('data-call-id');
    // His recent calls survived the reload (localStorage), end reasons in words.
    const kept = await bob.page.getByTestId('recent-outcome').allTextContents();
    check(kept.length === 8 && kept.includes('Missed \u00b7 Busy') && kept.includes('Missed call') && kept.includes('Declined'),
          `Bob's recent calls after the reload: ${JSON.stringify(kept)}`);
    // A reloaded page had no user gesture yet: it rings, audibly or with "click to enable sound".
    const s = await expectSound(bob, 'ringtone');
    if (s.audio !== 'running') {
      await bob.page.getByTestId('dialog-sound-enable').click(); // in the modal dialog
      await bob.page.locator('body[data-audio="running"]').waitFor({ timeout: T });
    }
    console.log(`     after the reload the ringtone's audio was ${s.audio}`);
    check(again === id4, `Bob's reloaded page rings for ${again}, expected ${id4}`);
    await bob.page.getByTestId('accept').click({ timeout: T });
    for (const p of [alice, bob]) {
      await p.page.locator(`[data-testid="call-view"][data-call-id="${id4}"]`).waitFor({ state: 'visible', timeout: T });
    }
    reloadCallId = id4;
  });

  await step('Bob reloads during the call: the call goes on, then Alice hangs up', async () => {
    const id4 = reloadCallId;
    await bob.page.reload();
    await bob.page.locator('[data-testid="conn-status"][data-state="online"]').waitFor({ timeout: T });
    await bob.page.locator(`[data-testid="call-view"][data-call-id="${id4}"]`).waitFor({ state: 'visible', timeout: T });
    await bob.page.locator(`[data-testid="call-view"][data-token-room="${id4}"]`).waitFor({ timeout: T });
    // Bob is back in the call: Alice's page never left it and has no outcome for it.
    check(await alice.page.locator(`[data-testid="call-view"][data-call-id="${id4}"]`).isVisible(),
          'Alice\'s call view closed while Bob reloaded');
    check(await recent(alice, id4).count() === 0, 'Alice recorded the call as finished while Bob reloaded');
    await alice.page.getByTestId('hangup').click();
    for (const p of [alice, bob]) {
      await p.page.getByTestId('call-view').waitFor({ state: 'hidden', timeout: T });
      await expectRecent(p, id4, 'ended', /^Ended/);
    }
  });

  await step('a page that signed in without a click rings, audibly or with "click to enable sound"', async () => {
    // Carol's second device: a tab restored with its session (as after a reload in a new
    // window), so the page had no user gesture and the autoplay rules hold the sound back.
    const context = await browser.newContext({ viewport: { width: 1180, height: 760 }, colorScheme: 'light' });
    context.setDefaultTimeout(T);
    await context.addInitScript(([profile, token]) => {
      sessionStorage.setItem('callsignal.profile', JSON.stringify(profile));
      sessionStorage.setItem('callsignal.session', JSON.stringify({ token }));
    }, [{ name: carol.name, id: carol.id, location: 'Tablet' }, carol.token || null]);
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const tablet = { name: 'Carol (tablet)', page };
    await page.goto(BASE + '/');
    await page.locator('[data-testid="conn-status"][data-state="online"]').waitFor({ timeout: T });
    const id8 = await placeCall(alice, carol);
    await page.locator(`[data-testid="incoming-dialog"][data-call-id="${id8}"]`).waitFor({ state: 'visible', timeout: T });
    const s = await expectSound(tablet, 'ringtone');
    console.log(`     a page without a gesture: audio ${s.audio}, "click to enable sound" ${
      await page.getByTestId('sound-enable').isVisible() ? 'shown' : 'hidden'}`);
    if (s.audio === 'running') {
      // This Chromium let the page play without a gesture. Hold the sound back as the autoplay
      // rules do (the page's own AudioContext, suspended): the page must offer the click.
      await page.evaluate(() => window.callsignal.sound.audioContext().suspend());
      await page.locator('body[data-audio="suspended"]').waitFor({ timeout: T });
    }
    {
      gallery.sound = await page.screenshot({ path: path.join(SHOTS, PREFIX + 'click-to-enable-sound.png') });
      // The ringing dialog is modal (the page behind it is inert): the switch is in the dialog.
      await page.getByTestId('dialog-sound-enable').click();
      await page.locator('body[data-audio="running"]').waitFor({ timeout: T });
      check(await page.getByTestId('dialog-sound-enable').isHidden(), '"click to enable sound" stays after the click');
      // The click starts the ringtone at once (from the beginning of its pattern).
      await page.waitForFunction(() => window.callsignal.sound.activeNodes() > 0, null, { timeout: T });
    }
    await alice.page.getByTestId('cancel-call').click();
    for (const p of [carol, tablet]) await expectSound(p, 'off');
    check(errors.length === 0, `Carol's tablet threw: ${errors.join('; ')}`);
    await context.close();
    await userItem(alice, carol).waitFor({ timeout: T }); // her first device is still online
  });

  await grid(browser, 'web-client-states', [
    { png: gallery.devices, label: 'Camera and microphone pickers with a preview' },
    { png: gallery.ringing, label: 'An incoming call: the dialog has the focus, Enter accepts, Escape declines' },
    { png: gallery.busy, label: 'Who is in a call: a badge per user' },
    { png: gallery.call, label: 'In a call: the other party, the duration, mute, hang up' },
  ]);

  await step('Bob signs in on another browser: his recent calls come from the service\'s history', async () => {
    const context = await browser.newContext({ viewport: { width: 1180, height: 760 }, colorScheme: 'light' });
    context.setDefaultTimeout(T);
    await context.addInitScript(([profile, token]) => {
      sessionStorage.setItem('callsignal.profile', JSON.stringify(profile));
      sessionStorage.setItem('callsignal.session', JSON.stringify({ token }));
    }, [{ name: bob.name, id: bob.id, location: 'Laptop' }, bob.token || null]);
    const page = await context.newPage();
    const history = page.waitForResponse((r) => new URL(r.url()).pathname === '/calls');
    await page.goto(BASE + '/');
    check((await history).status() === 200, 'GET /calls did not answer 200');
    const mine = await bob.page.getByTestId('recent-outcome').allTextContents();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="recent-call"]').length >= n,
                               mine.length, { timeout: T });
    const there = await page.getByTestId('recent-outcome').allTextContents();
    check(there.includes('Missed \u00b7 Busy') && there.includes('Declined') && there.some((l) => l.startsWith('Ended')),
          `Bob's other browser lists ${JSON.stringify(there)} (his first: ${JSON.stringify(mine)})`);
    console.log(`     ${there.length} recent calls from the service (${mine.length} on his first browser)`);
    await context.close();
  });

  await step('Bob closes his tab and leaves Alice\'s list', async () => {
    await bob.page.close();
    await userItem(alice, bob).waitFor({ state: 'detached', timeout: T });
    check(await userItem(alice, carol).count() === 1, 'Carol left Alice\'s list with Bob');
  });

  await step('Carol\'s tab crashes and the Last Will takes her off Alice\'s list', async () => {
    // A crashed renderer runs no pagehide handler: only the broker's Will clears the presence.
    const cdp = await carol.context.newCDPSession(carol.page);
    cdp.send('Page.crash').catch(() => {});
    await userItem(alice, carol).waitFor({ state: 'detached', timeout: T });
    await alice.page.getByTestId('users-empty').waitFor({ state: 'visible', timeout: T });
    const n = await alice.page.getByTestId('users-count').textContent();
    check(n === '0', `Alice's online count is ${n}`);
  });

  if (JWT) {
    await step('jwt: signing in with a malformed token says what is wrong with it', async () => {
      await alice.page.getByTestId('sign-out').click();
      await alice.page.getByTestId('signin').waitFor({ state: 'visible', timeout: T });
      const cut = alice.token.split('.').slice(0, 2).join('.');
      await alice.page.getByLabel('User token').fill(cut);
      await alice.page.getByTestId('connect').click();
      const err = alice.page.getByTestId('error').filter({ hasText: 'not a JWT' });
      await err.waitFor({ timeout: T });
      check(/2 parts/.test(await err.textContent()), 'the notice does not say how many parts the token has');
      // ... and next to the field, where it stays after the notice cleared
      const inline = alice.page.getByTestId('token-error');
      check(/not a JWT/.test(await inline.textContent()), 'no explanation next to the token field');
      check(await alice.page.getByLabel('User token').getAttribute('aria-invalid') === 'true', 'the field is not marked invalid');
      await shot(alice, 'malformed-token');
    });
  }

  for (const p of [alice, bob]) {
    check(p.apiRequests.length > 0, `${p.name}: no REST request was seen`);
    for (const r of p.apiRequests) {
      const want = JWT ? `Bearer ${p.token}` : null;
      check(r.authorization === want, `${p.name}: ${r.path} sent Authorization ${r.authorization}`);
    }
    check(p.pageErrors.length === 0, `${p.name}'s page threw: ${p.pageErrors.join('\n')}`);
  }
} catch (e) {
  failed = true;
  console.error(`FAIL after ${steps.length} steps (${secs()}): ${e && e.stack ? e.stack : e}`);
  for (const p of [alice, bob, carol]) {
    if (!p.page.isClosed()) {
      await p.page.screenshot({ path: path.join(SHOTS, `${PREFIX}failure-${p.id.split('-')[0]}.png`), timeout: 3000 })
        .catch(() => {});
    }
    console.error(`---- ${p.name}: /token responses ${JSON.stringify(p.tokenResponses)}`);
    console.error(`---- ${p.name}: page errors\n${p.pageErrors.join('\n')}`);
    console.error(`---- ${p.name}: console (last 30)\n${p.console.slice(-30).join('\n')}`);
  }
} finally {
  await browser.close().catch(() => {});
}

console.log(`two_tabs: ${failed ? 'FAIL' : 'PASS'} (${steps.length} steps, ${secs()})`);
process.exit(failed ? 1 : 0);
