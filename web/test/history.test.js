// history.test.js - recent calls kept across reloads (web/lib/history.js), with a Storage that keeps
// strings as localStorage does; a second createHistory() on the same storage is a reloaded page.
// Run: node --test web/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHistory } from '../lib/history.js';

function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), raw: m };
}

const entry = (n) => ({ callId: `c${n}`, peer: { id: 'pat', name: 'Pat' }, direction: 'outgoing', outcome: 'ended',
                        label: 'Ended \u00b7 0:05' });

test('entries survive a reload, newest first, per user', () => {
  const storage = memoryStorage();
  const h = createHistory('me', storage);
  h.add(entry(1), new Date('2026-01-01T10:00:00Z'));
  h.add(entry(2), new Date('2026-01-01T11:00:00Z'));
  const again = createHistory('me', storage);
  assert.deepEqual(again.list().map((e) => e.callId), ['c2', 'c1']);
  assert.equal(again.list()[0].at, '2026-01-01T11:00:00.000Z');
  assert.equal(again.list()[0].label, 'Ended \u00b7 0:05');
  assert.deepEqual(createHistory('someone-else', storage).list(), []);
});

test('one entry per call id, at most 50, failed starts (no id) all kept', () => {
  const storage = memoryStorage();
  const h = createHistory('me', storage);
  assert.equal(h.add(entry(1)), true);
  assert.equal(h.add(entry(1)), false);
  h.add({ ...entry(0), callId: null, outcome: 'failed', label: 'Failed: Receiver busy' });
  h.add({ ...entry(0), callId: null, outcome: 'failed', label: 'Failed: Receiver busy' });
  assert.equal(h.list().length, 3);
  for (let i = 2; i < 60; i++) h.add(entry(i));
  assert.equal(createHistory('me', storage).list().length, 50);
  assert.equal(h.list()[0].callId, 'c59');
});

test('unreadable or full storage does not break the page', () => {
  const storage = memoryStorage();
  storage.setItem('callsignal.recents.me', '{not json');
  const h = createHistory('me', storage);
  assert.deepEqual(h.list(), []);
  const full = { getItem: () => null, setItem: () => { throw new Error('QuotaExceededError'); } };
  const h2 = createHistory('me', full);
  assert.equal(h2.add(entry(1)), true);
  assert.equal(h2.list().length, 1);
});

test("the service's history adds the calls of other devices; this browser's entry wins for a call both know", () => {
  const storage = memoryStorage();
  const h = createHistory('me', storage);
  h.add({ ...entry(1), label: 'Answered on another device', outcome: 'elsewhere' }, new Date('2026-01-01T10:00:05Z'));
  h.add({ callId: null, peer: { id: 'sam', name: 'Sam' }, direction: 'outgoing', outcome: 'failed',
          label: 'Failed: Receiver busy' }, new Date('2026-01-01T09:00:00Z'));
  const me = { id: 'me', name: 'Me' };
  const pat = { id: 'pat', name: 'Pat' };
  h.merge([
    { id: 'c2', caller: pat, receiver: me, status: 'MISSED', endReason: 'BUSY', createdAt: '2026-01-01T11:00:00Z',
      endedAt: '2026-01-01T11:00:00Z' },
    { id: 'c1', caller: me, receiver: pat, status: 'ENDED', createdAt: '2026-01-01T09:59:00Z',
      answeredAt: '2026-01-01T09:59:05Z', endedAt: '2026-01-01T10:00:05Z' },
    { id: 'c0', caller: me, receiver: pat, status: 'DECLINED', createdAt: '2026-01-01T08:00:00Z',
      endedAt: '2026-01-01T08:00:09Z' },
    { bogus: true },
  ]);
  assert.deepEqual(h.list().map((e) => [e.callId, e.label]), [
    ['c2', 'Missed \u00b7 Busy'],
    ['c1', 'Answered on another device'],
    [null, 'Failed: Receiver busy'],
    ['c0', 'Declined'],
  ]);
  assert.equal(h.list()[0].direction, 'incoming');
  assert.equal(h.list()[0].peer.id, 'pat');
  // only this browser's entries are stored
  assert.equal(JSON.parse(storage.raw.get('callsignal.recents.me')).length, 2);
});
