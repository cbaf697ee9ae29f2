/*
 * mqtt_link.js - this page's MQTT session with the broker, an edge: the MQTT library is passed in
 * (window.mqtt in the page, the npm package in tests/e2e/mqtt_link.mjs, which runs this file
 * against a real nats-server and a real Mosquitto). Used by web/app.js, which reacts to what it
 * reports (on.connect, on.message, on.close, ...).
 *
 * It connects with the plan of connect_plan.js (MQTT 5, else 3.1.1; the client id
 * "{userId}.{device}", else one without '.'), moving on as nextPlan() says and keeping the plan
 * for every reconnect; the Last Will is the empty retained message on this device's presence
 * topic. On every connect it subscribes to my events, my call topic and the presence filters
 * (every user's, or one per contact: topics.presenceFilters), then publishes my presence,
 * retained, QoS 1, and publishes it again every presenceRefreshS (presence_refresh.js) while
 * connected: the service's presence lease (docs/mqtt.md#presence-protocol).
 */
import * as topics from './topics.js';
import { initialPlan, nextPlan, connectOptions, endOptions } from './connect_plan.js';
import { refreshDelayMs } from './presence_refresh.js';

/**
 * Opens the link at once. cfg: { url, userId, device, authMode ('open'|'jwt'), password (jwt),
 * contacts (array of ids, or null: every user's presence), refreshS (0: no refresh), plan (a plan
 * this page used before, or undefined) }. on: optional handlers connect(client), message(topic,
 * payload), reconnect(), close(), error(err), plan(plan, clientId), fallback(reason),
 * refused(reason, err) (the link has ended itself), subscribed(err, granted), published(payload,
 * refresh).
 */
export function createLink(mqttLib, cfg, on = {}) {
  // A plan of this page's earlier link keeps its version and id form, not the refusal just seen.
  let plan = cfg.plan ? { ...cfg.plan, v5Refused: false } : initialPlan();
  let client = null;
  let clientId = null;
  let payload = null; // my presence as last set; null: none yet
  let published = null; // what this connection published last
  let lastPublishedAt = null;
  let timer = null;
  const attempts = []; // { protocol, idForm, clientId, outcome } per connection attempt
  const stats = { published: 0, refreshes: 0 };
  const emit = (name, ...args) => {
    if (on[name]) on[name](...args);
  };
  const ctx = { authMode: cfg.authMode, userId: cfg.userId };

  function presenceTopic() {
    return topics.presenceTopic(cfg.userId, clientId);
  }

  function stopTimer() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  function schedule() {
    stopTimer();
    const delay = refreshDelayMs(cfg.refreshS, lastPublishedAt, Date.now(), Math.random());
    if (delay === null) return;
    timer = setTimeout(() => {
      timer = null;
      publish(true);
    }, delay);
  }

  /* Publishes my presence when it changed (or always: force, a refresh), if connected. */
  function publish(force) {
    if (!client || !client.connected || payload === null) return;
    if (!force && payload === published) return;
    const refresh = payload === published;
    published = payload;
    lastPublishedAt = Date.now();
    stats.published++;
    if (refresh) stats.refreshes++;
    client.publish(presenceTopic(), payload, { qos: 1, retain: true });
    emit('published', payload, refresh);
    schedule();
  }

  /* The broker's answer to an attempt; true when the link acted on it (retry or gave up). */
  function decide(c, outcome, err) {
    const d = nextPlan(plan, outcome, ctx);
    const changed = d.plan.protocol !== plan.protocol || d.plan.idForm !== plan.idForm;
    plan = d.plan;
    if (d.action === 'retry') {
      client = null;
      c.end(true);
      emit('fallback', d.reason);
      open();
    }
    if (changed) emit('plan', plan, clientId);
    if (d.action === 'refused') {
      client = null;
      stopTimer();
      c.end(true);
      emit('refused', d.reason, err);
    }
    return d.action !== 'none';
  }

  function open() {
    clientId = plan.idForm === 'plain' ? topics.plainClientIdFor(cfg.userId, cfg.device)
      : topics.clientIdFor(cfg.userId, cfg.device);
    const jwt = cfg.authMode === 'jwt';
    const c = mqttLib.connect(cfg.url, connectOptions(plan, {
      clientId, willTopic: presenceTopic(), username: jwt ? cfg.userId : null, password: jwt ? cfg.password : null,
    }));
    client = c;
    let answered = false; // a CONNACK came for the current attempt
    let attempt = null;
    const record = () => {
      attempt = { protocol: plan.protocol, idForm: plan.idForm, clientId, outcome: null };
      attempts.push(attempt);
    };
    record();
    c.on('connect', () => {
      if (client !== c) return;
      answered = true;
      attempt.outcome = 'connack 0';
      decide(c, { kind: 'connack', code: 0 });
      emit('connect', c);
      c.subscribe([topics.eventsTopic(cfg.userId), topics.callTopic(cfg.userId), ...topics.presenceFilters(cfg.contacts)],
                  { qos: 1 }, (e, granted) => emit('subscribed', e, granted));
      // After the SUBSCRIBE, so that whoever sees me online can reach me.
      published = null;
      publish(true);
    });
    c.on('reconnect', () => {
      if (client !== c) return;
      answered = false;
      record();
      emit('reconnect');
    });
    c.on('error', (e) => {
      if (client !== c) return;
      if (e && typeof e.code === 'number') { // a CONNACK that refused us
        answered = true;
        attempt.outcome = `connack ${e.code}`;
        if (decide(c, { kind: 'connack', code: e.code }, e)) return;
      }
      emit('error', e);
    });
    c.on('close', () => {
      if (client !== c) return;
      stopTimer();
      published = null;
      if (!answered) {
        attempt.outcome = attempt.outcome || 'closed';
        if (decide(c, { kind: 'closed' })) return;
      }
      emit('close');
    });
    c.on('message', (topic, message) => {
      if (client === c) emit('message', topic, message);
    });
  }

  open();

  return {
    get client() {
      return client;
    },
    get clientId() {
      return clientId;
    },
    get plan() {
      return plan;
    },
    get connected() {
      return Boolean(client && client.connected);
    },
    attempts,
    stats,
    /** My presence payload (text): published now if it changed and the link is connected, and on
     *  every connect and refresh from now on. */
    setPresence(text) {
      payload = text;
      publish(false);
    },
    /**
     * Ends the link. how: 'clean' (publish the empty retained presence, wait for its PUBACK,
     * DISCONNECT with the session ended; resolves when done, within 3 s), 'hide' (the same
     * without waiting, QoS 0: the page is going away), 'force' (close the socket).
     */
    end(how) {
      const c = client;
      client = null;
      stopTimer();
      if (!c) return Promise.resolve();
      if (how === 'force' || !c.connected) {
        return new Promise((resolve) => c.end(true, {}, resolve));
      }
      if (how === 'hide') {
        try {
          c.publish(presenceTopic(), '', { qos: 0, retain: true });
          c.end(false, endOptions(plan));
        } catch (e) {
          c.end(true);
        }
        return Promise.resolve();
      }
      return new Promise((resolve) => {
        const force = setTimeout(() => c.end(true, {}, resolve), 3000);
        c.publish(presenceTopic(), '', { qos: 1, retain: true }, () => c.end(false, endOptions(plan), () => {
          clearTimeout(force);
          resolve();
        }));
      });
    },
  };
}
