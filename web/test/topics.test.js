// topics.test.js - web/lib/topics.js against fixed expectations and, differentially, against the
// service's own grammar (common/ids.c, service/topics.c) through tests/unit/ids_oracle.c, whose
// path CTest passes in IDS_ORACLE (entry web.unit). Run: node --test web/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as topics from '../lib/topics.js';

const long = (n, ch = 'a') => ch.repeat(n);

// [userId, clientId, topic]: every id rule on each side of its edge.
const CASES = [
  ['alice', 'alice.web-0a1b2c3d', 'users/alice/presence/alice.web-0a1b2c3d'],
  ['jo.doe', 'jo.doe.phone', 'users/jo.doe/presence/jo.doe.phone'],
  ['jo', 'jo.doe.phone', 'users/jo/presence/jo.doe.phone'],
  ['alice', 'alice.', 'users/alice/presence/alice.'],
  ['alice', 'alice', 'users/alice/presence/alice'],
  ['alice', 'alicex.web', 'users/alice/presence/alicex.web'],
  ['alice', '.web', 'users//presence/.web'],
  ['', 'x.y', 'users/x/presence'],
  ['a/b', 'a/b.web', 'users/a/b/presence/a.web'],
  ['a+b', 'a+b.web', 'users/a+b/presence/a+b.web'],
  ['a#b', 'a#b.web', 'users/+/presence/#'],
  ['tab\there', 'tab.web', 'users/tab/presence/tab.web/extra'],
  ['del\u007f', 'del.web', 'users/del/events'],
  ['nl\nx', 'nl.web', 'devices/nl/presence/nl.web'],
  ['Zoë', 'Zoë.web-01', 'users/Zoë/presence/Zoë.web-01'],
  ['日本', '日本.web-ff', 'users/日本/presence/日本.web-ff'],
  ['🙂', '🙂.web', 'users/🙂/presence/🙂.web'],
  [long(128), long(128) + '.w', 'users/' + long(128) + '/presence/' + long(126) + '.w'],
  [long(129), long(126) + '.w', 'users/' + long(129) + '/presence/x.w'],
  [long(126), long(126) + '.w', 'users/' + long(126) + '/presence/' + long(126) + '.w'],
  [long(125), long(125) + '.web', 'users/a/presence/' + long(129)],
  [long(64, 'é'), long(64, 'é') + '.w', 'users/' + long(64, 'é') + '/presence/a.w'],
  [long(63, 'é') + 'ab', 'x.y', 'users/' + long(63, 'é') + 'abc/presence/a.w'],
  ['space ok', 'space ok.dev ice', 'users/space ok/presence/space ok.dev ice'],
  ['dot.', 'dot..web', 'users/dot./presence/dot..web'],
  ['.', '..w', 'users/./presence/..w'],
];

test('fixed verdicts', () => {
  assert.equal(topics.isValidId('alice'), true);
  assert.equal(topics.isValidId(''), false);
  assert.equal(topics.isValidId('a/b'), false);
  assert.equal(topics.isValidId(long(128)), true);
  assert.equal(topics.isValidId(long(129)), false);
  assert.equal(topics.isValidId(long(64, 'é')), true, '128 bytes');
  assert.equal(topics.isValidId(long(65, 'é')), false, '130 bytes');
  assert.equal(topics.isValidId('x\ud800'), false, 'lone surrogate');
  assert.equal(topics.clientIdNamesUser('jo.doe.phone', 'jo.doe'), true);
  assert.equal(topics.clientIdNamesUser('jo.doe.phone', 'jo'), false);
  assert.equal(topics.clientIdNamesAUser('callsignal-0a1b'), false);
  assert.deepEqual(topics.parseTopic('users/a/presence/a.w'), { kind: 'presence', userId: 'a', clientId: 'a.w' });
  assert.deepEqual(topics.parseTopic('users/a/events'), { kind: 'events', userId: 'a' });
  assert.deepEqual(topics.parseTopic('users/a/call'), { kind: 'call', userId: 'a' });
  assert.equal(topics.parseTopic('users/a/b/presence/c'), null);
  assert.equal(topics.presenceTopic('a', 'a.w'), 'users/a/presence/a.w');
  assert.equal(topics.eventsTopic('a'), 'users/a/events');
  assert.equal(topics.callTopic('a'), 'users/a/call');
});

test('idProblem says what is wrong in words', () => {
  assert.equal(topics.idProblem('alice', 'web-00'), null);
  assert.match(topics.idProblem('', 'web-00'), /Choose/);
  assert.match(topics.idProblem('a/b', 'web-00'), /may not contain/);
  assert.match(topics.idProblem(long(129), 'web-00'), /longer than 128/);
  assert.match(topics.idProblem(long(125), 'web-00'), /too long for a client id/);
});

test('contacts: valid ids once each, without me; the presence filters they give', () => {
  assert.deepEqual(topics.parseContacts(['bob', ' carol ', 'bob', 'alice', 'a/b', '', 'x+y', 'jo.doe'], 'alice'),
                   { contacts: ['bob', 'carol', 'jo.doe'], invalid: ['a/b', '', 'x+y'] });
  assert.deepEqual(topics.parseContacts(undefined, 'alice'), { contacts: [], invalid: [] });
  assert.deepEqual(topics.presenceFilters(null), ['users/+/presence/+']);
  assert.deepEqual(topics.presenceFilters(undefined), ['users/+/presence/+']);
  assert.deepEqual(topics.presenceFilters([]), [], 'an empty contact list: nobody');
  assert.deepEqual(topics.presenceFilters(['bob', 'Zoë']), ['users/bob/presence/+', 'users/Zoë/presence/+']);
  assert.equal(topics.showsPresenceOf(null, 'eve'), true);
  assert.equal(topics.showsPresenceOf(['bob'], 'bob'), true);
  assert.equal(topics.showsPresenceOf(['bob'], 'eve'), false);
  // every filter of a valid contact is a presence filter of that user only
  for (const c of topics.parseContacts(CASES.map(([u]) => u)).contacts) {
    const [f] = topics.presenceFilters([c]);
    assert.deepEqual(topics.parseTopic(f.replace(/\+$/, 'x.y')), { kind: 'presence', userId: c, clientId: 'x.y' });
  }
});

test('the client id without a dot (brokers that refuse dots in topics)', () => {
  assert.equal(topics.plainClientIdFor('alice', 'web-0a1b2c3d'), 'alice_web-0a1b2c3d');
  assert.equal(topics.plainClientIdFor('alice', 'web-0a1b2c3d').length, topics.clientIdFor('alice', 'web-0a1b2c3d').length);
  assert.equal(topics.clientIdNamesAUser(topics.plainClientIdFor('alice', 'web-01')), false, 'it names no user');
  assert.equal(topics.isValidId(topics.plainClientIdFor('alice', 'web-01')), true);
  assert.equal(topics.hasNatsRefusedChar('alice_web-01'), false);
  assert.equal(topics.hasNatsRefusedChar('alice.web-01'), true);
  assert.equal(topics.hasNatsRefusedChar('space ok'), true);
});

const hex = (s) => (s === '' ? '-' : Buffer.from(s, 'utf8').toString('hex'));

test('the same verdicts as the service (tests/unit/ids_oracle.c)', (t) => {
  const oracle = process.env.IDS_ORACLE;
  if (!oracle) {
    t.skip('IDS_ORACLE is not set (CTest entry web.unit sets it)');
    return;
  }
  const input = CASES.map(([u, c, tp]) => `${hex(u)} ${hex(c)} ${hex(tp)}\n`).join('');
  const r = spawnSync(oracle, { input, encoding: 'utf8' });
  assert.equal(r.status, 0, `ids_oracle failed: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, CASES.length);
  let agreed = 0;
  CASES.forEach(([u, c, tp], i) => {
    const p = topics.parseTopic(tp);
    const presence = p && p.kind === 'presence' ? p : null;
    const mine = [
      topics.isValidId(u) ? 1 : 0,
      topics.clientIdNamesUser(c, u) ? 1 : 0,
      topics.clientIdNamesAUser(c) ? 1 : 0,
      presence ? 1 : 0,
      presence ? `${hex(presence.userId)}/${hex(presence.clientId)}` : '-',
    ].join(' ');
    assert.equal(mine, lines[i], `case ${JSON.stringify([u, c, tp])}`);
    agreed++;
  });
  assert.equal(agreed, CASES.length);
});
