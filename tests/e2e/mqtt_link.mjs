// mqtt_link.mjs - the web client's MQTT session code (web/lib/mqtt_link.js, the file the page
// runs) against real brokers over WebSocket, driven by node with the MQTT.js the page vendors.
// Started by run_mqtt_link.py, which runs the brokers and the service (CTest e2e.mqtt_link).
//
// For each broker in BROKERS (JSON: [{name, url, protocol, idForm}]), the expected plan being
// where the link must end up: nats-server 2.9 refuses MQTT 5 (CONNACK 1) and a '.' in topics
// (closes the socket), so the link must end on 3.1.1 with a client id without '.'; Mosquitto
// must keep MQTT 5 and "{userId}.web-<hex>". Then, on each: a retained message (a contact's
// presence, my call topic) arrives on subscribing; a non-contact's retained and live presence
// never does (checked after the contact's, sent later, arrived); an event arrives; my presence
// arrives at the broker and is refreshed at the period GET /config gives (SERVICE_URL); the
// broker publishes my Last Will when the socket dies; the reconnect keeps the plan.
// Prints what it saw; exits 0 or 1.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLink } from '../../web/lib/mqtt_link.js';
import { refreshPeriodS } from '../../web/lib/presence_refresh.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const mqtt = createRequire(path.join(repo, 'web', 'package.json'))('mqtt');
const BROKERS = JSON.parse(process.env.BROKERS || '[]');
const SERVICE_URL = process.env.SERVICE_URL;
const T = 20000; // generous bound for anything to arrive
let failures = 0;

function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
  return ok;
}

const hex = () => Math.random().toString(16).slice(2, 10).padEnd(8, '0');

/** Resolves when pred() is true (polled), rejects after ms. */
function until(pred, ms, what) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      if (pred()) return resolve(Date.now() - t0);
      if (Date.now() - t0 > ms) return reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

/** A plain MQTT 3.1.1 client (both brokers speak it) that records every message. */
async function observer(url, filters) {
  const c = mqtt.connect(url, { clientId: 'observer-' + hex(), protocolVersion: 4, clean: true, reconnectPeriod: 0 });
  const seen = [];
  c.on('message', (topic, p, packet) => seen.push({ topic, text: p.toString(), retain: packet.retain, at: Date.now() }));
  await new Promise((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  });
  if (filters.length) await c.subscribeAsync(filters, { qos: 1 });
  return { c, seen };
}

async function runOn(b, refreshS) {
  console.log(`-- ${b.name} (${b.url})`);
  const me = 'alice' + hex();
  const bob = 'bob' + hex(); // a contact
  const eve = 'eve' + hex(); // not a contact
  const device = 'web-' + hex();
  const user = (id, location) => JSON.stringify({ id, name: id, location });
  const pub = await observer(b.url, [`users/${me}/presence/+`]);
  const put = (topic, text, retain) => pub.c.publishAsync(topic, text, { qos: 1, retain });
  // Retained before the page connects: the non-contact's first, then the contact's and my call.
  await put(`users/${eve}/presence/${eve}_phone`, user(eve, 'before'), true);
  await put(`users/${bob}/presence/${bob}_phone`, user(bob, 'before'), true);
  await put(`users/${me}/call`, JSON.stringify({ id: 'call-' + hex(), status: 'DIALLING' }), true);

  const got = [];
  const events = { connect: 0, fallback: [], refused: null, subscribed: null };
  const started = Date.now();
  const link = createLink(mqtt, { url: b.url, userId: me, device, authMode: 'open', contacts: [bob], refreshS }, {
    message: (topic, p) => got.push({ topic, text: p.toString() }),
    connect: () => events.connect++,
    fallback: (reason) => events.fallback.push(reason),
    refused: (reason) => { events.refused = reason; },
    subscribed: (err, granted) => { events.subscribed = err ? String(err) : granted; },
  });
  try {
    await until(() => events.connect > 0 || events.refused, T, 'the link to connect');
    console.log(`     connected after ${Date.now() - started} ms`);
    check(!events.refused, `connected, not refused (${events.refused || ''})`);
    console.log(`     attempts: ${link.attempts.map((a) => `MQTT ${a.protocol === 5 ? '5' : '3.1.1'} as ${a.clientId} -> ${a.outcome}`).join('; ')}`);
    check(link.plan.protocol === b.protocol, `MQTT ${b.protocol === 5 ? '5' : '3.1.1'} in use (got ${link.plan.protocol})`);
    check(link.plan.idForm === b.idForm, `client id form ${b.idForm} (got ${link.plan.idForm}: ${link.clientId})`);
    if (b.protocol === 4) {
      check(link.attempts[0].protocol === 5 && /^connack (1|132)$/.test(link.attempts[0].outcome),
            `MQTT 5 was tried first and refused by CONNACK (${link.attempts[0].outcome})`);
    } else {
      check(link.attempts.length === 1, 'one attempt, no fallback');
    }

    // Retained on subscribing: the contact's presence and my call; never the non-contact's.
    await until(() => got.some((m) => m.topic === `users/${bob}/presence/${bob}_phone`), T, "the contact's retained presence");
    check(true, "the contact's retained presence arrived");
    await until(() => got.some((m) => m.topic === `users/${me}/call`), T, 'my retained call topic');
    check(true, 'my retained call topic arrived');
    check(Array.isArray(events.subscribed) && events.subscribed.every((g) => g.qos !== 128),
          `every filter granted: ${JSON.stringify(events.subscribed)}`);
    // Live: the non-contact changes first, then the contact; once the contact's change is here,
    // the non-contact's must not have come (nor its retained one).
    await put(`users/${eve}/presence/${eve}_phone`, user(eve, 'live'), true);
    await put(`users/${bob}/presence/${bob}_phone`, user(bob, 'live'), true);
    await until(() => got.some((m) => m.text === user(bob, 'live')), T, "the contact's live presence");
    check(true, "the contact's live presence arrived");
    const leaked = got.filter((m) => m.topic.startsWith(`users/${eve}/`)).length;
    console.log(`     non-contact presence messages delivered: ${leaked} (retained 1 and live 1 were published)`);
    check(leaked === 0, "the non-contact's presence was not delivered");
    // An event on my topic.
    const ev = JSON.stringify({ id: 'ev-' + hex(), type: 'END_CALL' });
    await put(`users/${me}/events`, ev, false);
    await until(() => got.some((m) => m.topic === `users/${me}/events` && m.text === ev), T, 'the event');
    check(true, 'an event on users/{me}/events arrived');

    // My presence at the broker, then refreshed at the period (the same payload again).
    const mine = `users/${me}/presence/${link.clientId}`;
    const payload = user(me, 'Lyon');
    link.setPresence(payload);
    const copies = () => pub.seen.filter((m) => m.topic === mine && m.text === payload);
    await until(() => copies().length >= 3, T + refreshS * 3000, 'my presence and two refreshes');
    const c = copies();
    const gaps = c.slice(1).map((m, i) => (m.at - c[i].at) / 1000);
    console.log(`     presence published ${c.length} times; gaps ${gaps.map((g) => g.toFixed(2)).join(', ')} s (period ${refreshS} s); link counts ${link.stats.refreshes} refreshes`);
    check(link.stats.refreshes >= 2, 'the link refreshed its presence (two refreshes seen at the broker)');

    // The socket dies: the broker publishes the Last Will (empty, retained) on my presence topic.
    const before = pub.seen.length;
    link.client.stream.destroy();
    await until(() => pub.seen.slice(before).some((m) => m.topic === mine && m.text === ''), T, 'my Last Will');
    check(true, 'the broker published my Last Will when the socket died');
    // The page reconnects by itself with the same plan, and publishes its presence again.
    const n = link.attempts.length;
    await until(() => link.attempts.length > n && link.connected, T, 'the reconnect');
    const last = link.attempts[link.attempts.length - 1];
    check(last.protocol === b.protocol && last.idForm === b.idForm && link.attempts.length === n + 1,
          `the reconnect kept the plan (MQTT ${last.protocol}, ${last.idForm}, one attempt)`);
    await until(() => pub.seen.slice(before).some((m) => m.topic === mine && m.text === payload), T, 'my presence again');
    check(true, 'my presence was published again after the reconnect');
    // Sign out: the empty retained presence, acknowledged, then DISCONNECT.
    const k = pub.seen.length;
    await link.end('clean');
    await until(() => pub.seen.slice(k).some((m) => m.topic === mine && m.text === ''), T, 'the sign-out clear');
    check(true, 'signing out cleared my presence');
  } catch (e) {
    check(false, e.message);
    link.end('force');
  } finally {
    for (const t of [`users/${eve}/presence/${eve}_phone`, `users/${bob}/presence/${bob}_phone`, `users/${me}/call`]) {
      await put(t, '', true).catch(() => {});
    }
    pub.c.end(true);
  }
}

async function main() {
  let refreshS = 1;
  if (SERVICE_URL) {
    const r = await fetch(`${SERVICE_URL}/config`);
    const cfg = await r.json();
    refreshS = refreshPeriodS(cfg.presenceRefreshS);
    check(refreshS > 0, `GET /config gives presenceRefreshS ${cfg.presenceRefreshS}`);
  }
  for (const b of BROKERS) await runOn(b, refreshS);
  check(BROKERS.length > 0, `${BROKERS.length} brokers checked`);
  console.log(failures ? `${failures} check(s) failed` : 'all checks passed');
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
