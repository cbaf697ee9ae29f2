/*
 * app.js - the browser client of the call-signalling service (plain JavaScript, no build step).
 *
 * It owns the page's state: who I am, who is online, the one call this tab is part of, and the
 * calls seen since the page was opened. Three channels feed it:
 *   - MQTT over WebSocket (global `mqtt`, vendor/mqtt.min.js): my retained presence on
 *     users/{id}/presence/{clientId} with an empty retained Last Will; the online list rebuilt
 *     from users/+/presence/+ (the broker replays the retained ones, so there is no polling);
 *     call events on users/{id}/events; my live call, retained, on users/{id}/call.
 *   - REST on the same origin: /config, /calls/start|answer|end, /token. Every error's
 *     `message` is shown to the person. In jwt mode every request carries the user token as
 *     `Authorization: Bearer`, and the token is the MQTT password (username = user id).
 *   - LiveKit (global `LivekitClient`, vendor/livekit-client.umd.js) for the media of a live call.
 *
 * A reloaded or reconnected page picks its call up from the retained users/{id}/call topic
 * (onCallState); a reload does not end a call, the service's offline grace period does.
 *
 * The call state machine (app.call.phase):
 *   caller:   starting -> calling -> (cancelling) -> live -> (ending) -> idle
 *   receiver: ringing -> accepting | declining -> live -> (ending) -> idle
 * Events and REST replies can arrive in either order, so every transition is idempotent and
 * finishCall() records a call once, by id. window.callsignal exposes the state for debugging
 * and for tests/e2e/two_tabs.mjs (e.g. callsignal.tokens[callId] = the LiveKit token fetched).
 */
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const SESSION_EXPIRY_S = 120;
  const END_SESSION = { properties: { sessionExpiryInterval: 0 } }; // DISCONNECT: forget the session

  const app = {
    config: { mqttWsUrl: null, livekitUrl: null, authMode: 'open' },
    me: null, // { id, name, location }
    userToken: null, // jwt mode only
    device: 'web-' + randomHex(4), // this tab
    clientId: null, // `${me.id}.${device}`, set at sign-in: jwt mode requires that form (docs/mqtt.md)
    mqtt: null,
    mqttUrl: null,
    connState: 'offline',
    presence: new Map(), // userId -> Map(clientId -> User)
    call: null, // { id, call, role, phase, peer, room, liveSince, cancelRequested }
    early: [], // events that arrived while POST /calls/start was still in flight
    finished: new Set(), // ids of calls already recorded
    seenEvents: new Set(), // event ids already handled (QoS 1 may deliver one twice)
    recents: [], // newest first
    tokens: {}, // callId -> LiveKit token obtained for that call
    room: null, // the LivekitClient.Room of the live call
    timer: null,
  };
  window.callsignal = app;

  // ------------------------------------------------------------------------------------------
  // small helpers

  function randomHex(bytes) {
    const a = new Uint8Array(bytes);
    crypto.getRandomValues(a);
    return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'type' ||
               k === 'title') e.setAttribute(k, v === true ? '' : v);
      else e[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function displayName(user) {
    return (user && (user.name || user.id)) || 'someone';
  }

  function initials(user) {
    const words = displayName(user).trim().split(/\s+/).filter(Boolean);
    const s = words.length > 1 ? words[0][0] + words[words.length - 1][0] : displayName(user).slice(0, 2);
    return s.toUpperCase();
  }

  function hue(text) {
    let h = 0;
    for (const ch of String(text)) h = (h * 31 + ch.codePointAt(0)) % 360;
    return h;
  }

  function avatar(user, extraClass) {
    const a = el('span', { class: 'avatar' + (extraClass ? ' ' + extraClass : ''), 'aria-hidden': 'true',
                           text: initials(user) });
    a.style.setProperty('--hue', hue(user && user.id));
    return a;
  }

  function fillAvatar(node, user) {
    node.textContent = initials(user);
    node.style.setProperty('--hue', hue(user && user.id));
  }

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = String(s % 60).padStart(2, '0');
    return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
  }

  function clock(date) {
    return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  /* The service's id rule: 1..128 bytes of UTF-8, no '/', '+', '#', no control characters. */
  function idProblem(id) {
    if (!id) return 'Choose a user id.';
    if (new TextEncoder().encode(id).length > 128) return 'The user id is longer than 128 bytes.';
    if (new TextEncoder().encode(`${id}.${app.device}`).length > 128) return 'The user id is too long for a client id.';
    if (/[/+#\u0000-\u001f\u007f]/.test(id)) return 'The user id may not contain /, +, # or control characters.';
    return null;
  }

  /* The `sub` of a JWT, or null (no verification: the service and the broker verify). */
  function jwtSubject(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const bin = atob(part + '='.repeat((4 - (part.length % 4)) % 4));
      const json = new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
      const sub = JSON.parse(json).sub;
      return typeof sub === 'string' ? sub : null;
    } catch (e) {
      return null;
    }
  }

  // ------------------------------------------------------------------------------------------
  // notices: every error the person should see, REST error messages first of all

  /* key: a notice with the same key is replaced (and can be dismissed by dismiss(key)). */
  function notify(message, kind = 'error', key = null) {
    const box = $('notices');
    if (key) dismiss(key);
    const item = el('div', { class: 'notice notice-' + kind, role: kind === 'error' ? 'alert' : 'status',
                             'data-testid': kind === 'error' ? 'error' : 'notice', 'data-key': key },
      el('span', { class: 'notice-text', text: message }),
      el('button', { type: 'button', class: 'notice-close', 'aria-label': 'Dismiss', text: '\u00d7',
                     onclick: () => item.remove() }));
    box.prepend(item);
    while (box.children.length > 4) box.lastElementChild.remove();
    setTimeout(() => item.remove(), kind === 'error' ? 20000 : 8000);
  }

  function dismiss(key) {
    for (const n of $('notices').querySelectorAll('.notice')) if (n.dataset.key === key) n.remove();
  }

  // ------------------------------------------------------------------------------------------
  // REST

  function authHeaders() {
    return app.userToken ? { Authorization: 'Bearer ' + app.userToken } : {};
  }

  /* One request to the service. Resolves (never rejects) to {ok, status, data, message, code}:
     message is the service's own `message` on errors, or a description of the network failure. */
  async function api(method, path, body) {
    const headers = authHeaders();
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
  // MQTT: presence, the online list, events

  function presenceTopic() {
    return `users/${app.me.id}/presence/${app.clientId}`;
  }

  function eventsTopic() {
    return `users/${app.me.id}/events`;
  }

  /* Retained by the service: my live call (DIALLING or ONGOING), empty when I have none. */
  function callTopic() {
    return `users/${app.me.id}/call`;
  }

  function setConnState(state, text) {
    app.connState = state;
    const pill = $('conn-status');
    pill.dataset.state = state;
    pill.textContent = text || state;
  }

  function connectMqtt() {
    if (typeof window.mqtt === 'undefined') {
      notify('The MQTT library is missing (web/vendor/mqtt.min.js): run scripts/bootstrap.');
      return;
    }
    // Default: the broker's WebSocket listener on this page's host (wss:// for an https page,
    // which may not open a plain ws:// socket).
    app.mqttUrl = app.config.mqttWsUrl ||
      `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.hostname}:9001`;
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
      will: { topic: presenceTopic(), payload: '', qos: 1, retain: true },
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
    renderUsers();
    setConnState('online', 'online');
    // The retained call topic tells a (re)connected page where its call stands.
    client.subscribe([eventsTopic(), callTopic(), 'users/+/presence/+'], { qos: 1 }, (err, granted) => {
      if (err) {
        notify(`Could not subscribe: ${err.message}`);
        return;
      }
      for (const g of granted || []) {
        if (g.qos === 128) notify(`The broker did not allow subscribing to ${g.topic}.`);
      }
    });
    // After the SUBSCRIBE, so that whoever sees me online can reach me.
    client.publish(presenceTopic(), JSON.stringify(app.me), { qos: 1, retain: true });
  }

  function onMqttMessage(topic, payload) {
    const parts = topic.split('/');
    if (parts.length === 4 && parts[0] === 'users' && parts[2] === 'presence') {
      onPresence(parts[1], parts[3], payload);
    } else if (topic === eventsTopic()) {
      let ev = null;
      try {
        ev = JSON.parse(new TextDecoder().decode(payload));
      } catch (e) {
        console.warn('unparseable event on', topic, e);
        return;
      }
      handleEvent(ev);
    } else if (topic === callTopic()) {
      let call = null;
      if (payload.length) {
        try {
          call = JSON.parse(new TextDecoder().decode(payload));
        } catch (e) {
          console.warn('unparseable call state on', topic, e);
          return;
        }
      }
      onCallState(call);
    }
  }

  function onPresence(userId, clientId, payload) {
    let devices = app.presence.get(userId);
    if (!payload || payload.length === 0) {
      if (devices) {
        devices.delete(clientId);
        if (devices.size === 0) app.presence.delete(userId);
      }
      renderUsers();
      return;
    }
    let user;
    try {
      user = JSON.parse(new TextDecoder().decode(payload));
    } catch (e) {
      return;
    }
    if (!user || typeof user !== 'object' || user.id !== userId || typeof user.name !== 'string') return;
    if (!devices) {
      devices = new Map();
      app.presence.set(userId, devices);
    }
    devices.set(clientId, { id: user.id, name: user.name,
                            location: typeof user.location === 'string' ? user.location : '' });
    renderUsers();
  }

  /* The online users other than me: one entry per user, the latest device's payload. */
  function onlineUsers() {
    const list = [];
    for (const [id, devices] of app.presence) {
      if (app.me && id === app.me.id) continue;
      let last = null;
      for (const u of devices.values()) last = u;
      if (last) list.push(last);
    }
    return list.sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  }

  function isOnline(userId) {
    return app.presence.has(userId);
  }

  // ------------------------------------------------------------------------------------------
  // rendering: online list, stage, recent calls

  const userItems = new Map(); // userId -> <li>

  function renderUsers() {
    const users = onlineUsers();
    const list = $('user-list');
    const busy = app.call !== null;
    const wanted = new Set(users.map((u) => u.id));
    for (const [id, li] of userItems) {
      if (!wanted.has(id)) {
        li.remove();
        userItems.delete(id);
      }
    }
    users.forEach((u, i) => {
      let li = userItems.get(u.id);
      if (!li) {
        li = el('li', { class: 'user', 'data-testid': 'user', 'data-user-id': u.id });
        userItems.set(u.id, li);
      }
      li.replaceChildren(
        avatar(u),
        el('span', { class: 'user-text' },
          el('span', { class: 'user-name', 'data-testid': 'user-name', text: u.name }),
          el('span', { class: 'user-meta muted', text: u.location ? `${u.id} \u00b7 ${u.location}` : u.id })),
        el('button', { type: 'button', class: 'btn btn-call', 'data-testid': 'call-button',
                       'aria-label': `Call ${u.name}`, disabled: busy, text: 'Call',
                       onclick: () => startCall(u) }));
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    $('users-count').textContent = String(users.length);
    $('users-empty').hidden = users.length > 0;
    renderRecents();
  }

  function setOutcome(text, key) {
    const p = $('call-outcome');
    p.textContent = text || '';
    p.dataset.outcome = key || '';
  }

  function showStage() {
    const cur = app.call;
    const phase = cur ? cur.phase : 'idle';
    $('stage').dataset.phase = phase;
    const calling = cur && cur.role === 'caller' && ['starting', 'calling', 'cancelling'].includes(phase);
    const live = cur && ['live', 'ending'].includes(phase);
    const receiving = cur && ['ringing', 'accepting', 'declining'].includes(phase);
    $('idle-view').hidden = Boolean(calling || live || receiving);
    $('ringing-view').hidden = !receiving;
    $('calling-view').hidden = !calling;
    $('call-view').hidden = !live;
    if (receiving) {
      $('ringing-name').textContent = displayName(cur.peer);
      $('ringing-location').textContent = cur.peer.location || '';
      fillAvatar($('ringing-avatar'), cur.peer);
      $('stage-accept').disabled = phase !== 'ringing';
      $('stage-decline').disabled = phase !== 'ringing';
    }
    if (calling) {
      $('calling-name').textContent = displayName(cur.peer);
      $('calling-location').textContent = cur.peer.location || '';
      fillAvatar($('calling-avatar'), cur.peer);
      $('cancel-call').disabled = phase === 'cancelling';
      $('cancel-call').textContent = phase === 'cancelling' ? 'Cancelling\u2026' : 'Cancel';
    }
    if (live) {
      $('call-view').dataset.callId = cur.id;
      $('call-peer').textContent = displayName(cur.peer);
      $('call-peer-location').textContent = cur.peer.location || '';
      $('hangup').disabled = phase === 'ending';
    } else {
      delete $('call-view').dataset.callId;
      delete $('call-view').dataset.tokenRoom;
    }
    document.title = receiving ? `\u260e ${displayName(cur.peer)} is calling \u2014 Callsignal`
      : live ? `In call with ${displayName(cur.peer)} \u2014 Callsignal` : 'Callsignal';
    renderUsers();
  }

  function renderRecents() {
    const list = $('recent-list');
    const idle = app.call === null;
    list.replaceChildren(...app.recents.map((r) => {
      const canCall = idle && isOnline(r.peer.id);
      return el('li', { class: 'recent recent-' + r.outcome, 'data-testid': 'recent-call',
                        'data-call-id': r.callId || '', 'data-outcome': r.outcome,
                        'data-direction': r.direction },
        el('span', { class: 'recent-dir', title: r.direction === 'outgoing' ? 'Outgoing call' : 'Incoming call',
                     'aria-label': r.direction === 'outgoing' ? 'Outgoing' : 'Incoming',
                     text: r.direction === 'outgoing' ? '\u2197' : '\u2199' }),
        el('span', { class: 'recent-text' },
          el('span', { class: 'recent-peer', text: displayName(r.peer) }),
          el('span', { class: 'recent-outcome', 'data-testid': 'recent-outcome', text: r.label })),
        el('time', { class: 'recent-time muted', dateTime: r.at.toISOString(), text: clock(r.at) }),
        canCall ? el('button', { type: 'button', class: 'btn btn-ghost btn-small', 'aria-label': `Call ${displayName(r.peer)} back`,
                                 text: 'Call back', onclick: () => startCall(r.peer) }) : null);
    }));
    $('recents-empty').hidden = app.recents.length > 0;
  }

  function addRecent(entry) {
    app.recents.unshift({ at: new Date(), ...entry });
    if (app.recents.length > 50) app.recents.pop();
    renderRecents();
  }

  // ------------------------------------------------------------------------------------------
  // the incoming-call dialog

  function openIncoming(cur) {
    const d = $('incoming');
    d.dataset.callId = cur.id;
    $('incoming-name').textContent = displayName(cur.peer);
    $('incoming-location').textContent = cur.peer.location ? `\u00b7 ${cur.peer.location}` : '';
    fillAvatar($('incoming-avatar'), cur.peer);
    $('accept').disabled = false;
    $('decline').disabled = false;
    if (!d.open) d.showModal();
    $('accept').focus();
  }

  function closeIncoming() {
    const d = $('incoming');
    if (d.open) d.close();
    delete d.dataset.callId;
  }

  // ------------------------------------------------------------------------------------------
  // calls

  async function startCall(user) {
    if (app.call || !app.me) return;
    setOutcome('', '');
    const cur = { id: null, call: null, role: 'caller', phase: 'starting', peer: user };
    app.call = cur;
    app.early = [];
    showStage();
    const r = await api('POST', '/calls/start', { callerId: app.me.id, receiverId: user.id });
    if (app.call !== cur) return;
    const early = app.early;
    app.early = [];
    if (!r.ok) {
      app.call = null;
      notify(r.message);
      addRecent({ callId: null, peer: user, direction: 'outgoing', outcome: 'failed', label: `Failed: ${r.message}` });
      setOutcome(`Could not call ${displayName(user)}: ${r.message}`, 'failed');
      showStage();
      for (const ev of early) replayEarly(ev);
      return;
    }
    cur.id = r.data.id;
    cur.call = r.data;
    cur.peer = r.data.receiver || user;
    cur.phase = 'calling';
    showStage();
    for (const ev of early) replayEarly(ev);
    if (cur.cancelRequested && app.call === cur) endCall();
  }

  /* A call's state older than the one we hold (revisions grow with every transition). */
  function isStale(call) {
    const cur = app.call;
    return Boolean(cur && cur.id === call.id && cur.call && Number.isInteger(cur.call.revision) &&
                   Number.isInteger(call.revision) && call.revision < cur.call.revision);
  }

  function ringExpired(call) {
    return typeof call.ringDeadline === 'string' && Date.parse(call.ringDeadline) <= Date.now();
  }

  function replayEarly(ev) {
    if (ev.type === 'CALL_STATE') onCallState(ev.call);
    else handleEvent(ev);
  }

  function handleEvent(ev) {
    if (!ev || typeof ev !== 'object' || !ev.call || typeof ev.call.id !== 'string') return;
    const call = ev.call;
    const cur = app.call;
    if (cur && cur.phase === 'starting') {
      // Our own POST /calls/start is in flight: replayed once it is answered (this includes an
      // INCOMING_CALL, which rings when our start fails because that call made us busy).
      app.early.push(ev);
      return;
    }
    if (typeof ev.id === 'string') {
      if (app.seenEvents.has(ev.id)) return; // a duplicate delivery
      app.seenEvents.add(ev.id);
      if (app.seenEvents.size > 1000) app.seenEvents.delete(app.seenEvents.values().next().value);
    }
    if (isStale(call)) return;
    if (ev.type === 'INCOMING_CALL') {
      if (!call.receiver || call.receiver.id !== app.me.id || app.finished.has(call.id)) return;
      if (cur) return; // the service refuses a second call to a busy user; nothing to show
      if (ringExpired(call)) return; // a stale ring (delivered late): the call is missed by now
      app.call = { id: call.id, call, role: 'receiver', phase: 'ringing', peer: call.caller || {} };
      setOutcome('', '');
      showStage();
      openIncoming(app.call);
      return;
    }
    if (ev.type === 'END_CALL' && call.endReason === 'BUSY') {
      finishCall(call, null); // someone called while we were busy: listed as a missed call
      return;
    }
    if (!cur || cur.id !== call.id) return;
    cur.call = call;
    if (ev.type === 'ACCEPT_CALL') {
      if (cur.role === 'caller' && cur.phase === 'calling') enterCall(call);
      else if (cur.phase === 'accepting') enterCall(call);
      else if (cur.phase === 'ringing' || cur.phase === 'declining') finishCall(call, 'elsewhere');
    } else if (ev.type === 'DECLINE_CALL' || ev.type === 'END_CALL') {
      finishCall(call, cur.role === 'receiver' && cur.phase === 'ringing' ? 'elsewhere' : null);
    }
  }

  /*
   * The retained users/{me}/call: delivered on every (re)connect and on every change of my live
   * call. It brings a reloaded or reconnected page to where the call stands: ringing, calling or
   * in the call. Empty: I have no live call; one we still show has ended meanwhile, and the
   * service tells how (GET /calls/{id}).
   */
  function onCallState(call) {
    const cur = app.call;
    if (cur && cur.phase === 'starting') {
      if (call) app.early.push({ type: 'CALL_STATE', call });
      return;
    }
    if (!call) {
      if (cur && cur.id) settleEnded(cur);
      return;
    }
    if (typeof call !== 'object' || typeof call.id !== 'string' || !call.caller || !call.receiver) return;
    if (app.finished.has(call.id) || isStale(call)) return;
    if (cur && cur.id !== call.id) settleEnded(cur); // ours ended unseen, this one is newer
    if (app.call && app.call.id === call.id) {
      const mine = app.call;
      mine.call = call;
      if (call.status === 'ONGOING' && ['calling', 'accepting'].includes(mine.phase)) enterCall(call);
      else if (call.status === 'ONGOING' && mine.phase === 'ringing') finishCall(call, 'elsewhere');
      return;
    }
    const role = call.caller.id === app.me.id ? 'caller' : 'receiver';
    const peer = (role === 'caller' ? call.receiver : call.caller) || {};
    if (call.status === 'DIALLING') {
      if (role === 'receiver' && ringExpired(call)) return;
      app.call = { id: call.id, call, role, phase: role === 'caller' ? 'calling' : 'ringing', peer };
      setOutcome('', '');
      showStage();
      if (role === 'receiver') openIncoming(app.call);
    } else if (call.status === 'ONGOING') {
      app.call = { id: call.id, call, role, phase: 'accepting', peer };
      setOutcome('', '');
      enterCall(call);
    }
  }

  /* The call we show is no longer live: learn its outcome from the service. */
  async function settleEnded(cur) {
    const r = await api('GET', `/calls/${encodeURIComponent(cur.id)}`);
    if (app.call !== cur) return;
    if (r.ok && r.data && r.data.id === cur.id && !['DIALLING', 'ONGOING'].includes(r.data.status)) {
      finishCall(r.data);
    } else if (!r.ok && r.status === 404) {
      finishLocally(cur, 'Ended');
    }
  }

  async function answer(kind) {
    const cur = app.call;
    if (!cur || cur.phase !== 'ringing') return;
    cur.phase = kind === 'ACCEPT' ? 'accepting' : 'declining';
    $('accept').disabled = true;
    $('decline').disabled = true;
    showStage();
    const r = await api('POST', '/calls/answer', { callId: cur.id, answer: kind, deviceId: app.clientId });
    if (app.call !== cur) return;
    if (r.ok) {
      if (kind === 'ACCEPT') enterCall(r.data);
      else finishCall(r.data);
      return;
    }
    notify(r.message);
    if (r.data && r.data.call && typeof r.data.call === 'object') {
      // 409: the call stopped ringing meanwhile (answered elsewhere, cancelled, missed).
      finishCall(r.data.call, r.data.call.status === 'ONGOING' ? 'elsewhere' : null);
    } else if (r.status === 0 || r.status === 429 || r.status >= 500) {
      cur.phase = 'ringing'; // transient: it may still be answered
      openIncoming(cur);
    } else {
      finishLocally(cur, `Failed: ${r.message}`);
    }
  }

  /* Hang up a live call, or cancel an outgoing one. */
  async function endCall() {
    const cur = app.call;
    if (!cur) return;
    if (cur.phase === 'starting') {
      cur.cancelRequested = true;
      return;
    }
    if (!['calling', 'live'].includes(cur.phase)) return;
    const before = cur.phase;
    cur.phase = before === 'calling' ? 'cancelling' : 'ending';
    showStage();
    const r = await api('POST', '/calls/end', { callId: cur.id, userId: app.me.id, deviceId: app.clientId });
    if (app.call !== cur) return;
    if (r.ok) {
      finishCall(r.data);
      return;
    }
    notify(r.message);
    if (r.code === 'CALL_NOT_FOUND' || r.code === 'NOT_A_PARTY') {
      finishLocally(cur, `Failed: ${r.message}`);
    } else {
      cur.phase = before;
      showStage();
    }
  }

  function enterCall(call) {
    const cur = app.call;
    if (!cur || cur.id !== call.id || cur.phase === 'live' || cur.phase === 'ending') return;
    cur.call = call;
    cur.phase = 'live';
    cur.peer = (cur.role === 'caller' ? call.receiver : call.caller) || cur.peer;
    cur.liveSince = Date.now();
    closeIncoming();
    showStage();
    $('call-timer').textContent = '0:00';
    clearInterval(app.timer);
    app.timer = setInterval(() => {
      if (app.call === cur) $('call-timer').textContent = duration(Date.now() - cur.liveSince);
    }, 1000);
    joinMedia(cur);
  }

  function outcomeOf(call, role, hint) {
    const peer = displayName(role === 'caller' ? call.receiver : call.caller);
    const answered = call.answeredAt && call.endedAt ? Date.parse(call.endedAt) - Date.parse(call.answeredAt) : null;
    /* endReason (docs/api.md#data) says more than status where the service knows it. */
    if (call.endReason === 'BUSY')
      return { outcome: 'missed', label: 'Missed \u00b7 Busy', text: `Missed call from ${peer}: you were busy.` };
    if (call.endReason === 'MEDIA_ENDED') {
      const left = call.endedBy && call.endedBy.userId !== app.me.id ? `${peer} left` : 'the media ended';
      return { outcome: 'ended', label: `Ended \u00b7 ${left}`, text: `Call ended: ${left}.` };
    }
    switch (call.status) {
      case 'ONGOING':
        return { outcome: 'elsewhere', label: 'Answered on another device', text: 'Answered on another device.' };
      case 'DECLINED':
        if (hint === 'elsewhere') return { outcome: 'declined', label: 'Declined on another device', text: 'Declined on another device.' };
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

  /* The call is over (per the service): record it once, clear the stage, leave the media room. */
  function finishCall(call, hint) {
    const cur = app.call && app.call.id === call.id ? app.call : null;
    if (cur) {
      app.call = null;
      closeIncoming();
      leaveMedia();
    }
    if (!app.finished.has(call.id)) {
      app.finished.add(call.id);
      const role = cur ? cur.role : (call.caller && app.me && call.caller.id === app.me.id ? 'caller' : 'receiver');
      const o = outcomeOf(call, role, hint);
      addRecent({ callId: call.id, peer: (role === 'caller' ? call.receiver : call.caller) || {},
                  direction: role === 'caller' ? 'outgoing' : 'incoming', outcome: o.outcome, label: o.label });
      if (cur) setOutcome(o.text, o.outcome);
    }
    showStage();
  }

  /* The call is over on our side only (the service no longer knows it). */
  function finishLocally(cur, label) {
    if (app.call !== cur) return;
    app.call = null;
    closeIncoming();
    leaveMedia();
    if (cur.id && !app.finished.has(cur.id)) {
      app.finished.add(cur.id);
      addRecent({ callId: cur.id, peer: cur.peer, direction: cur.role === 'caller' ? 'outgoing' : 'incoming',
                  outcome: 'failed', label });
      setOutcome(`Call with ${displayName(cur.peer)}: ${label}`, 'failed');
    }
    showStage();
  }

  // ------------------------------------------------------------------------------------------
  // media (LiveKit)

  function setMedia(state, text) {
    const p = $('media-status');
    p.dataset.state = state;
    p.textContent = text;
    $('media').dataset.state = state;
  }

  function withTimeout(promise, ms, what) {
    let t;
    return Promise.race([promise, new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms);
    })]).finally(() => clearTimeout(t));
  }

  async function joinMedia(cur) {
    setMedia('token', 'Getting a media token\u2026');
    const r = await api('GET', `/token?room=${encodeURIComponent(cur.id)}&id=${encodeURIComponent(app.me.id)}`);
    if (app.call !== cur || cur.phase !== 'live') return;
    if (!r.ok || !r.data || typeof r.data.token !== 'string') {
      const msg = r.ok ? 'The service sent no token' : r.message;
      notify(msg);
      setMedia('failed', `No audio or video: ${msg}`);
      return;
    }
    app.tokens[cur.id] = r.data.token;
    $('call-view').dataset.tokenRoom = cur.id;
    const url = app.config.livekitUrl || (typeof r.data.url === 'string' && r.data.url) || null;
    if (!url) {
      setMedia('unconfigured', 'No LiveKit server configured: the call is connected, but without audio or video.');
      return;
    }
    const LK = window.LivekitClient;
    if (!LK || !LK.Room) {
      setMedia('failed', 'The LiveKit library is missing (web/vendor/livekit-client.umd.js): run scripts/bootstrap.');
      return;
    }
    setMedia('connecting', `Connecting to the LiveKit server at ${url}\u2026`);
    const room = new LK.Room({ adaptiveStream: true, dynacast: true });
    cur.room = room;
    app.room = room;
    const remote = $('remote-media');
    const local = $('local-media');
    room.on(LK.RoomEvent.TrackSubscribed, (track) => {
      const media = track.attach();
      media.dataset.kind = track.kind;
      remote.appendChild(media);
      if (track.kind === 'video') setMedia('connected', '');
    });
    room.on(LK.RoomEvent.TrackUnsubscribed, (track) => track.detach().forEach((m) => m.remove()));
    room.on(LK.RoomEvent.LocalTrackPublished, (pub) => {
      if (pub.track && pub.track.kind === 'video') {
        const media = pub.track.attach();
        media.muted = true;
        local.replaceChildren(media);
      }
    });
    room.on(LK.RoomEvent.ParticipantConnected, (p) =>
      setMedia('connected', `${p.name || p.identity} joined the media room.`));
    room.on(LK.RoomEvent.ParticipantDisconnected, (p) =>
      setMedia('connected', `${p.name || p.identity} left the media room.`));
    room.on(LK.RoomEvent.Disconnected, () => {
      if (app.room === room && app.call === cur) setMedia('failed', 'Disconnected from the LiveKit server.');
    });
    try {
      await withTimeout(room.connect(url, r.data.token, { maxRetries: 1, websocketTimeout: 8000 }), 12000,
                        'Connecting to LiveKit');
    } catch (e) {
      if (app.room === room) {
        app.room = null;
        room.disconnect();
      }
      if (app.call !== cur) return;
      setMedia('unreachable', `No LiveKit server reachable at ${url} (${e && e.message ? e.message : e}). ` +
               'The call is still connected, without audio or video.');
      return;
    }
    if (app.call !== cur || app.room !== room) {
      room.disconnect();
      return;
    }
    setMedia('connected', `Media connected. Waiting for ${displayName(cur.peer)}\u2026`);
    try {
      await room.localParticipant.enableCameraAndMicrophone();
    } catch (e) {
      notify(`Camera or microphone unavailable: ${e.message}`, 'warn');
    }
    if (app.room === room) {
      $('toggle-mic').disabled = false;
      $('toggle-cam').disabled = false;
    }
  }

  async function toggleTrack(kind) {
    const room = app.room;
    if (!room) return;
    const lp = room.localParticipant;
    try {
      if (kind === 'mic') {
        const on = !lp.isMicrophoneEnabled;
        await lp.setMicrophoneEnabled(on);
        $('toggle-mic').setAttribute('aria-pressed', String(!on));
        $('toggle-mic').textContent = on ? 'Mute' : 'Unmute';
      } else {
        const on = !lp.isCameraEnabled;
        await lp.setCameraEnabled(on);
        $('toggle-cam').setAttribute('aria-pressed', String(!on));
        $('toggle-cam').textContent = on ? 'Camera off' : 'Camera on';
      }
    } catch (e) {
      notify(`Could not switch the ${kind === 'mic' ? 'microphone' : 'camera'}: ${e.message}`);
    }
  }

  function leaveMedia() {
    clearInterval(app.timer);
    app.timer = null;
    const room = app.room;
    app.room = null;
    if (room) room.disconnect().catch(() => {});
    $('remote-media').replaceChildren();
    $('local-media').replaceChildren();
    setMedia('idle', '');
    for (const id of ['toggle-mic', 'toggle-cam']) $(id).disabled = true;
    $('toggle-mic').textContent = 'Mute';
    $('toggle-cam').textContent = 'Camera off';
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
    const f = readForm();
    if (app.config.authMode === 'jwt') {
      if (!f.token) {
        notify('This service runs in jwt mode: paste your user token.');
        $('f-token').focus();
        return;
      }
      const sub = jwtSubject(f.token);
      if (!f.id && sub) {
        f.id = sub;
        $('f-id').value = sub;
      }
      if (sub && sub !== f.id) {
        notify(`The token belongs to user id "${sub}", not "${f.id}".`);
        return;
      }
    }
    const problem = !f.name ? 'Choose a name.' : idProblem(f.id);
    if (problem) {
      notify(problem);
      (f.name ? $('f-id') : $('f-name')).focus();
      return;
    }
    app.me = { id: f.id, name: f.name, location: f.location };
    app.clientId = `${f.id}.${app.device}`;
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
    $('me-name').textContent = `${f.name} (${f.id})`;
    $('signin').hidden = true;
    $('phone').hidden = false;
    $('me').hidden = false;
    document.body.dataset.signedIn = 'true';
    connectMqtt();
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
      if (client.connected) client.publish(presenceTopic(), '', { qos: 1, retain: true }, finish);
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
    if (clean && app.call) {
      if (['calling', 'live'].includes(app.call.phase)) await endCall();
      if (app.call) finishLocally(app.call, 'Signed out');
    } else if (app.call) {
      finishLocally(app.call, 'Disconnected');
    }
    leaveMedia();
    if (clean) await disconnectMqtt();
    else if (app.mqtt) {
      const c = app.mqtt;
      app.mqtt = null;
      c.end(true);
    }
    app.presence.clear();
    renderUsers();
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
    if (app.room) app.room.disconnect().catch(() => {});
    const client = app.mqtt;
    if (!client) return;
    app.mqtt = null;
    app.suspended = true;
    try {
      if (client.connected) client.publish(presenceTopic(), '', { qos: 0, retain: true });
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
      if (app.call) {
        app.call = null;
        closeIncoming();
        leaveMedia();
        showStage();
      }
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
    $('sign-out').addEventListener('click', () => goOffline(true));
    $('cancel-call').addEventListener('click', endCall);
    $('hangup').addEventListener('click', endCall);
    $('accept').addEventListener('click', () => answer('ACCEPT'));
    $('decline').addEventListener('click', () => answer('DECLINE'));
    $('stage-accept').addEventListener('click', () => answer('ACCEPT'));
    $('stage-decline').addEventListener('click', () => answer('DECLINE'));
    $('toggle-mic').addEventListener('click', () => toggleTrack('mic'));
    $('toggle-cam').addEventListener('click', () => toggleTrack('cam'));
    // Escape should not dismiss a ringing call; if the browser closes the dialog anyway, the
    // same Accept and Decline stay on the stage.
    $('incoming').addEventListener('cancel', (e) => e.preventDefault());
    window.addEventListener('pagehide', onPageHide);
    window.addEventListener('beforeunload', onPageHide);
    window.addEventListener('pageshow', onPageShow);
    prefill();
    $('connect').disabled = true;
    await loadConfig();
    $('connect').disabled = false;
    document.body.dataset.ready = 'true';
    resumeSession({ preventDefault() {} });
  }

  init();
})();
