// connect_plan.test.js - how the page connects (web/lib/connect_plan.js): MQTT 5 first, 3.1.1
// when a broker refuses 5 by CONNACK (what nats-server 2.9 does), a client id without '.' when the
// broker then closes on the '.' of the Will topic (open mode only), and the CONNECT options of
// each plan. The same code against real brokers: tests/e2e/mqtt_link.mjs. Run: node --test web/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initialPlan, nextPlan, connectOptions, endOptions, SESSION_EXPIRY_S } from '../lib/connect_plan.js';

const open = { authMode: 'open', userId: 'alice' };
const jwt = { authMode: 'jwt', userId: 'alice' };
const connack = (code) => ({ kind: 'connack', code });
const closed = { kind: 'closed' };

/** Runs outcomes from the initial plan; returns the decisions. */
function run(outcomes, ctx = open) {
  let plan = initialPlan();
  return outcomes.map((o) => {
    const d = nextPlan(plan, o, ctx);
    plan = d.plan;
    return d;
  });
}

test('MQTT 5 first, with the dotted client id', () => {
  assert.deepEqual(initialPlan(), { protocol: 5, idForm: 'dotted', connected: false, v5Refused: false });
  const [d] = run([connack(0)]);
  assert.equal(d.action, 'none');
  assert.equal(d.plan.protocol, 5);
  assert.equal(d.plan.connected, true);
});

test('a CONNACK refusing MQTT 5 (1 from a 3.1.1 broker, 0x84 from a 5 one) falls back to 3.1.1', () => {
  for (const code of [1, 132]) {
    const [d, e] = run([connack(code), connack(0)]);
    assert.equal(d.action, 'retry', `code ${code}`);
    assert.equal(d.plan.protocol, 4);
    assert.equal(d.plan.idForm, 'dotted');
    assert.match(d.reason, /3\.1\.1/);
    assert.equal(e.action, 'none');
    assert.equal(e.plan.protocol, 4, 'kept once connected');
  }
});

test('3.1.1 is kept for every later attempt: a refusal under 3.1.1 does not go back to 5', () => {
  const ds = run([connack(1), connack(0), closed, connack(1), closed, connack(0)]);
  for (const d of ds.slice(1)) assert.equal(d.plan.protocol, 4);
  assert.deepEqual(ds.map((d) => d.action), ['retry', 'none', 'none', 'none', 'none', 'none']);
});

test('nats-server 2.9: 5 refused, then the socket closed on the dotted Will topic: the id without a dot', () => {
  const [a, b, c] = run([connack(1), closed, connack(0)]);
  assert.equal(a.action, 'retry');
  assert.equal(b.action, 'retry');
  assert.deepEqual([b.plan.protocol, b.plan.idForm], [4, 'plain']);
  assert.match(b.reason, /without '\.'/);
  assert.equal(c.action, 'none');
  assert.deepEqual([c.plan.protocol, c.plan.idForm, c.plan.connected], [4, 'plain', true]);
});

test('a close before any CONNACK is a network failure otherwise: nothing changes', () => {
  // on MQTT 5 (Mosquitto down)
  assert.deepEqual(run([closed, closed]).map((d) => [d.action, d.plan.protocol, d.plan.idForm]),
                   [['none', 5, 'dotted'], ['none', 5, 'dotted']]);
  // on 3.1.1 after the page once connected with the dotted id (a blip, not a refusal)
  const ds = run([connack(1), connack(0), closed]);
  assert.deepEqual([ds[2].action, ds[2].plan.idForm], ['none', 'dotted']);
  // a second close after the fallback: not a refusal of topics any more
  const es = run([connack(1), connack(3), closed]);
  assert.deepEqual([es[1].action, es[2].action, es[2].plan.idForm], ['none', 'none', 'dotted']);
});

test('jwt mode never drops the dot (the broker plugin requires "{userId}.{device}")', () => {
  const ds = run([connack(1), closed, closed], jwt);
  assert.deepEqual(ds.map((d) => d.action), ['retry', 'none', 'none']);
  assert.equal(ds[2].plan.idForm, 'dotted');
});

test("a user id with '.' or a space cannot work where topics refuse them: refused, with the reason", () => {
  for (const userId of ['jo.doe', 'jo doe']) {
    const [, d] = run([connack(1), closed], { authMode: 'open', userId });
    assert.equal(d.action, 'refused', userId);
    assert.equal(d.reason, 'topic');
  }
});

test('bad credentials are refused, in both versions; other CONNACK codes let the client retry', () => {
  for (const code of [4, 5, 134, 135]) assert.equal(run([connack(code)])[0].action, 'refused', `code ${code}`);
  assert.equal(run([connack(1), connack(5)])[1].action, 'refused');
  for (const code of [2, 3, 136]) assert.equal(run([connack(code)])[0].action, 'none', `code ${code}`);
});

test('nextPlan never changes its input', () => {
  const plan = Object.freeze(initialPlan());
  nextPlan(plan, connack(1), open);
  nextPlan(plan, closed, open);
  assert.deepEqual(plan, initialPlan());
});

test('CONNECT options: MQTT 5 keeps a session 120 s; 3.1.1 asks for a clean one', () => {
  const c = { clientId: 'alice.web-01', willTopic: 'users/alice/presence/alice.web-01', username: null, password: null };
  const five = connectOptions(initialPlan(), c);
  assert.equal(five.protocolVersion, 5);
  assert.equal(five.clean, false);
  assert.deepEqual(five.properties, { sessionExpiryInterval: SESSION_EXPIRY_S });
  assert.deepEqual(five.will, { topic: 'users/alice/presence/alice.web-01', payload: '', qos: 1, retain: true });
  assert.equal(five.clientId, 'alice.web-01');
  assert.equal(five.resubscribe, false);
  assert.equal('username' in five, false, 'no credentials in open mode');
  const four = connectOptions({ ...initialPlan(), protocol: 4 }, c);
  assert.equal(four.protocolVersion, 4);
  assert.equal(four.clean, true);
  assert.equal('properties' in four, false);
  const withToken = connectOptions(initialPlan(), { ...c, username: 'alice', password: 'tok' });
  assert.deepEqual([withToken.username, withToken.password], ['alice', 'tok']);
  assert.deepEqual(endOptions(initialPlan()), { properties: { sessionExpiryInterval: 0 } });
  assert.deepEqual(endOptions({ ...initialPlan(), protocol: 4 }), {});
});
