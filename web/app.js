/*
 * app.js - the browser client's entry point (a native ES module, no build step), loaded by
 * index.html after the two vendor libraries (globals `mqtt` and `LivekitClient`).
 *
 * It wires the parts together and owns nothing but that wiring:
 *   lib/topics.js      the id and topic grammar (checked against the service's own)
 *   lib/call_state.js  the pure call-state reducer: every change of this tab's call goes through
 *                      dispatch(action) -> reduce() -> render(prev, next) + the reducer's effects
 *   lib/user_list.js   the online list, updated per user
 *   lib/history.js     recent calls, kept in localStorage across reloads
 *   lib/sound.js       ringtone and ringback (Web Audio)
 *   lib/media.js       camera and microphone pickers, preview, the LiveKit room
 *   lib/token_check.js what is wrong with a pasted user token (jwt mode)
 *
 * Channels: MQTT over WebSocket (my retained presence on users/{id}/presence/{clientId} with an
 * empty retained Last Will, the online list from users/+/presence/+, call events on
 * users/{id}/events, my live call retained on users/{id}/call); REST on the same origin
 * (/config, /calls/start|answer|end, /calls/{id}, /token; the user token as `Authorization:
 * Bearer` in jwt mode, and as the MQTT password); LiveKit for the media.
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

const $ = (id) => document.getElementById(id);
const SESSION_EXPIRY_S = 120;
const END_SESSION = { properties: { sessionExpiryInterval: 0 } }; // DISCONNECT: forget the session
const NOTICE_MS = { error: 10000, warn: 7000, info: 5000 };

const app = {
  config: { mqttWsUrl: null, livekitUrl: null, authMode: 'open' },
  me: null, // { id, name, location }
  userToken: null, // jwt mode only
  device: 'web-' + randomHex(4), // this tab
  clientId: null, // topics.clientIdFor(me.id, device): jwt mode requires that form (docs/mqtt.md)
  mqtt: null,
  mqttUrl: null,
  connState: 'offline',
  presence: new Map(), // userId -> Map(clientId -> User with busy)
  state: initialState(null), // the reducer's state; state.call is this tab's call
  history: null,
  tokens: {}, // callId -> LiveKit token obtained for that call
  notifications: [], // { callId, via: 'worker'|'page', at } for each ring notified while hidden
  published: null, // the presence payload last published
  timer: null,
  suspended: false,
};
window.callsignal = app;

const sound = createSound();
app.sound = sound;
const media = createMedia({ notify, onStatus: setMediaStatus });
const users = createUserList({ fieldset: $('user-fieldset'), list: $('user-list'), count: $('users-count'),
                               empty: $('users-empty'), onCall: startCall });
let worker = null; // the service worker registration, for notifications with actions

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

function clock(date) {
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

// ------------------------------------------------------------------------------------------
// notices: every error the person should see; they clear themselves and sit above the page's
// content (in the flow, not over it), so they never cover the call controls.

/* key: a notice with the same key is replaced (and can be dismissed by dismiss(key)). */
function notify(message, kind = 'error', key = null) {
  const box = $('notices');
  if (key) dismiss(key);
  const item = document.createElement('div');
  item.className = 'notice notice-' + kind;
  item.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  item.dataset.testid = kind === 'error' ? 'error' : 'notice';
  if (key) item.dataset.key = key;
  const text = document.createElement('span');
  text.className = 'notice-text';
  text.textContent = message;
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'notice-close';
  close.setAttribute('aria-label', 'Dismiss');
  close.textContent = '\u00d7';
  close.addEventListener('click', () => item.remove());
  item.append(text, close);
  box.prepend(item);
  while (box.children.length > 3) box.lastElementChild.remove();
  setTimeout(() => item.remove(), NOTICE_MS[kind] || NOTICE_MS.error);
}

function dismiss(key) {
  for (const n of $('notices').querySelectorAll('.notice')) if (n.dataset.key === key) n.remove();
}

// ------------------------------------------------------------------------------------------
// REST

/* One request to the service. Resolves (never rejects) to {ok, status, data, message, code}:
   message is the service's own `message` on errors, or a description of the network failure. */
async function api(method, path, body) {
  const headers = app.userToken ? { Authorization: 'Bearer ' + app.userToken } : {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, cache: 'no-store',
                              body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    return { ok: false, status: 0, data: null,
             message: `The service is not reachable (${method} ${path.split('?')[0]}: ${e.message})` };
  }
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (res.ok) return { ok: true, status: res.status, data };
  let message = data && typeof data.message === 'string' && data.message
    ? data.message : `${method} ${path.split('?')[0]} failed (HTTP ${res.status})`;
  const retry = res.headers.get('Retry-After');
  if (res.status === 429 && retry) message += ` (try again in ${retry} s)`;
  return { ok: false, status: res.status, data, message, code: data && data.error };
}

async function loadConfig() {
  const r = await api('GET', '/config');
  if (r.ok && r.data && typeof r.data === 'object') {
    app.config = {
      mqttWsUrl: typeof r.data.mqttWsUrl === 'string' && r.data.mqttWsUrl ? r.data.mqttWsUrl : null,
      livekitUrl: typeof r.data.livekitUrl === 'string' && r.data.livekitUrl ? r.data.livekitUrl : null,
      authMode: r.data.authMode === 'jwt' ? 'jwt' : 'open',
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
      renderRecents();
      if (fx.shown) setOutcome(fx.text, fx.entry.outcome);
      break;
    case 'postAnswer': {
      const r = await api('POST', '/calls/answer', { callId: fx.callId, answer: fx.answer });
      if (r.ok) dispatch({ type: 'answerOk', call: r.data, now: Date.now() });
      else dispatch({ type: 'answerFailed', status: r.status, message: r.message, call: r.data && r.data.call });
      break;
    }
    case 'postEnd': {
      const r = await api('POST', '/calls/end', { callId: fx.callId, userId: app.me.id });
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
  if (r.ok && r.data && typeof r.data.id === 'string') dispatch({ type: 'startOk', call: r.data });
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
  ringNotification(v.ringtone ? cur : null);
  users.setCallingDisabled(v.busy);
  if (v.busy !== pv.busy) {
    publishPresence();
    renderRecents();
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

let shownNotification = null; // { callId, close() }

/* A desktop notification while the call rings and the tab is in the background; closed when the
   ring ends. With a service worker it has Accept and Decline actions. */
async function ringNotification(cur) {
  if (!cur) {
    if (shownNotification) shownNotification.close();
    shownNotification = null;
    return;
  }
  if (shownNotification && shownNotification.callId === cur.id) return;
  if (!document.hidden || typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
  const title = `${displayName(cur.peer)} is calling`;
  const opts = { body: cur.peer.location ? `Incoming call \u00b7 ${cur.peer.location}` : 'Incoming call',
                 tag: `ring-${cur.id}`, requireInteraction: true, data: { callId: cur.id } };
  const entry = { callId: cur.id, close() {} };
  shownNotification = entry;
  try {
    if (worker) {
      await worker.showNotification(title, { ...opts, actions: [{ action: 'accept', title: 'Accept' },
                                                                 { action: 'decline', title: 'Decline' }] });
      entry.close = () => worker.getNotifications({ tag: opts.tag }).then((ns) => ns.forEach((n) => n.close()));
      app.notifications.push({ callId: cur.id, via: 'worker', at: Date.now() });
    } else {
      const n = new Notification(title, opts);
      n.onclick = () => {
        window.focus();
        n.close();
      };
      entry.close = () => n.close();
      app.notifications.push({ callId: cur.id, via: 'page', at: Date.now() });
    }
  } catch (e) {
    console.warn('notification failed', e);
  }
  if (shownNotification !== entry || !app.state.call || app.state.call.id !== cur.id) entry.close();
}

/* Accept or Decline pressed on the notification (the worker forwards it to this tab). */
function onWorkerMessage(event) {
  const m = event.data || {};
  if (m.type !== 'ring-action' || !app.state.call || app.state.call.id !== m.callId) return;
  if (m.action === 'accept') answer('ACCEPT');
  else if (m.action === 'decline') answer('DECLINE');
}

async function setUpNotifications() {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return;
  try {
    await navigator.serviceWorker.register('sw.js');
    worker = await navigator.serviceWorker.ready;
    navigator.serviceWorker.addEventListener('message', onWorkerMessage);
  } catch (e) {
    worker = null; // plain notifications, without actions
  }
}

// ------------------------------------------------------------------------------------------
// recent calls

function renderRecents() {
  const list = $('recent-list');
  const idle = app.state.call === null;
  const entries = app.history ? app.history.list() : [];
  list.replaceChildren(...entries.map((r) => {
    const li = document.createElement('li');
    li.className = 'recent recent-' + r.outcome;
    li.dataset.testid = 'recent-call';
    li.dataset.callId = r.callId || '';
    li.dataset.outcome = r.outcome;
    li.dataset.direction = r.direction;
    const dir = document.createElement('span');
    dir.className = 'recent-dir';
    dir.title = r.direction === 'outgoing' ? 'Outgoing call' : 'Incoming call';
    dir.setAttribute('aria-label', r.direction === 'outgoing' ? 'Outgoing' : 'Incoming');
    dir.textContent = r.direction === 'outgoing' ? '\u2197' : '\u2199';
    const text = document.createElement('span');
    text.className = 'recent-text';
    const peer = document.createElement('span');
    peer.className = 'recent-peer';
    peer.textContent = displayName(r.peer);
    const outcome = document.createElement('span');
    outcome.className = 'recent-outcome';
    outcome.dataset.testid = 'recent-outcome';
    outcome.textContent = r.label;
    text.append(peer, outcome);
    const at = new Date(r.at);
    const time = document.createElement('time');
    time.className = 'recent-time muted';
    time.dateTime = at.toISOString();
    time.textContent = clock(at);
    li.append(dir, text, time);
    if (idle && app.presence.has(r.peer.id)) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'btn btn-ghost btn-small';
      b.setAttribute('aria-label', `Call ${displayName(r.peer)} back`);
      b.textContent = 'Call back';
      b.addEventListener('click', () => startCall(r.peer));
      li.append(b);
    }
    return li;
  }));
  $('recents-empty').hidden = entries.length > 0;
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
  const client = app.mqtt;
  if (!client || !client.connected || !app.me) return;
  const payload = presencePayload();
  if (payload === app.published) return;
  app.published = payload;
  client.publish(topics.presenceTopic(app.me.id, app.clientId), payload, { qos: 1, retain: true });
}

function connectMqtt() {
  if (typeof window.mqtt === 'undefined') {
    notify('The MQTT library is missing (web/vendor/mqtt.min.js): run scripts/bootstrap.');
    return;
  }
  // Default: the broker's WebSocket listener on this page's host (wss:// for an https page,
  // which may not open a plain ws:// socket).
  app.mqttUrl = app.config.mqttWsUrl || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.hostname}:9001`;
  // MQTT 5 with a short-lived session: across a network blip the broker keeps the
  // subscriptions and queues the QoS 1 call events, so no ACCEPT_CALL or END_CALL is lost;
  // a DISCONNECT of ours sets the expiry to 0, and a vanished tab's session ends after it.
  const opts = {
    clientId: app.clientId,
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: SESSION_EXPIRY_S },
    keepalive: 15,
    reconnectPeriod: 2000,
    connectTimeout: 8000,
    resubscribe: false, // onMqttConnect subscribes again on every connect
    will: { topic: topics.presenceTopic(app.me.id, app.clientId), payload: '', qos: 1, retain: true },
  };
  if (app.config.authMode === 'jwt') {
    opts.username = app.me.id;
    opts.password = app.userToken;
  }
  setConnState('connecting', 'connecting\u2026');
  const client = window.mqtt.connect(app.mqttUrl, opts);
  app.mqtt = client;
  let reported = false;
  client.on('connect', () => {
    reported = false;
    dismiss('mqtt');
    onMqttConnect(client);
  });
  client.on('reconnect', () => setConnState('connecting', 'reconnecting\u2026'));
  client.on('close', () => {
    if (app.mqtt !== client) return;
    setConnState('offline', 'offline');
    if (!reported) {
      reported = true;
      notify(`Lost the connection to the MQTT broker at ${app.mqttUrl}; retrying\u2026`, 'warn', 'mqtt');
    }
  });
  client.on('error', (err) => {
    if (app.mqtt !== client) return;
    const refused = err && (err.code === 4 || err.code === 5 || err.code === 134 || err.code === 135);
    if (refused) {
      notify(`The broker refused the connection: ${err.message}` +
             (app.config.authMode === 'jwt' ? ' (check the user token and the user id)' : ''));
      goOffline(false);
      return;
    }
    if (!reported) {
      reported = true;
      notify(`MQTT broker ${app.mqttUrl}: ${err && err.message ? err.message : err}`, 'warn', 'mqtt');
    }
  });
  client.on('message', onMqttMessage);
}

function onMqttConnect(client) {
  // The replay of the retained presence on SUBSCRIBE rebuilds the whole list.
  app.presence.clear();
  users.clear();
  setConnState('online', 'online');
  // The retained call topic tells a (re)connected page where its call stands.
  client.subscribe([topics.eventsTopic(app.me.id), topics.callTopic(app.me.id), topics.PRESENCE_ALL], { qos: 1 },
                   (err, granted) => {
                     if (err) {
                       notify(`Could not subscribe: ${err.message}`);
                       return;
                     }
                     for (const g of granted || []) {
                       if (g.qos === 128) notify(`The broker did not allow subscribing to ${g.topic}.`);
                     }
                   });
  // After the SUBSCRIBE, so that whoever sees me online can reach me.
  app.published = null;
  publishPresence();
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

function onPresence(userId, clientId, payload) {
  let devices = app.presence.get(userId);
  if (!payload || payload.length === 0) {
    if (devices) {
      devices.delete(clientId);
      if (devices.size === 0) app.presence.delete(userId);
    }
  } else {
    const user = parseJson(payload, 'presence');
    if (!user || typeof user !== 'object' || user.id !== userId || typeof user.name !== 'string') return;
    if (!devices) {
      devices = new Map();
      app.presence.set(userId, devices);
    }
    devices.set(clientId, { id: user.id, name: user.name, location: typeof user.location === 'string' ? user.location : '',
                            busy: user.busy === true });
  }
  onUserChanged(userId);
}

/* One user's devices changed: update that user's line only. */
function onUserChanged(userId) {
  if (app.me && userId === app.me.id) return;
  const devices = app.presence.get(userId);
  if (!devices) {
    users.remove(userId);
  } else {
    let last = null;
    let busy = false;
    for (const u of devices.values()) {
      last = u;
      busy = busy || u.busy;
    }
    users.upsert({ id: last.id, name: last.name, location: last.location, busy });
  }
  if (app.history && app.history.list().some((r) => r.peer && r.peer.id === userId)) renderRecents();
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
  app.userToken = app.config.authMode === 'jwt' ? f.token : null;
  if (app.userToken) {
    // Check the token with the service first: its 401 message is clearer than the broker's.
    $('connect').disabled = true;
    const r = await api('GET', '/users');
    $('connect').disabled = false;
    if (!r.ok) {
      notify(r.message);
      app.me = null;
      app.userToken = null;
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
  renderRecents();
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
  const client = app.mqtt;
  app.mqtt = null;
  if (!client) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => client.end(true, {}, resolve), 3000);
    const finish = () => client.end(false, END_SESSION, () => {
      clearTimeout(force);
      resolve();
    });
    if (client.connected) client.publish(topics.presenceTopic(app.me.id, app.clientId), '', { qos: 1, retain: true }, finish);
    else {
      clearTimeout(force);
      client.end(true, {}, resolve);
    }
  });
}

/* Back to the sign-in form. clean: end the current call and clear presence first. */
async function goOffline(clean) {
  try {
    sessionStorage.removeItem('callsignal.session');
  } catch (e) { /* nothing stored */ }
  const cur = app.state.call;
  if (clean && cur && ['calling', 'live'].includes(cur.phase)) {
    const r = await api('POST', '/calls/end', { callId: cur.id, userId: app.me.id });
    if (r.ok) dispatch({ type: 'endOk', call: r.data });
  }
  dispatch({ type: 'reset', label: clean ? 'Signed out' : 'Disconnected' });
  await media.preview(false);
  if (clean) await disconnectMqtt();
  else if (app.mqtt) {
    const c = app.mqtt;
    app.mqtt = null;
    c.end(true);
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
  const client = app.mqtt;
  if (!client) return;
  app.mqtt = null;
  app.suspended = true;
  try {
    if (client.connected) client.publish(topics.presenceTopic(app.me.id, app.clientId), '', { qos: 0, retain: true });
    client.end(false, END_SESSION);
  } catch (e) {
    client.end(true);
  }
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
  await Promise.all([loadConfig(), setUpNotifications()]);
  $('connect').disabled = false;
  document.body.dataset.ready = 'true';
  resumeSession({ preventDefault() {}, isTrusted: false });
}

init();
