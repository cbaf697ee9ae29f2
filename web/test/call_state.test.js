// call_state.test.js - the web client's call-state reducer (web/lib/call_state.js): every action in
// every phase (a table of the expected phase and whether the call is recorded), then the cases that
// need more than one step: duplicated and stale events, events that beat a REST answer, rings
// delivered after their deadline, cancel before the start was answered. Run: node --test web/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reduce, initialState, viewOf, outcomeOf } from '../lib/call_state.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const ME = { id: 'me', name: 'Me', location: '' };
const PAT = { id: 'pat', name: 'Pat', location: 'Oslo' };
const SAM = { id: 'sam', name: 'Sam', location: '' };

let rev = 10;
function call(id, status, { caller = ME, receiver = PAT, revision = ++rev, ...more } = {}) {
  const c = { id, caller, receiver, status, createdAt: '2026-01-01T11:59:50Z', revision, ...more };
  if (status === 'DIALLING') c.ringDeadline = '2026-01-01T12:00:30Z';
  if (status !== 'DIALLING') c.answeredAt = status === 'ONGOING' || status === 'ENDED' ? '2026-01-01T11:59:55Z' : undefined;
  if (!['DIALLING', 'ONGOING'].includes(status)) c.endedAt = '2026-01-01T12:00:00Z';
  return c;
}
const incomingTo = (id, status) => call(id, status, { caller: PAT, receiver: ME });
let evn = 0;
const event = (type, c) => ({ type: 'event', now: NOW, event: { id: `e${++evn}`, type, call: c } });

function deepFreeze(o) {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** A state in the given phase; its call is c1 (outgoing) or r1 (incoming). */
function stateIn(phase) {
  const s = initialState('me');
  const out = { id: 'c1', call: call('c1', 'DIALLING', { revision: 5 }), role: 'caller', peer: PAT };
  const inc = { id: 'r1', call: incomingTo('r1', 'DIALLING'), role: 'receiver', peer: PAT };
  inc.call.revision = 5;
  switch (phase) {
    case 'idle': return s;
    case 'starting': return { ...s, call: { id: null, call: null, role: 'caller', phase, peer: PAT } };
    case 'calling': case 'cancelling': return { ...s, call: { ...out, phase } };
    case 'live': case 'ending': return { ...s, call: { ...out, phase, before: 'live', liveSince: NOW } };
    default: return { ...s, call: { ...inc, phase } };
  }
}

/** Actions about the call of the state (c1 for idle/starting). */
function actions(x) {
  const isIn = x === 'r1';
  const mk = (status, more) => (isIn ? incomingTo(x, status) : call(x, status, more));
  return {
    start: { type: 'start', peer: SAM },
    startOk: { type: 'startOk', call: call('c1', 'DIALLING') },
    startFailed: { type: 'startFailed', message: 'Receiver busy' },
    incomingNew: event('INCOMING_CALL', incomingTo('n1', 'DIALLING')),
    accept: event('ACCEPT_CALL', mk('ONGOING')),
    decline: event('DECLINE_CALL', mk('DECLINED')),
    end: event('END_CALL', mk('ENDED')),
    endOther: event('END_CALL', call('zz', 'ENDED')),
    incomingSame: event('INCOMING_CALL', isIn ? incomingTo(x, 'DIALLING') : call(x, 'DIALLING')),
    staleEnd: event('END_CALL', isIn ? { ...incomingTo(x, 'ENDED'), revision: 1 } : call(x, 'ENDED', { revision: 1 })),
    stateNull: { type: 'callState', call: null, now: NOW },
    stateOngoing: { type: 'callState', call: mk('ONGOING'), now: NOW },
    answerAccept: { type: 'answer', answer: 'ACCEPT' },
    answerDecline: { type: 'answer', answer: 'DECLINE' },
    answerOk: { type: 'answerOk', call: mk('ONGOING'), now: NOW },
    answer409: { type: 'answerFailed', status: 409, message: 'Call is not ringing', call: mk('MISSED') },
    answer503: { type: 'answerFailed', status: 503, message: 'Service unavailable' },
    hangup: { type: 'hangup' },
    endOk: { type: 'endOk', call: mk('ENDED') },
    endFailed: { type: 'endFailed', status: 500, code: 'INTERNAL', message: 'Internal error' },
    settled: { type: 'settled', call: mk('ENDED') },
    reset: { type: 'reset', label: 'Signed out' },
  };
}

// after each action (row) in each phase (column): the phase it leads to; '+' = the call is
// recorded (a 'record' effect). Columns are the phases of stateIn().
const PHASES = ['idle', 'starting', 'calling', 'cancelling', 'live', 'ending', 'ringing', 'accepting', 'declining'];
const TABLE = {
  //              idle       starting   calling    cancelling live       ending     ringing    accepting  declining
  start:          'starting   starting   calling    cancelling live       ending     ringing    accepting  declining',
  startOk:        'idle       calling    calling    cancelling live       ending     ringing    accepting  declining',
  startFailed:    'idle       idle+      calling    cancelling live       ending     ringing    accepting  declining',
  incomingNew:    'ringing    starting   calling    cancelling live       ending     ringing    accepting  declining',
  accept:         'idle       starting   live       cancelling live       ending     idle+      live       idle+',
  decline:        'idle       starting   idle+      idle+      idle+      idle+      idle+      idle+      idle+',
  end:            'idle       starting   idle+      idle+      idle+      idle+      idle+      idle+      idle+',
  endOther:       'idle       starting   calling    cancelling live       ending     ringing    accepting  declining',
  incomingSame:   'idle       starting   calling    cancelling live       ending     ringing    accepting  declining',
  staleEnd:       'idle       starting   calling    cancelling live       ending     ringing    accepting  declining',
  stateNull:      'idle       starting   calling    cancelling live       ending     ringing    accepting  declining',
  stateOngoing:   'live       starting   live       cancelling live       ending     idle+      live       declining',
  answerAccept:   'idle       starting   calling    cancelling live       ending     accepting  accepting  declining',
  answerDecline:  'idle       starting   calling    cancelling live       ending     declining  accepting  declining',
  answerOk:       'idle       starting   calling    cancelling live       ending     ringing    live       idle+',
  answer409:      'idle       starting   calling    cancelling live       ending     ringing    idle+      idle+',
  answer503:      'idle       starting   calling    cancelling live       ending     ringing    ringing    ringing',
  hangup:         'idle       starting   cancelling cancelling ending     ending     ringing    accepting  declining',
  endOk:          'idle       starting   idle+      idle+      idle+      idle+      idle+      idle+      idle+',
  endFailed:      'idle       starting   calling    calling    live       live       ringing    accepting  declining',
  settled:        'idle       starting   idle+      idle+      idle+      idle+      idle+      idle+      idle+',
  reset:          'idle       idle       idle+      idle+      idle+      idle+      idle+      idle+      idle+',
};

PHASES.forEach((phase, col) => {
  test(`every action in phase ${phase}`, () => {
    for (const [action, row] of Object.entries(TABLE)) {
      const want = row.trim().split(/\s+/);
      assert.equal(want.length, PHASES.length, `row ${action}`);
      const before = deepFreeze(stateIn(phase));
      const x = before.call && before.call.id ? before.call.id : 'c1';
      const { state, effects } = reduce(before, actions(x)[action]);
      const got = (state.call ? state.call.phase : 'idle') + (effects.some((e) => e.kind === 'record') ? '+' : '');
      assert.equal(got, want[col], `${phase} + ${action}`);
    }
  });
});

test('a duplicated event (same id) is handled once', () => {
  const s0 = stateIn('calling');
  const ev = event('END_CALL', call('c1', 'ENDED'));
  const a = reduce(s0, ev);
  assert.equal(a.state.call, null);
  assert.equal(a.effects.filter((e) => e.kind === 'record').length, 1);
  // the same delivery again, e.g. after a new INCOMING_CALL made the tab busy once more
  const ring = reduce(a.state, event('INCOMING_CALL', incomingTo('n2', 'DIALLING')));
  const b = reduce(ring.state, ev);
  assert.equal(b.state.call.phase, 'ringing');
  assert.deepEqual(b.effects, []);
});

test('a duplicated INCOMING_CALL of a finished call does not ring again', () => {
  const ring = event('INCOMING_CALL', incomingTo('r9', 'DIALLING'));
  let s = reduce(initialState('me'), ring).state;
  s = reduce(s, event('END_CALL', incomingTo('r9', 'ENDED'))).state;
  assert.equal(s.call, null);
  const again = { ...ring, event: { ...ring.event, id: 'other-id' } };
  assert.equal(reduce(s, again).state.call, null);
});

test('a stale call state (lower revision) is dropped', () => {
  let s = reduce(stateIn('calling'), { type: 'callState', now: NOW, call: call('c1', 'ONGOING', { revision: 7 }) }).state;
  assert.equal(s.call.phase, 'live');
  const stale = { type: 'callState', now: NOW, call: call('c1', 'DIALLING', { revision: 6 }) };
  const r = reduce(s, stale);
  assert.equal(r.state, s);
  const staleEnd = event('END_CALL', call('c1', 'ENDED', { revision: 3 }));
  assert.equal(reduce(s, staleEnd).state.call.phase, 'live');
});

test('a ring delivered after its deadline does not ring', () => {
  const late = incomingTo('r2', 'DIALLING');
  late.ringDeadline = '2026-01-01T11:59:59Z';
  assert.equal(reduce(initialState('me'), event('INCOMING_CALL', late)).state.call, null);
  assert.equal(reduce(initialState('me'), { type: 'callState', call: late, now: NOW }).state.call, null);
  const inTime = { ...late, ringDeadline: '2026-01-01T12:00:01Z' };
  assert.equal(reduce(initialState('me'), event('INCOMING_CALL', inTime)).state.call.phase, 'ringing');
});

test('events that beat the answer to POST /calls/start are replayed after it', () => {
  let s = reduce(initialState('me'), { type: 'start', peer: PAT }).state;
  s = reduce(s, event('ACCEPT_CALL', call('c3', 'ONGOING'))).state;
  assert.equal(s.call.phase, 'starting');
  const r = reduce(s, { type: 'startOk', call: call('c3', 'DIALLING', { revision: 1 }) });
  assert.equal(r.state.call.phase, 'live');
  assert.equal(r.state.call.id, 'c3');
});

test('an INCOMING_CALL that made our own start fail rings after the failure', () => {
  let s = reduce(initialState('me'), { type: 'start', peer: PAT }).state;
  s = reduce(s, event('INCOMING_CALL', incomingTo('r4', 'DIALLING'))).state;
  const r = reduce(s, { type: 'startFailed', message: 'Caller busy' });
  assert.equal(r.state.call.phase, 'ringing');
  assert.deepEqual(r.effects.map((e) => e.kind), ['notify', 'record']);
});

test('cancel pressed before the start was answered cancels once it is', () => {
  let s = reduce(initialState('me'), { type: 'start', peer: PAT }).state;
  s = reduce(s, { type: 'hangup' }).state;
  const r = reduce(s, { type: 'startOk', call: call('c5', 'DIALLING') });
  assert.equal(r.state.call.phase, 'cancelling');
  assert.deepEqual(r.effects, [{ kind: 'postEnd', callId: 'c5' }]);
});

test('a reloaded page rejoins its live call with the duration since it was answered', () => {
  const r = reduce(initialState('me'), { type: 'callState', now: NOW, call: call('c6', 'ONGOING') });
  assert.equal(r.state.call.phase, 'live');
  assert.equal(r.state.call.liveSince, Date.parse('2026-01-01T11:59:55Z'));
});

test('an empty call topic settles the call shown; the outcome comes from GET /calls/{id}', () => {
  const r = reduce(stateIn('live'), { type: 'callState', call: null, now: NOW });
  assert.deepEqual(r.effects, [{ kind: 'settle', callId: 'c1' }]);
  const gone = reduce(r.state, { type: 'settledGone', id: 'c1' });
  assert.equal(gone.state.call, null);
  assert.equal(gone.effects[0].entry.label, 'Ended');
});

test('back from the back/forward cache: the call is dropped unrecorded', () => {
  const r = reduce(stateIn('live'), { type: 'reset' });
  assert.equal(r.state.call, null);
  assert.deepEqual(r.effects, []);
});

test('view: ringtone while ringing, ringback while calling, busy while in any call', () => {
  assert.deepEqual(viewOf(stateIn('ringing')), { phase: 'ringing', view: 'ringing', ringtone: true, ringback: false, busy: true });
  assert.deepEqual(viewOf(stateIn('calling')), { phase: 'calling', view: 'calling', ringtone: false, ringback: true, busy: true });
  assert.equal(viewOf(stateIn('accepting')).ringtone, false);
  assert.equal(viewOf(stateIn('live')).view, 'call');
  assert.deepEqual(viewOf(stateIn('idle')), { phase: 'idle', view: 'idle', ringtone: false, ringback: false, busy: false });
});

test('crossed calls: our start answers with their ringing call, accepted; we are its receiver', () => {
  let s = reduce(initialState('me'), { type: 'start', peer: PAT }).state;
  s = reduce(s, event('INCOMING_CALL', incomingTo('x1', 'DIALLING'))).state; // theirs, while our start is in flight
  const merged = { ...incomingTo('x1', 'ONGOING'), answeredBy: { userId: 'me' } };
  const r = reduce(s, { type: 'startOk', call: merged, now: NOW });
  assert.equal(r.state.call.phase, 'live');
  assert.equal(r.state.call.role, 'receiver');
  assert.equal(r.state.call.peer.id, 'pat');
  const after = reduce(r.state, event('ACCEPT_CALL', merged));
  assert.equal(after.state.call.phase, 'live');
  assert.deepEqual(after.effects, []);
});

test('a busy attempt (END_CALL, endReason BUSY, a call of its own) is recorded and leaves our call alone', () => {
  const busy = { ...call('b1', 'MISSED', { caller: SAM, receiver: ME, revision: 1 }), endReason: 'BUSY' };
  const r = reduce(stateIn('live'), event('END_CALL', busy));
  assert.equal(r.state.call.phase, 'live');
  assert.equal(r.state.call.id, 'c1');
  assert.equal(r.effects.length, 1);
  assert.equal(r.effects[0].entry.label, 'Missed · Busy');
  assert.equal(r.effects[0].entry.peer.id, 'sam');
  assert.equal(r.effects[0].shown, false, 'not on the stage, which shows the live call');
  assert.equal(reduce(stateIn('idle'), event('END_CALL', busy)).effects[0].entry.outcome, 'missed');
});

test('end reasons in words', () => {
  const media = (by) => outcomeOf({ ...call('m', 'ENDED'), endReason: 'MEDIA_ENDED', endedBy: by }, 'caller', null, 'me').label;
  assert.equal(media({ userId: 'pat' }), 'Ended · Pat left');
  assert.equal(media({ userId: 'me' }), 'Ended · the media ended');
  assert.equal(media(undefined), 'Ended · the media ended');
  const o = (status, role, more, hint) => outcomeOf(call('x', status, more), role, hint).label;
  assert.equal(o('ENDED', 'caller'), 'Ended \u00b7 0:05');
  assert.equal(o('DECLINED', 'caller'), 'Declined');
  assert.equal(o('DECLINED', 'receiver', {}, 'elsewhere'), 'Declined on another device');
  assert.equal(o('MISSED', 'caller'), 'Missed \u00b7 no answer');
  assert.equal(o('MISSED', 'receiver'), 'Missed call');
  assert.equal(o('ERROR', 'caller', { errMsg: 'Pat went offline' }), 'Failed: Pat went offline');
  assert.equal(outcomeOf({ ...call('y', 'ENDED'), answeredAt: undefined }, 'caller').label, 'Cancelled');
});
