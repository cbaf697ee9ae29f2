// Render benchmark of the web client's online list: 1,000 users online (retained presence, replayed
// to the page when it connects), then 100 presence changes per second for 10 s (busy on and off,
// a new location, offline and back), published over real MQTT to the real broker while one
// Chromium page (the viewer) shows the list. Started by run_e2e.py --script render_bench.mjs
// (CTest e2e.render_bench), which passes E2E_BASE_URL and E2E_MQTT_URL.
//
// Prints (no timed assertion, as the house rules want): the time from "Go online" until the 1,000
// users are listed, the DOM nodes touched per presence change (MutationObserver on the list:
// each added/removed node, each changed attribute or text counts one), and the frame-time p50,
// p95 and max (requestAnimationFrame deltas) during the changes. Fails only when the list ends
// up wrong (count and a sample of users' text compared with what was published last) or the
// page threw. BENCH_USERS, BENCH_RATE, BENCH_SECONDS override 1000, 100, 10.

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdirSync } from 'node:fs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const require = createRequire(path.join(repo, 'web', 'package.json'));
const { chromium } = require('playwright-core');
const mqtt = require('mqtt');

const BASE = process.env.E2E_BASE_URL;
const MQTT_URL = process.env.E2E_MQTT_URL;
const USERS = Number(process.env.BENCH_USERS || 1000);
const RATE = Number(process.env.BENCH_RATE || 100);
const SECONDS = Number(process.env.BENCH_SECONDS || 10);
const SHOTS = process.env.E2E_SCREENSHOTS || path.join(here, 'screenshots');
if (!BASE || !MQTT_URL) {
  console.error('E2E_BASE_URL and E2E_MQTT_URL must be set (run tests/e2e/run_e2e.py --script render_bench.mjs)');
  process.exit(1);
}
mkdirSync(SHOTS, { recursive: true });

const tag = Math.random().toString(16).slice(2, 8);
const id = (i) => `u${String(i).padStart(4, '0')}-${tag}`;
const topic = (i) => `users/${id(i)}/presence/${id(i)}.bench`;
const names = ['Ada', 'Bo', 'Chen', 'Dana', 'Eli', 'Fay', 'Gus', 'Hana', 'Ivo', 'Jun'];
const user = (i, extra = {}) => ({ id: id(i), name: `${names[i % 10]} ${String(i).padStart(4, '0')}`,
                                   location: `Room ${i % 37}`, ...extra });

function fail(msg) {
  console.error(`render_bench: FAIL: ${msg}`);
  process.exit(1);
}

function pct(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] : NaN;
}

const pub = await mqtt.connectAsync(MQTT_URL, { clientId: `bench-${tag}`, protocolVersion: 5, clean: true });
const state = new Map(); // i -> payload object or null (offline), what was published last
for (let i = 0; i < USERS; i++) {
  state.set(i, user(i));
  await pub.publishAsync(topic(i), JSON.stringify(state.get(i)), { qos: 1, retain: true });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
let exitCode = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1180, height: 900 }, colorScheme: 'light' });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(BASE + '/');
  await page.locator('body[data-ready="true"]').waitFor({ timeout: 15000 });
  await page.getByLabel('Name').fill('Viewer');
  await page.getByLabel('User id').fill(`viewer-${tag}`);
  // Count the DOM work of the replay too.
  await page.evaluate(() => {
    const b = (window.__bench = { touched: 0 });
    b.observer = new MutationObserver((records) => {
      for (const r of records) b.touched += r.type === 'childList' ? r.addedNodes.length + r.removedNodes.length : 1;
    });
    b.observer.observe(document.getElementById('user-list'), { subtree: true, childList: true, attributes: true,
                                                               characterData: true });
  });
  const t0 = Date.now();
  await page.getByTestId('connect').click();
  await page.waitForFunction((n) => document.getElementById('users-count').textContent === String(n), USERS,
                             { timeout: 60000, polling: 50 });
  const replayMs = Date.now() - t0;
  const replayTouched = await page.evaluate(() => window.__bench.touched);
  console.log(`render_bench: ${USERS} users online, replay rendered in ${replayMs} ms ` +
              `(${(replayTouched / USERS).toFixed(1)} DOM nodes touched per user)`);

  // Changes: start the frame clock and the mutation count, then publish RATE per second.
  await page.evaluate(() => {
    const b = window.__bench;
    b.touched = 0;
    b.frames = [];
    b.running = true;
    let last = performance.now();
    const tick = (t) => {
      b.frames.push(t - last);
      last = t;
      if (b.running) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  let sent = 0;
  const total = RATE * SECONDS;
  const start = Date.now();
  let k = 0;
  while (sent < total && Date.now() - start < SECONDS * 3000) {
    const due = Math.min(total, Math.floor(((Date.now() - start) / 1000) * RATE) + 1);
    while (sent < due) {
      const i = (k * 7919) % USERS; // spread over the list
      k++;
      const cur = state.get(i);
      let next;
      switch (sent % 4) {
        case 0: next = cur ? { ...cur, busy: !cur.busy } : user(i); break;
        case 1: next = cur ? { ...cur, location: `Room ${sent}` } : user(i); break;
        case 2: next = cur ? null : user(i); break;
        default: next = cur ? { ...cur, busy: false } : user(i); break;
      }
      state.set(i, next);
      pub.publish(topic(i), next ? JSON.stringify(next) : '', { qos: 1, retain: true });
      sent++;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const online = [...state.values()].filter(Boolean).length;
  const sentAt = Date.now();
  await page.waitForFunction((n) => document.getElementById('users-count').textContent === String(n), online,
                             { timeout: 180000, polling: 50 });
  const behindMs = Date.now() - sentAt;
  await new Promise((r) => setTimeout(r, 500)); // the last messages of equal count
  const m = await page.evaluate(() => {
    const b = window.__bench;
    b.running = false;
    return { touched: b.touched, frames: b.frames.slice(1) };
  });
  const frames = m.frames.sort((a, b) => a - b);
  const sendSeconds = (sentAt - start) / 1000;

  // The list must show what was published last (a sample of 200 users).
  const sample = [];
  for (let i = 0; i < USERS; i += Math.max(1, Math.floor(USERS / 200))) sample.push(i);
  const shown = await page.evaluate((ids) => ids.map((uid) => {
    const li = document.querySelector(`[data-testid="user"][data-user-id="${uid}"]`);
    if (!li) return null;
    const meta = li.querySelector('.user-meta');
    const badge = li.querySelector('[data-testid="busy-badge"]');
    return { meta: meta ? meta.textContent : null, busy: badge ? !badge.hidden : null };
  }), sample.map(id));
  let wrong = 0;
  sample.forEach((i, j) => {
    const want = state.get(i);
    const got = shown[j];
    if (!want !== !got) wrong++;
    else if (want && got.meta !== `${want.id} \u00b7 ${want.location}`) wrong++;
    else if (want && got.busy !== null && got.busy !== Boolean(want.busy)) wrong++;
  });
  await page.screenshot({ path: path.join(SHOTS, 'render-bench-1000.png') });

  console.log(`render_bench: ${sent} presence changes in ${sendSeconds.toFixed(1)} s ` +
              `(${(sent / sendSeconds).toFixed(0)}/s); ${(m.touched / sent).toFixed(2)} DOM nodes touched per change; ` +
              `the list caught up ${behindMs} ms after the last one was sent`);
  console.log(`render_bench: frame time during the changes: p50 ${pct(frames, 0.5).toFixed(1)} ms, ` +
              `p95 ${pct(frames, 0.95).toFixed(1)} ms, max ${frames[frames.length - 1].toFixed(1)} ms ` +
              `(${frames.length} frames)`);
  console.log(`render_bench: ${online} online at the end, ${sample.length} sampled, ${wrong} shown wrong`);
  if (errors.length) fail(`the page threw: ${errors.join('; ')}`);
  if (wrong) fail(`${wrong} of ${sample.length} sampled users are shown differently from their last presence`);
  console.log('render_bench: PASS');
} catch (e) {
  console.error(`render_bench: FAIL: ${e && e.stack ? e.stack : e}`);
  exitCode = 1;
} finally {
  await browser.close().catch(() => {});
  await pub.endAsync().catch(() => {});
}
process.exit(exitCode);
