// presence.test.js - who is online as the page sees it (web/lib/presence.js): devices, the Last
// Will's empty payload, busy from any device, invalid payloads ignored. Run: node --test web/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPresence, parsePresence } from '../lib/presence.js';

const dev = (name, more = {}) => JSON.stringify({ id: 'bob', name, location: 'Osaka', ...more });

test('a user is online while one device is', () => {
  const p = createPresence();
  assert.deepEqual(p.apply('bob', 'bob.phone', parsePresence('bob', dev('Bob'))),
                   { id: 'bob', name: 'Bob', location: 'Osaka', busy: false });
  p.apply('bob', 'bob.web-1', parsePresence('bob', dev('Bob T')));
  assert.equal(p.get('bob').name, 'Bob T', 'the latest device gives the name');
  assert.equal(p.apply('bob', 'bob.web-1', parsePresence('bob', '')).name, 'Bob');
  assert.equal(p.apply('bob', 'bob.phone', parsePresence('bob', '')), null);
  assert.equal(p.has('bob'), false);
  assert.equal(p.apply('bob', 'bob.never', null), null, 'offline of an unknown device');
});

test('busy while any device says so', () => {
  const p = createPresence();
  p.apply('bob', 'bob.phone', parsePresence('bob', dev('Bob')));
  assert.equal(p.apply('bob', 'bob.web', parsePresence('bob', dev('Bob', { busy: true }))).busy, true);
  assert.equal(p.apply('bob', 'bob.phone', parsePresence('bob', dev('Bob'))).busy, true);
  assert.equal(p.apply('bob', 'bob.web', parsePresence('bob', dev('Bob'))).busy, false);
  assert.equal(p.apply('bob', 'bob.web', parsePresence('bob', dev('Bob', { busy: 'yes' }))).busy, false);
});

test('invalid payloads are ignored', () => {
  assert.equal(parsePresence('bob', '{not json'), undefined);
  assert.equal(parsePresence('bob', '[]'), undefined);
  assert.equal(parsePresence('bob', JSON.stringify({ id: 'eve', name: 'Eve' })), undefined);
  assert.equal(parsePresence('bob', JSON.stringify({ id: 'bob', name: 7 })), undefined);
  assert.deepEqual(parsePresence('bob', JSON.stringify({ id: 'bob', name: 'Bob', location: 3 })),
                   { id: 'bob', name: 'Bob', location: '', busy: false });
});
