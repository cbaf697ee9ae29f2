/*
 * app.js - the browser client's entry point (a native ES module, no build step), loaded by
 * index.html after the two vendor libraries (globals `mqtt` and `LivekitClient`).
 *
 * It wires the parts together and owns nothing but that wiring:
 *   lib/topics.js      the id and topic grammar (checked against the service's own)
 *   lib/call_state.js  the pure call-state reducer: every change of this tab's call goes through
 *                      dispatch(action) -> reduce() -> render(prev, next) + the reducer's effects
 *   lib/user_list.js   the online list, updated per user
 *   lib/history.js     recent calls: the service's history and this browser's own record
 *   lib/sound.js       ringtone and ringback (Web Audio)
 *   lib/media.js       camera and microphone pickers, preview, the LiveKit room
 *   lib/token_check.js what is wrong with a pasted user token (jwt mode)
 *   lib/presence.js    who is online, per device (pure)
 *   lib/mqtt_link.js   this page's MQTT session: MQTT 5 or 3.1.1 (lib/connect_plan.js), my presence
 *                      with its Last Will, refreshed for the lease (lib/presence_refresh.js)
 *   lib/api.js         the REST helper
 *   lib/notices.js     notices that clear themselves
 *   lib/recents_view.js          the recent calls list
 *   lib/ring_notification.js     the desktop notification of a ring in a background tab
 *
 * Channels: MQTT over WebSocket (my retained presence on users/{id}/presence/{clientId} with an
 * empty retained Last Will, published again every presenceRefreshS of GET /config; the online
 * list from users/+/presence/+, or from users/{contact}/presence/+ for each `contact` URL
 * parameter; call events on users/{id}/events, my live call retained on users/{id}/call); REST
 * on the same origin (/config, /calls/start|answer|end, /calls/{id}, /token; the user token as
 * `Authorization: Bearer` in jwt mode, and as the MQTT password); LiveKit for the media.
 *
 * A reloaded or reconnected page picks its call up from the retained call topic; a reload does
 * not end a call, the service's offline grace period does. window.callsignal exposes the state
 * for debugging and for tests/e2e (e.g. callsignal.tokens[callId] = the LiveKit token fetched).
 */
import * as topics from './lib/topics.js';
import { reduce, initialState, viewOf, duration } from './lib/call_state.js';
import { createUserList, hue } from './lib/user_list.js';
import { createHistory } from './lib/history.js';
import { createSound } from './lib/sound.js';
import { createMedia } from './lib/media.js';
import { checkToken } from './lib/token_check.js';
import { notify, dismiss } from './lib/notices.js';
import { api, setUserToken } from './lib/api.js';
import { createRingNotification } from './lib/ring_notification.js';
import { renderRecents } from './lib/recents_view.js';
import { createPresence, parsePresence } from './lib/presence.js';
import { createLink } from './lib/mqtt_link.js';
import { refreshPeriodS } from './lib/presence_refresh.js';

const $ = (id) => document.getElementById(id);
const app = {
  config: { mqttWsUrl: null, livekitUrl: null, authMode: 'open', presenceRefreshS: 0 },
  me: null, // { id, name, location }
  userToken: null, // jwt mode only
  device: 'web-' + randomHex(4), // this tab
  clientId: null, // the link's: topics.clientIdFor(me.id, device), which jwt mode requires (docs/mqtt.md)
  contacts: null, // the `contact` URL parameters: only their presence is shown; null: everyone's
  link: null, // lib/mqtt_link.js: the MQTT session
  mqttPlan: undefined, // how the link last connected (MQTT version, client id form): kept for the page
  mqttUrl: null,
  connState: 'offline',
  presence: createPresence(), // who is online, per device
  state: initialState(null), // the reducer's state; state.call is this tab's call
  history: null,
  tokens: {}, // callId -> LiveKit token obtained for that call
  timer: null,
  suspended: false,
};
window.callsignal = app;

const sound = createSound();
app.sound = sound;
const media = createMedia({ notify, onStatus: setMediaStatus });
const users = createUserList({ fieldset: $('user-fieldset'), list: $('user-list'), count: $('users-count'),
                               empty: $('users-empty'), onCall: startCall });
const ring = createRingNotification();
app.notifications = ring.shown; // { callId, via: 'worker'|'page', at } for each ring notified while hidden
ring.onAction((action, callId) => {
  if (app.state.call && app.state.call.id === callId) answer(action === 'accept' ? 'ACCEPT' : 'DECLINE');
});

// ------------------------------------------------------------------------------------------
// small helpers

function randomHex(bytes) {
  const a = new Uint8Array(bytes);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

function displayName(user) {
  return (user && (user.name || user.id)) || 'someone';
}

function initials(user) {
  const words = displayName(user).trim().split(/\s+/).filter(Boolean);
  const s = words.length > 1 ? words[0][0] + words[words.length - 1][0] : displayName(user).slice(0, 2);
  return s.toUpperCase();
}

function fillAvatar(node, user) {
  node.textContent = initials(user);
  node.style.setProperty('--hue', hue(user && user.id));
}

// ------------------------------------------------------------------------------------------
// REST

async function loadConfig() {
  const r = await api('GET', '/config');
  if (r.ok && r.data && typeof r.data === 'object') {
    app.config = {
      mqttWsUrl: typeof r.data.mqttWsUrl === 'string' && r.data.mqttWsUrl ? r.data.mqttWsUrl : null,
      livekitUrl: typeof r.data.livekitUrl === 'string' && r.data.livekitUrl ? r.data.livekitUrl : null,
      authMode: r.data.authMode === 'jwt' ? 'jwt' : 'open',
      presenceRefreshS: refreshPeriodS(r.data.presenceRefreshS),
    };
  } else {
    notify(`Could not load the service configuration: ${r.message}`);
  }
  $('token-field').hidden = app.config.authMode !== 'jwt';
  document.body.dataset.authMode = app.config.authMode;
  $('footer-text').textContent = `Signalling over MQTT, media over LiveKit (${
    app.config.livekitUrl || 'no LiveKit server configured'}). Auth: ${app.config.authMode}.`;
}

// ------------------------------------------------------------------------------------------
// the call: one dispatch, the reducer, then render and the effects

function dispatch(action) {
  const prev = app.state;
  const { state, effects } = reduce(prev, action);
  app.state = state;
  if (state !== prev) render(prev, state);
  for (const fx of effects) runEffect(fx);
}

async function runEffect(fx) {
  switch (fx.kind) {
    case 'notify':
      notify(fx.message);
      break;
    case 'record':
      app.history.add(fx.entry);
      showRecents();
      if (fx.shown) setOutcome(fx.text, fx.entry.outcome);
      break;
    case 'postAnswer': {
      const r = await api('POST', '/calls/answer', { callId: fx.callId, answer: fx.answer, deviceId: app.clientId });
      if (r.ok) dispatch({ type: 'answerOk', call: r.data, now: Date.now() });
      else dispatch({ type: 'answerFailed', status: r.status, message: r.message, call: r.data && r.data.call });
      break;
    }
    case 'postEnd': {
      const r = await api('POST', '/calls/end', { callId: fx.callId, userId: app.me.id, deviceId: app.clientId });
      if (r.ok) dispatch({ type: 'endOk', call: r.data });
      else dispatch({ type: 'endFailed', status: r.status, code: r.code, message: r.message });
      break;
    }
    case 'settle': {
      const r = await api('GET', `/calls/${encodeURIComponent(fx.callId)}`);
      if (r.ok && r.data && r.data.id === fx.callId) dispatch({ type: 'settled', call: r.data });
      else if (!r.ok && r.status === 404) dispatch({ type: 'settledGone', id: fx.callId });
      break;
    }
    default:
      break;
  }
}

async function startCall(user) {
  if (app.state.call || !app.me) return;
  dispatch({ type: 'start', peer: user });
  const cur = app.state.call;
  if (!cur || cur.phase !== 'starting') return;
  const r = await api('POST', '/calls/start', { callerId: app.me.id, receiverId: user.id });
  if (r.ok && r.data && typeof r.data.id === 'string') dispatch({ type: 'startOk', call: r.data, now: Date.now() });
  else dispatch({ type: 'startFailed', message: r.ok ? 'The service sent no call' : r.message });
}

const answer = (kind) => dispatch({ type: 'answer', answer: kind });
const hangup = () => dispatch({ type: 'hangup' });

/* Everything the page shows of the call, from the previous and the new state. */
function render(prev, next) {
  const pv = viewOf(prev);
  const v = viewOf(next);
  const cur = next.call;
  const was = prev.call;
  if (cur && !was) setOutcome('', '');
  $('stage').dataset.phase = v.phase;
  $('idle-view').hidden = v.view !== 'idle';
  $('ringing-view').hidden = v.view !== 'ringing';
  $('calling-view').hidden = v.view !== 'calling';
  $('call-view').hidden = v.view !== 'call';
  if (v.view === 'ringing') {
    $('ringing-name').textContent = displayName(cur.peer);
    $('ringing-location').textContent = cur.peer.location || '';
    fillAvatar($('ringing-avatar'), cur.peer);
    $('stage-accept').disabled = v.phase !== 'ringing';
    $('stage-decline').disabled = v.phase !== 'ringing';
  }
  if (v.view === 'calling') {
    $('calling-name').textContent = displayName(cur.peer);
    $('calling-location').textContent = cur.peer.location || '';
    fillAvatar($('calling-avatar'), cur.peer);
    $('cancel-call').disabled = v.phase === 'cancelling';
    $('cancel-call').textContent = v.phase === 'cancelling' ? 'Cancelling\u2026' : 'Cancel';
  }
  const liveNow = v.view === 'call';
  const liveBefore = pv.view === 'call' && was && cur && was.id === cur.id;
  if (liveNow) {
    $('call-view').dataset.callId = cur.id;
    $('call-peer').textContent = displayName(cur.peer);
    $('call-peer-location').textContent = cur.peer.location || '';
    $('hangup').disabled = v.phase === 'ending';
    if (!liveBefore) enterLive(cur);
  } else {
    delete $('call-view').dataset.callId;
    delete $('call-view').dataset.tokenRoom;
    if (pv.view === 'call') leaveLive();
  }
  // the ringing dialog: open while this call rings for me (accepting/declining keep it shown)
  if (v.view === 'ringing' && (!was || was.id !== cur.id)) openIncoming(cur);
  else if (v.view === 'ringing') setIncomingBusy(v.phase !== 'ringing');
  else closeIncoming();
  sound.play(v.ringtone ? 'ringtone' : v.ringback ? 'ringback' : null);
  ring.show(v.ringtone ? cur : null, (id) => Boolean(app.state.call && app.state.call.id === id &&
                                                       app.state.call.phase === 'ringing'));
  users.setCallingDisabled(v.busy);
  if (v.busy !== pv.busy) {
    publishPresence();
    showRecents();
  }
  document.title = v.view === 'ringing' ? `\u260e ${displayName(cur.peer)} is calling \u2014 Callsignal`
    : liveNow ? `In call with ${displayName(cur.peer)} \u2014 Callsignal` : 'Callsignal';
}

function setOutcome(text, key) {
  const p = $('call-outcome');
  p.textContent = text || '';
  p.dataset.outcome = key || '';
}

function isLive(callId) {
  const cur = app.state.call;
  return Boolean(cur && cur.id === callId && cur.phase === 'live');
}

function enterLive(cur) {
  const since = cur.liveSince || Date.now();
  const tick = () => {
    $('call-timer').textContent = duration(Date.now() - since);
  };
  tick();
  clearInterval(app.timer);
  app.timer = setInterval(tick, 1000);
  for (const [id, kind] of [['toggle-mic', 'mic'], ['toggle-cam', 'cam']]) showMuted(id, kind, media.muted(kind));
  joinMedia(cur.id, cur.peer);
}

function leaveLive() {
  clearInterval(app.timer);
  app.timer = null;
  media.leave();
}

async function joinMedia(callId, peer) {
  setMediaStatus('token', 'Getting a media token\u2026');
  const r = await api('GET', `/token?room=${encodeURIComponent(callId)}&id=${encodeURIComponent(app.me.id)}`);
  if (!isLive(callId)) return;
  if (!r.ok || !r.data || typeof r.data.token !== 'string') {
    const msg = r.ok ? 'The service sent no token' : r.message;
    notify(msg);
    setMediaStatus('failed', `No audio or video: ${msg}`);
    return;
  }
  app.tokens[callId] = r.data.token;
  $('call-view').dataset.tokenRoom = callId;
  const url = app.config.livekitUrl || (typeof r.data.url === 'string' && r.data.url) || null;
  await media.join(url, r.data.token, displayName(peer));
}

function setMediaStatus(state, text) {
  const p = $('media-status');
  p.dataset.state = state;
  p.textContent = text;
}

function showMuted(id, kind, muted) {
  const b = $(id);
  b.setAttribute('aria-pressed', String(muted));
  b.textContent = kind === 'mic' ? (muted ? 'Unmute microphone' : 'Mute microphone')
    : (muted ? 'Turn camera on' : 'Turn camera off');
}

async function toggleTrack(kind) {
  const muted = await media.toggle(kind);
  showMuted(kind === 'mic' ? 'toggle-mic' : 'toggle-cam', kind, muted);
}

// ------------------------------------------------------------------------------------------
// the incoming-call dialog, its sound and its desktop notification

function openIncoming(cur) {
  const d = $('incoming');
  d.dataset.callId = cur.id;
  $('incoming-name').textContent = displayName(cur.peer);
  $('incoming-location').textContent = cur.peer.location ? `\u00b7 ${cur.peer.location}` : '';
  fillAvatar($('incoming-avatar'), cur.peer);
  setIncomingBusy(false);
  if (!d.open) d.showModal();
  $('accept').focus();
}

function setIncomingBusy(busy) {
  $('accept').disabled = busy;
  $('decline').disabled = busy;
}

function closeIncoming() {
  const d = $('incoming');
  if (d.open) d.close();
  delete d.dataset.callId;
}

function renderSound(s) {
  document.body.dataset.sound = s.state || 'off';
  document.body.dataset.audio = s.audible ? 'running' : 'suspended';
  $('sound-enable').hidden = !s.blocked;
  $('dialog-sound-enable').hidden = !s.blocked;
}
sound.onchange = renderSound;

/* The service's call history (GET /calls) joins this browser's own record of recent calls. */
async function loadHistory() {
  const me = app.me;
  const r = await api('GET', `/calls?userId=${encodeURIComponent(me.id)}&limit=50`);
  if (app.me !== me || !app.history) return;
  if (r.ok) {
    app.history.merge(r.data);
    showRecents();
  } else if (r.status !== 404) {
    console.warn(`call history: ${r.message}`); // this browser's record is shown alone
  }
}

function showRecents() {
  const idle = app.state.call === null;
  renderRecents(app.history ? app.history.list() : [], (peer) => idle && app.presence.has(peer.id), startCall);
}

// ------------------------------------------------------------------------------------------
// MQTT: presence, the online list, events

function setConnState(state, text) {
  app.connState = state;
  const pill = $('conn-status');
  pill.dataset.state = state;
  pill.textContent = text || state;
}

function presencePayload() {
  const p = { ...app.me };
  if (app.state.call) p.busy = true; // an extra field: the service ignores it, other pages show a badge
  return JSON.stringify(p);
}

function publishPresence() {
  if (app.link && app.me) app.link.setPresence(presencePayload());
}

function connectMqtt() {
  if (typeof window.mqtt === 'undefined') {
    notify('The MQTT library is missing (web/vendor/mqtt.min.js): run scripts/bootstrap.');
    return;
  }
  // Default: the broker's WebSocket listener on this page's host (wss:// for an https page,
  // which may not open a plain ws:// socket).
  app.mqttUrl = app.config.mqttWsUrl || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.hostname}:9001`;
  // MQTT 5 with a short-lived session (the broker keeps the subscriptions and queues the QoS 1
  // call events across a network blip), or 3.1.1 with a clean session where 5 is refused; the
  // link subscribes and publishes my presence on every connect (lib/mqtt_link.js).
  setConnState('connecting', 'connecting\u2026');
  let reported = false;
  const link = createLink(window.mqtt, {
    url: app.mqttUrl, userId: app.me.id, device: app.device, authMode: app.config.authMode,
    password: app.userToken, contacts: app.contacts, refreshS: app.config.presenceRefreshS, plan: app.mqttPlan,
  }, {
    connect: () => {
      if (app.link !== link) return;
      reported = false;
      dismiss('mqtt');
      onMqttConnect();
    },
    reconnect: () => setConnState('connecting', 'reconnecting\u2026'),
    close: () => {
      if (app.link !== link) return;
      setConnState('offline', 'offline');
      if (!reported) {
        reported = true;
        notify(`Lost the connection to the MQTT broker at ${app.mqttUrl}; retrying\u2026`, 'warn', 'mqtt');
      }
    },
    error: (err) => {
      if (app.link !== link || reported) return;
      reported = true;
      notify(`MQTT broker ${app.mqttUrl}: ${err && err.message ? err.message : err}`, 'warn', 'mqtt');
    },
    plan: (plan, clientId) => {
      app.mqttPlan = plan;
      app.clientId = clientId;
    },
    fallback: (reason) => console.info(reason),
    refused: (reason, err) => {
      if (app.link !== link) return;
      if (reason === 'topic') {
        notify(`The broker at ${app.mqttUrl} refuses "." and spaces in topic names (nats-server before 2.10): ` +
               `the user id "${app.me.id}" cannot be used with it.`);
      } else {
        notify(`The broker refused the connection: ${err && err.message}` +
               (app.config.authMode === 'jwt' ? ' (check the user token and the user id)' : ''));
      }
      goOffline(false);
    },
    subscribed: (err, granted) => {
      if (err) {
        notify(`Could not subscribe: ${err.message}`);
        return;
      }
      for (const g of granted || []) {
        if (g.qos === 128) notify(`The broker did not allow subscribing to ${g.topic}.`);
      }
    },
    message: onMqttMessage,
  });
  app.link = link;
  app.clientId = link.clientId;
  publishPresence(); // the payload the link publishes on every connect
}

function onMqttConnect() {
  // The replay of the retained presence on SUBSCRIBE (the link's) rebuilds the whole list.
  app.presence.clear();
  users.clear();
  setConnState('online', 'online');
}

function parseJson(payload, what) {
  try {
    return JSON.parse(new TextDecoder().decode(payload));
  } catch (e) {
    console.warn(`unparseable ${what}`, e);
    return undefined;
  }
}

function onMqttMessage(topic, payload) {
  const t = topics.parseTopic(topic);
  if (!t) return;
  if (t.kind === 'presence') {
    onPresence(t.userId, t.clientId, payload);
  } else if (t.kind === 'events' && t.userId === app.me.id) {
    const ev = parseJson(payload, 'event');
    if (ev !== undefined) dispatch({ type: 'event', event: ev, now: Date.now() });
  } else if (t.kind === 'call' && t.userId === app.me.id) {
    const call = payload.length ? parseJson(payload, 'call state') : null;
    if (call !== undefined) dispatch({ type: 'callState', call, now: Date.now() });
  }
}

/* One device's presence changed: update that user's line only. */
function onPresence(userId, clientId, payload) {
  if (!topics.showsPresenceOf(app.contacts, userId)) return;
  const device = parsePresence(userId, new TextDecoder().decode(payload));
  if (device === undefined) return; // not a valid User of this user id: ignored
  const user = app.presence.apply(userId, clientId, device);
  if (app.me && userId === app.me.id) return;
  if (user) users.upsert(user);
  else users.remove(userId);
  if (app.history && app.history.list().some((r) => r.peer && r.peer.id === userId)) showRecents();
}

// ------------------------------------------------------------------------------------------
// going online and offline

function readForm() {
  return {
    name: $('f-name').value.trim(),
    id: $('f-id').value.trim(),
    location: $('f-location').value.trim(),
    token: $('f-token').value.trim(),
  };
}

async function signIn(event) {
  event.preventDefault();
  if (event.isTrusted) {
    // A user gesture: the one moment to let sound play and to ask for notifications.
    sound.unlock();
    if (typeof Notification !== 'undefined' && Notification.permission === 'default') {
      Notification.requestPermission().catch(() => {});
    }
  }
  const f = readForm();
  if (app.config.authMode === 'jwt') {
    const { problem, sub } = checkToken(f.token, Date.now() / 1000);
    showTokenProblem(problem);
    if (problem) {
      notify(problem);
      $('f-token').focus();
      return;
    }
    if (!f.id) {
      f.id = sub;
      $('f-id').value = sub;
    }
    if (sub !== f.id) {
      notify(`The token belongs to user id "${sub}", not "${f.id}".`);
      return;
    }
  }
  const problem = !f.name ? 'Choose a name.' : topics.idProblem(f.id, app.device);
  if (problem) {
    notify(problem);
    (f.name ? $('f-id') : $('f-name')).focus();
    return;
  }
  app.me = { id: f.id, name: f.name, location: f.location };
  app.clientId = topics.clientIdFor(f.id, app.device);
  app.contacts = readContacts(f.id);
  app.userToken = app.config.authMode === 'jwt' ? f.token : null;
  setUserToken(app.userToken);
  if (app.userToken) {
    // Check the token with the service first: its 401 message is clearer than the broker's.
    $('connect').disabled = true;
    const r = await api('GET', '/users');
    $('connect').disabled = false;
    if (!r.ok) {
      notify(r.message);
      app.me = null;
      app.userToken = null;
      setUserToken(null);
      return;
    }
  }
  try {
    sessionStorage.setItem('callsignal.profile', JSON.stringify({ name: f.name, id: f.id, location: f.location }));
    // This tab is signed in: a reload signs in again and picks the call up where it stands.
    sessionStorage.setItem('callsignal.session', JSON.stringify({ token: app.userToken }));
  } catch (e) { /* storage may be disabled; the form just won't be prefilled */ }
  app.state = initialState(f.id);
  app.history = createHistory(f.id);
  showRecents();
  loadHistory();
  $('me-name').textContent = `${f.name} (${f.id})`;
  $('signin').hidden = true;
  $('phone').hidden = false;
  $('me').hidden = false;
  document.body.dataset.signedIn = 'true';
  connectMqtt();
  media.refreshDevices().catch(() => {});
  // Keyboard users land on the list: Tab reaches each person's Call button.
  $('users-title').focus();
}

/* What is wrong with the pasted token, next to the field (it stays until the token changes). */
function showTokenProblem(problem) {
  $('f-token-error').textContent = problem || '';
  $('f-token-error').hidden = !problem;
  if (problem) $('f-token').setAttribute('aria-invalid', 'true');
  else $('f-token').removeAttribute('aria-invalid');
}

/* Publish the empty retained presence (QoS 1, acknowledged), then DISCONNECT. */
function disconnectMqtt() {
  const link = app.link;
  app.link = null;
  if (!link) return Promise.resolve();
  app.mqttPlan = link.plan;
  return link.end('clean');
}

/* The `contact` URL parameters (?contact=bob&contact=carol): only their presence is shown.
 * None: everyone's (users/+/presence/+). */
function readContacts(me) {
  const params = new URLSearchParams(location.search);
  if (!params.has('contact')) return null;
  const { contacts, invalid } = topics.parseContacts(params.getAll('contact'), me);
  if (invalid.length) notify(`Not a user id, left out of the contacts: ${invalid.map((c) => JSON.stringify(c)).join(', ')}`);
  return contacts;
}

/* Back to the sign-in form. clean: end the current call and clear presence first. */
async function goOffline(clean) {
  try {
    sessionStorage.removeItem('callsignal.session');
  } catch (e) { /* nothing stored */ }
  const cur = app.state.call;
  if (clean && cur && ['calling', 'live'].includes(cur.phase)) {
    const r = await api('POST', '/calls/end', { callId: cur.id, userId: app.me.id, deviceId: app.clientId });
    if (r.ok) dispatch({ type: 'endOk', call: r.data });
  }
  dispatch({ type: 'reset', label: clean ? 'Signed out' : 'Disconnected' });
  await media.preview(false);
  if (clean) await disconnectMqtt();
  else if (app.link) {
    const link = app.link;
    app.link = null;
    app.mqttPlan = link.plan;
    link.end('force');
  }
  app.presence.clear();
  users.clear();
  setConnState('offline', 'offline');
  $('phone').hidden = true;
  $('me').hidden = true;
  $('signin').hidden = false;
  delete document.body.dataset.signedIn;
}

/*
 * The tab is going away (closed, reloaded, navigated): clear the presence and DISCONNECT, best
 * effort. A call is NOT ended here: a reload finds it again on the retained call topic, and a
 * tab that never comes back is ended by the service's offline grace period. The clear and the
 * DISCONNECT go out in order on one socket, so either both reach the broker or it sees the
 * socket close and publishes the (same) Last Will.
 */
function onPageHide() {
  const r = media.room();
  if (r) r.disconnect().catch(() => {});
  const link = app.link;
  if (!link) return;
  app.link = null;
  app.suspended = true;
  app.mqttPlan = link.plan;
  link.end('hide');
}

function onPageShow(event) {
  // Back from the back/forward cache: go online again. What we showed of a call is dropped
  // unrecorded; the retained call topic, read on connect, says where it stands now.
  if (event.persisted && app.suspended && app.me) {
    app.suspended = false;
    dispatch({ type: 'reset' });
    connectMqtt();
  }
}

function prefill() {
  const params = new URLSearchParams(location.search);
  let saved = {};
  try {
    saved = JSON.parse(sessionStorage.getItem('callsignal.profile') || '{}') || {};
  } catch (e) { saved = {}; }
  for (const k of ['name', 'id', 'location']) {
    const v = params.get(k) || saved[k];
    if (v) $('f-' + k).value = v;
  }
}

/* A reload of a signed-in tab signs in again with what it used (the token stays in this tab). */
function resumeSession(event) {
  let session = null;
  try {
    session = JSON.parse(sessionStorage.getItem('callsignal.session') || 'null');
  } catch (e) { session = null; }
  if (!session || !$('f-id').value || !$('f-name').value) return;
  if (session.token) $('f-token').value = session.token;
  signIn(event);
}

async function init() {
  $('signin-form').addEventListener('submit', signIn);
  $('f-token').addEventListener('input', () => showTokenProblem(null));
  $('sign-out').addEventListener('click', () => goOffline(true));
  $('cancel-call').addEventListener('click', hangup);
  $('hangup').addEventListener('click', hangup);
  $('accept').addEventListener('click', () => answer('ACCEPT'));
  $('decline').addEventListener('click', () => answer('DECLINE'));
  $('stage-accept').addEventListener('click', () => answer('ACCEPT'));
  $('stage-decline').addEventListener('click', () => answer('DECLINE'));
  $('toggle-mic').addEventListener('click', () => toggleTrack('mic'));
  $('toggle-cam').addEventListener('click', () => toggleTrack('cam'));
  $('sound-enable').addEventListener('click', () => sound.unlock());
  $('dialog-sound-enable').addEventListener('click', () => sound.unlock());
  $('preview-toggle').addEventListener('click', () => media.preview(!media.previewing()));
  $('cam-select').addEventListener('change', () => media.switchDevice('cam'));
  $('mic-select').addEventListener('change', () => media.switchDevice('mic'));
  $('audio-only').addEventListener('change', () => media.previewing() && media.preview(true));
  // Escape on the ringing dialog declines (the browser would only close it); Enter accepts, as
  // Accept has the focus.
  $('incoming').addEventListener('cancel', (e) => {
    e.preventDefault();
    answer('DECLINE');
  });
  // Any key or click may unlock sound that the autoplay rules held back.
  for (const type of ['pointerdown', 'keydown']) {
    document.addEventListener(type, () => sound.blocked && sound.unlock(), { capture: true });
  }
  if (navigator.mediaDevices) navigator.mediaDevices.addEventListener('devicechange', () => media.refreshDevices());
  window.addEventListener('pagehide', onPageHide);
  window.addEventListener('beforeunload', onPageHide);
  window.addEventListener('pageshow', onPageShow);
  renderSound(sound);
  prefill();
  $('connect').disabled = true;
  await Promise.all([loadConfig(), ring.setUp()]);
  $('connect').disabled = false;
  document.body.dataset.ready = 'true';
  resumeSession({ preventDefault() {}, isTrusted: false });
}

init();
