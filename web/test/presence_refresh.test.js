// presence_refresh.test.js - when the page refreshes its retained presence for the service's
// lease (web/lib/presence_refresh.js): within the period after the last publication, never
// later, spread by the random argument, at once when the timer fired late, never without a
// period. Run: node --test web/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { refreshDelayMs, refreshPeriodS, MIN_DELAY_MS } from '../lib/presence_refresh.js';

test('the period from GET /config: a positive number, else no refresh', () => {
  assert.equal(refreshPeriodS(60), 60);
  assert.equal(refreshPeriodS(2.5), 2.5);
  for (const v of [0, -1, NaN, Infinity, '60', null, undefined, {}]) assert.equal(refreshPeriodS(v), 0, String(v));
});

test('no refresh without a period or before the first publication', () => {
  assert.equal(refreshDelayMs(0, 1000, 1000, 0.5), null);
  assert.equal(refreshDelayMs(undefined, 1000, 1000, 0.5), null);
  assert.equal(refreshDelayMs(60, null, 1000, 0.5), null);
});

test('between 3/4 of the period and the whole period after the last publication', () => {
  const t = 1_000_000;
  assert.equal(refreshDelayMs(60, t, t, 0), 45_000);
  assert.equal(refreshDelayMs(60, t, t, 0.5), 52_500);
  assert.equal(refreshDelayMs(60, t, t, 0.999999), 60_000);
  assert.equal(refreshDelayMs(60, t, t, 7), 60_000, 'random clamped to [0, 1]');
  assert.equal(refreshDelayMs(60, t, t, -3), 45_000);
  for (let i = 0; i <= 100; i++) {
    const d = refreshDelayMs(1, t, t, i / 100);
    assert.ok(d >= 750 && d <= 1000, `${d}`);
  }
});

test('timed from the last publication, whatever published it', () => {
  const t = 5_000;
  assert.equal(refreshDelayMs(10, t, t + 4_000, 1), 6_000);
  assert.equal(refreshDelayMs(10, t + 4_000, t + 4_000, 1), 10_000, 'a busy change moved it');
});

test('a late timer (a throttled background tab) refreshes at once, never in a busy loop', () => {
  assert.equal(refreshDelayMs(60, 0, 600_000, 0.5), MIN_DELAY_MS);
  assert.equal(refreshDelayMs(0.01, 0, 0, 0), MIN_DELAY_MS);
});

test('gaps between publications never exceed the period (the lease is 2.5 periods)', () => {
  let now = 0;
  let last = 0;
  let worst = 0;
  for (let i = 0; i < 1000; i++) {
    const d = refreshDelayMs(60, last, now, (i * 0.6180339) % 1);
    now += d;
    worst = Math.max(worst, now - last);
    last = now;
  }
  assert.ok(worst <= 60_000, `worst gap ${worst} ms`);
});
