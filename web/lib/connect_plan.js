/*
 * connect_plan.js - PURE choice of how this page connects to the MQTT broker: the MQTT version
 * and the form of its client id, the CONNECT options that follow from them, and what to try
 * next after a broker's answer. Used by web/lib/mqtt_link.js; tested by
 * web/test/connect_plan.test.js and, against a real nats-server and Mosquitto, by
 * tests/e2e/mqtt_link.mjs. No I/O, no clock.
 *
 * The page tries MQTT 5 first (a session that outlives a network blip, ended by our DISCONNECT).
 * A broker that speaks MQTT 3.1.1 only answers that CONNECT with CONNACK code 1 (3.1.1's
 * "unacceptable protocol version", what nats-server 2.9 sends before closing the socket), an MQTT
 * 5 broker that does not want 5 with 0x84 (132): the page then connects with 3.1.1 and keeps
 * 3.1.1 for every reconnect. nats-server 2.9 also refuses a '.' or a space in a topic name; the
 * page's Will topic users/{id}/presence/{userId}.web-<hex> has one, and NATS closes the socket
 * without any CONNACK. When that close comes right after the broker refused MQTT 5 (so the
 * broker is there and answering), before this page ever connected, in open mode, the page takes
 * the client id without '.' ("{userId}_web-<hex>", topics.plainClientIdFor) for good. A user id
 * with '.' or a space cannot work on such a broker at all (its events topic has it): refused.
 */

export const SESSION_EXPIRY_S = 120;
const VERSION_REFUSED = new Set([1, 132]); // 3.1.1 "unacceptable protocol version"; 5 "Unsupported Protocol Version"
const AUTH_REFUSED = new Set([4, 5, 134, 135]); // bad user name or password, not authorized (3.1.1 and 5)

/** The first plan of a page: MQTT 5, the "{userId}.{device}" client id. */
export function initialPlan() {
  return { protocol: 5, idForm: 'dotted', connected: false, v5Refused: false };
}

/**
 * What to do after one connection attempt with plan. outcome: { kind: 'connack', code } (0 =
 * accepted) or { kind: 'closed' } (the socket closed before any CONNACK: a network failure, or a
 * refusal by closing). ctx: { authMode, userId }. Returns { plan, action, reason }: action
 * 'none' (go on: connected, or let the client reconnect as it does), 'retry' (connect again now
 * with the new plan), or 'refused' (give up; reason says why).
 */
export function nextPlan(plan, outcome, ctx) {
  if (outcome.kind === 'connack') {
    if (outcome.code === 0) return { plan: { ...plan, connected: true, v5Refused: false }, action: 'none', reason: null };
    if (plan.protocol === 5 && VERSION_REFUSED.has(outcome.code)) {
      return { plan: { ...plan, protocol: 4, v5Refused: true }, action: 'retry',
               reason: 'The broker refused MQTT 5: connecting with MQTT 3.1.1' };
    }
    if (AUTH_REFUSED.has(outcome.code)) return { plan, action: 'refused', reason: 'auth' };
    return { plan: { ...plan, v5Refused: false }, action: 'none', reason: null };
  }
  const refusedTopic = plan.protocol === 4 && plan.v5Refused && !plan.connected && plan.idForm === 'dotted';
  if (refusedTopic && ctx.authMode === 'open') {
    if (/[. ]/.test(ctx.userId)) return { plan: { ...plan, v5Refused: false }, action: 'refused', reason: 'topic' };
    return { plan: { ...plan, idForm: 'plain', v5Refused: false }, action: 'retry',
             reason: "The broker closed the connection on a '.' in the client's topics: using a client id without '.'" };
  }
  return { plan: { ...plan, v5Refused: false }, action: 'none', reason: null };
}

/**
 * The MQTT.js options of one connection with plan. c: { clientId, willTopic, username,
 * password } (username and password only in jwt mode). MQTT 5: Clean Start off with a 120 s
 * session expiry (the broker keeps the subscriptions and queues the QoS 1 events across a
 * blip). MQTT 3.1.1: a clean session, since 3.1.1 cannot make a session expire and every page
 * load has a new client id (the retained call topic, read on every connect, covers the gap).
 */
export function connectOptions(plan, c) {
  const opts = {
    clientId: c.clientId,
    protocolVersion: plan.protocol,
    clean: plan.protocol !== 5,
    keepalive: 15,
    reconnectPeriod: 2000,
    connectTimeout: 8000,
    resubscribe: false, // the link subscribes again on every connect
    will: { topic: c.willTopic, payload: '', qos: 1, retain: true },
  };
  if (plan.protocol === 5) opts.properties = { sessionExpiryInterval: SESSION_EXPIRY_S };
  if (c.username !== undefined && c.username !== null) {
    opts.username = c.username;
    opts.password = c.password;
  }
  return opts;
}

/** The options of our own DISCONNECT: MQTT 5 sets the session expiry to 0 (forget it now). */
export function endOptions(plan) {
  return plan.protocol === 5 ? { properties: { sessionExpiryInterval: 0 } } : {};
}
