/*
 * call_state.js - PURE call-state reducer of the web client: (state, action) -> { state, effects }.
 *
 * The one place where the phase of this tab's call changes. Actions are what happened: call
 * events and the retained call state from MQTT, REST answers, and the person's own clicks.
 * Effects are what app.js must do about it (send a request, record a finished call, show a
 * notice); everything the page shows is derived from the state (web/app.js render()). No I/O, no
 * clock (actions carry `now`, in ms), no randomness; the state is never mutated, a new one is
 * returned. Tested by web/test/call_state.test.js (every action in every phase).
 *
 * state.call, the call this tab takes part in, or null:
 *   { id, call, role: 'caller'|'receiver', phase, peer, liveSince, cancelRequested }
 * phases:
 *   caller:   starting -> calling -> (cancelling) -> live -> (ending) -> gone
 *   receiver: ringing -> accepting | declining -> live -> (ending) -> gone
 * Events and REST answers arrive in either order, so every transition is idempotent; events are
 * deduplicated by id, Call states older than the one shown (lower `revision`) are dropped, and a
 * call is recorded once, by id (effect 'record').
 *
 * Actions ({ type, ... }):
 *   start {peer}             the person presses Call      startOk {call}  startFailed {message}
 *   event {event, now}       users/{me}/events            callState {call|null, now}  users/{me}/call
 *   answer {answer}          Accept / Decline             answerOk {call} answerFailed {status, message, call?}
 *   hangup                   Cancel / Hang up             endOk {call}    endFailed {code, message}
 *   settled {call}           GET /calls/{id} of a call that ended unseen; settledGone {id} (404)
 *   reset {label}            sign-out / broker refused (label recorded) or back from the bfcache (no label)
 * Effects ({ kind, ... }):
 *   postAnswer {callId, answer}   postEnd {callId}   settle {callId}   notify {message}
 *   record {entry: {callId, peer, direction, outcome, label}, text}
 */

const LIVE = ['DIALLING', 'ONGOING'];
const MEMORY = 500; // event ids and finished call ids remembered

export function initialState(meId) {
  return { me: meId, call: null, early: [], seen: [], finished: [] };
}

function displayName(user) {
  return (user && (user.name || user.id)) || 'someone';
}

/** m:ss or h:mm:ss */
export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** How a finished call ended, in words: { outcome, label (recent calls), text (the stage) }.
 *  meId: who is asking (endedBy may be them). */
export function outcomeOf(call, role, hint, meId) {
  const peer = displayName(role === 'caller' ? call.receiver : call.caller);
  const answered = call.answeredAt && call.endedAt ? Date.parse(call.endedAt) - Date.parse(call.answeredAt) : null;
  // endReason (docs/api.md "Data") says more than status where the service knows it.
  if (call.endReason === 'BUSY') {
    return { outcome: 'missed', label: 'Missed · Busy', text: `Missed call from ${peer}: you were busy.` };
  }
  if (call.endReason === 'MEDIA_ENDED') {
    const left = call.endedBy && call.endedBy.userId && call.endedBy.userId !== meId ? `${peer} left` : 'the media ended';
    return { outcome: 'ended', label: `Ended · ${left}`, text: `Call ended: ${left}.` };
  }
  switch (call.status) {
    case 'ONGOING':
      return { outcome: 'elsewhere', label: 'Answered on another device', text: 'Answered on another device.' };
    case 'DECLINED':
      if (hint === 'elsewhere') {
        return { outcome: 'declined', label: 'Declined on another device', text: 'Declined on another device.' };
      }
      return role === 'caller'
        ? { outcome: 'declined', label: 'Declined', text: `${peer} declined the call.` }
        : { outcome: 'declined', label: 'Declined', text: `You declined the call from ${peer}.` };
    case 'MISSED':
      return role === 'caller'
        ? { outcome: 'missed', label: 'Missed \u00b7 no answer', text: `Missed: ${peer} did not answer.` }
        : { outcome: 'missed', label: 'Missed call', text: `Missed call from ${peer}.` };
    case 'ENDED':
      if (call.answeredAt) {
        const d = answered !== null && !Number.isNaN(answered) ? ` \u00b7 ${duration(answered)}` : '';
        return { outcome: 'ended', label: `Ended${d}`, text: `Call with ${peer} ended${d}.` };
      }
      return role === 'caller'
        ? { outcome: 'cancelled', label: 'Cancelled', text: `Call to ${peer} cancelled.` }
        : { outcome: 'missed', label: 'Missed call', text: `Missed call from ${peer}.` };
    case 'ERROR': {
      const why = call.errMsg ? `: ${call.errMsg}` : '';
      return { outcome: 'failed', label: `Failed${why}`, text: `Call with ${peer} failed${why}.` };
    }
    default:
      return { outcome: 'failed', label: `Failed (${call.status})`, text: `Call with ${peer} stopped (${call.status}).` };
  }
}

function remember(list, id) {
  const next = list.concat(id);
  return next.length > MEMORY ? next.slice(next.length - MEMORY) : next;
}

function isStale(cur, call) {
  return Boolean(cur && cur.id === call.id && cur.call && Number.isInteger(cur.call.revision) &&
                 Number.isInteger(call.revision) && call.revision < cur.call.revision);
}

function ringExpired(call, now) {
  return typeof call.ringDeadline === 'string' && Date.parse(call.ringDeadline) <= now;
}

function isCall(call) {
  return Boolean(call && typeof call === 'object' && typeof call.id === 'string');
}

function peerOf(call, role, fallback) {
  return (role === 'caller' ? call.receiver : call.caller) || fallback || {};
}

function liveSinceOf(call, now) {
  const t = call && typeof call.answeredAt === 'string' ? Date.parse(call.answeredAt) : NaN;
  return Number.isNaN(t) || t > now ? now : t;
}

/* The call is over per the service: record it once (by id) and drop it if it is ours. */
function finish(s, fx, call, hint) {
  const cur = s.call && s.call.id === call.id ? s.call : null;
  if (cur) s = { ...s, call: null };
  if (!s.finished.includes(call.id)) {
    s = { ...s, finished: remember(s.finished, call.id) };
    const role = cur ? cur.role : (call.caller && call.caller.id === s.me ? 'caller' : 'receiver');
    const o = outcomeOf(call, role, hint, s.me);
    fx.push({ kind: 'record', shown: Boolean(cur), text: o.text,
              entry: { callId: call.id, peer: peerOf(call, role, cur && cur.peer),
                       direction: role === 'caller' ? 'outgoing' : 'incoming', outcome: o.outcome, label: o.label } });
  }
  return s;
}

/* The call is over on our side only (the service no longer knows it, or we left). */
function finishLocally(s, fx, label) {
  const cur = s.call;
  if (!cur) return s;
  s = { ...s, call: null };
  if (cur.id && !s.finished.includes(cur.id)) {
    s = { ...s, finished: remember(s.finished, cur.id) };
    fx.push({ kind: 'record', shown: true, text: `Call with ${displayName(cur.peer)}: ${label}`,
              entry: { callId: cur.id, peer: cur.peer, direction: cur.role === 'caller' ? 'outgoing' : 'incoming',
                       outcome: 'failed', label } });
  }
  return s;
}

function withCall(s, patch) {
  return { ...s, call: { ...s.call, ...patch } };
}

function enterLive(s, call, now) {
  const cur = s.call;
  if (!cur || cur.id !== call.id || cur.phase === 'live' || cur.phase === 'ending') return s;
  return withCall(s, { call, phase: 'live', peer: peerOf(call, cur.role, cur.peer), liveSince: liveSinceOf(call, now) });
}

function onEvent(s, fx, ev, now) {
  if (!ev || typeof ev !== 'object' || !isCall(ev.call)) return s;
  const call = ev.call;
  const cur = s.call;
  if (cur && cur.phase === 'starting') {
    // Our POST /calls/start is in flight: replayed once it is answered (an INCOMING_CALL then
    // rings when our start failed because that very call made us busy).
    return { ...s, early: s.early.concat({ type: 'event', event: ev, now }) };
  }
  if (typeof ev.id === 'string') {
    if (s.seen.includes(ev.id)) return s; // a duplicate delivery (QoS 1)
    s = { ...s, seen: remember(s.seen, ev.id) };
  }
  if (isStale(cur, call)) return s;
  if (ev.type === 'INCOMING_CALL') {
    if (!call.receiver || call.receiver.id !== s.me || s.finished.includes(call.id)) return s;
    if (cur) return s; // the service refuses a second call to a busy user
    if (ringExpired(call, now)) return s; // delivered late: the call is missed by now
    return { ...s, call: { id: call.id, call, role: 'receiver', phase: 'ringing', peer: call.caller || {} } };
  }
  if (ev.type === 'END_CALL' && call.endReason === 'BUSY' && (!cur || cur.id !== call.id)) {
    return finish(s, fx, call, null); // someone called while we were busy: a missed call of its own
  }
  if (!cur || cur.id !== call.id) return s;
  s = withCall(s, { call });
  if (ev.type === 'ACCEPT_CALL') {
    if (cur.phase === 'calling' || cur.phase === 'accepting') return enterLive(s, call, now);
    if (cur.phase === 'ringing' || cur.phase === 'declining') return finish(s, fx, call, 'elsewhere');
    return s;
  }
  if (ev.type === 'DECLINE_CALL' || ev.type === 'END_CALL') {
    return finish(s, fx, call, cur.role === 'receiver' && cur.phase === 'ringing' ? 'elsewhere' : null);
  }
  return s;
}

function onCallState(s, fx, call, now) {
  const cur = s.call;
  if (cur && cur.phase === 'starting') {
    return call ? { ...s, early: s.early.concat({ type: 'callState', call, now }) } : s;
  }
  if (!call) {
    // No live call: one we still show ended unseen; the service says how.
    if (cur && cur.id) fx.push({ kind: 'settle', callId: cur.id });
    return s;
  }
  if (!isCall(call) || !call.caller || !call.receiver) return s;
  if (s.finished.includes(call.id) || isStale(cur, call)) return s;
  if (!LIVE.includes(call.status)) return finish(s, fx, call);
  if (cur && cur.id !== call.id) fx.push({ kind: 'settle', callId: cur.id }); // ours ended unseen
  if (cur && cur.id === call.id) {
    s = withCall(s, { call });
    if (call.status === 'ONGOING' && ['calling', 'accepting'].includes(cur.phase)) return enterLive(s, call, now);
    if (call.status === 'ONGOING' && cur.phase === 'ringing') return finish(s, fx, call, 'elsewhere');
    return s;
  }
  if (cur) return s; // a second live call while one is shown: the settle above clears ours first
  const role = call.caller.id === s.me ? 'caller' : 'receiver';
  const peer = peerOf(call, role);
  if (call.status === 'DIALLING') {
    if (role === 'receiver' && ringExpired(call, now)) return s;
    return { ...s, call: { id: call.id, call, role, phase: role === 'caller' ? 'calling' : 'ringing', peer } };
  }
  return { ...s, call: { id: call.id, call, role, phase: 'live', peer, liveSince: liveSinceOf(call, now) } };
}

function replay(s, fx, early) {
  for (const a of early) s = step(s, fx, a);
  return s;
}

function step(s, fx, a) {
  const cur = s.call;
  switch (a.type) {
    case 'start':
      if (cur || !a.peer) return s;
      return { ...s, early: [], call: { id: null, call: null, role: 'caller', phase: 'starting', peer: a.peer } };
    case 'startOk': {
      if (!cur || cur.phase !== 'starting' || !isCall(a.call)) return s;
      const early = s.early;
      // Crossed calls merge: a start to the caller of our own ringing call answers with that
      // call, accepted (ONGOING), in which we are the receiver.
      const role = a.call.caller && a.call.caller.id === s.me ? 'caller' : 'receiver';
      const live = a.call.status === 'ONGOING';
      s = { ...s, early: [], call: { ...cur, id: a.call.id, call: a.call, role, peer: peerOf(a.call, role, cur.peer),
                                     phase: live ? 'live' : 'calling',
                                     liveSince: live ? liveSinceOf(a.call, a.now || 0) : undefined } };
      s = replay(s, fx, early);
      if (cur.cancelRequested && s.call && s.call.id === a.call.id && s.call.phase === 'calling') {
        s = withCall(s, { phase: 'cancelling' });
        fx.push({ kind: 'postEnd', callId: a.call.id });
      }
      return s;
    }
    case 'startFailed': {
      if (!cur || cur.phase !== 'starting') return s;
      const early = s.early;
      s = { ...s, early: [], call: null };
      fx.push({ kind: 'notify', message: a.message });
      fx.push({ kind: 'record', shown: true, text: `Could not call ${displayName(cur.peer)}: ${a.message}`,
                entry: { callId: null, peer: cur.peer, direction: 'outgoing', outcome: 'failed', label: `Failed: ${a.message}` } });
      return replay(s, fx, early);
    }
    case 'event':
      return onEvent(s, fx, a.event, a.now);
    case 'callState':
      return onCallState(s, fx, a.call, a.now);
    case 'answer':
      if (!cur || cur.phase !== 'ringing' || (a.answer !== 'ACCEPT' && a.answer !== 'DECLINE')) return s;
      fx.push({ kind: 'postAnswer', callId: cur.id, answer: a.answer });
      return withCall(s, { phase: a.answer === 'ACCEPT' ? 'accepting' : 'declining', answer: a.answer });
    case 'answerOk':
      if (!cur || !isCall(a.call) || cur.id !== a.call.id || !['accepting', 'declining'].includes(cur.phase)) return s;
      if (a.call.status === 'ONGOING' && cur.phase === 'declining') return finish(s, fx, a.call, 'elsewhere');
      if (a.call.status === 'ONGOING') return enterLive(s, a.call, a.now);
      return finish(s, fx, a.call);
    case 'answerFailed':
      if (!cur || !['accepting', 'declining'].includes(cur.phase)) return s;
      fx.push({ kind: 'notify', message: a.message });
      if (isCall(a.call) && a.call.id === cur.id) {
        // 409: it stopped ringing meanwhile (answered elsewhere, cancelled, missed).
        return finish(s, fx, a.call, a.call.status === 'ONGOING' ? 'elsewhere' : null);
      }
      if (a.status === 0 || a.status === 429 || a.status >= 500) return withCall(s, { phase: 'ringing' }); // may still answer
      return finishLocally(s, fx, `Failed: ${a.message}`);
    case 'hangup':
      if (!cur) return s;
      if (cur.phase === 'starting') return withCall(s, { cancelRequested: true });
      if (cur.phase !== 'calling' && cur.phase !== 'live') return s;
      fx.push({ kind: 'postEnd', callId: cur.id });
      return withCall(s, { phase: cur.phase === 'calling' ? 'cancelling' : 'ending', before: cur.phase });
    case 'endOk':
      if (!cur || !isCall(a.call) || cur.id !== a.call.id) return s;
      if (LIVE.includes(a.call.status)) return s;
      return finish(s, fx, a.call);
    case 'endFailed':
      if (!cur || !['cancelling', 'ending'].includes(cur.phase)) return s;
      fx.push({ kind: 'notify', message: a.message });
      if (a.code === 'CALL_NOT_FOUND' || a.code === 'NOT_A_PARTY') return finishLocally(s, fx, `Failed: ${a.message}`);
      return withCall(s, { phase: cur.before || (cur.phase === 'cancelling' ? 'calling' : 'live') });
    case 'settled':
      if (!cur || !isCall(a.call) || cur.id !== a.call.id || LIVE.includes(a.call.status)) return s;
      return finish(s, fx, a.call);
    case 'settledGone':
      if (!cur || cur.id !== a.id) return s;
      return finishLocally(s, fx, 'Ended');
    case 'reset':
      if (!cur) return { ...s, early: [] };
      if (!a.label) return { ...s, call: null, early: [] }; // dropped unrecorded: the call topic says where it stands
      return { ...finishLocally(s, fx, a.label), early: [] };
    default:
      return s;
  }
}

/** The reducer: returns { state, effects }; `state` is never modified. */
export function reduce(state, action) {
  const effects = [];
  const next = step(state, effects, action || {});
  return { state: next, effects };
}

/** What the page shows for a state: { view, ringtone, ringback, busy }. */
export function viewOf(state) {
  const cur = state.call;
  const phase = cur ? cur.phase : 'idle';
  const calling = Boolean(cur && cur.role === 'caller' && ['starting', 'calling', 'cancelling'].includes(phase));
  const live = Boolean(cur && ['live', 'ending'].includes(phase));
  const receiving = Boolean(cur && ['ringing', 'accepting', 'declining'].includes(phase));
  return {
    phase,
    view: live ? 'call' : calling ? 'calling' : receiving ? 'ringing' : 'idle',
    ringtone: Boolean(cur && phase === 'ringing'),
    ringback: Boolean(cur && phase === 'calling'),
    busy: Boolean(cur),
  };
}
