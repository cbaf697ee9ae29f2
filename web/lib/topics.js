/*
 * topics.js - PURE grammar of user ids, client ids and MQTT topic names, as the web client uses
 * them. It mirrors common/ids.c and service/topics.c (the service's and the broker plugin's one
 * rule); web/test/topics.test.js feeds the same cases to both (through tests/unit/ids_oracle.c)
 * so the two cannot drift. Imported by web/app.js; no I/O.
 *
 * Ids: 1..ID_MAX_LEN bytes of UTF-8 without '/', '+', '#' or control characters (< 0x20, 0x7f).
 * A user's client id is "{userId}.{device}": device at least one byte without '.', the whole
 * client id a valid id itself. The user part is everything before the last '.'.
 * On a broker that refuses '.' in topic names (nats-server before 2.10) the open-mode page uses
 * "{userId}_{device}" instead (plainClientIdFor; it names no user, docs/web-client.md).
 * Presence filters: every user's (users/+/presence/+), or one per contact (presenceFilters).
 */

export const ID_MAX_LEN = 128;

const encoder = new TextEncoder();

/** Bytes of s in UTF-8 (what the service counts). */
function utf8Length(s) {
  return encoder.encode(s).length;
}

/** True when s is a valid user id (or client id). */
export function isValidId(s) {
  if (typeof s !== 'string' || s.length === 0) return false;
  if (/[/+#\u0000-\u001f\u007f]/.test(s)) return false;
  // A lone surrogate has no UTF-8 form: the service would see U+FFFD or refuse it.
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?:^|[^\ud800-\udbff])[\udc00-\udfff]/.test(s)) return false;
  return utf8Length(s) <= ID_MAX_LEN;
}

/** What is wrong with a user id typed by a person, in words, or null when it is valid.
 *  device: the device part the client id will get (its length counts too). */
export function idProblem(id, device) {
  if (!id) return 'Choose a user id.';
  if (utf8Length(id) > ID_MAX_LEN) return `The user id is longer than ${ID_MAX_LEN} bytes.`;
  if (/[/+#\u0000-\u001f\u007f]/.test(id)) return 'The user id may not contain /, +, # or control characters.';
  if (!isValidId(id)) return 'The user id is not valid text.';
  if (device !== undefined && !clientIdNamesUser(clientIdFor(id, device), id)) {
    return 'The user id is too long for a client id.';
  }
  return null;
}

/** The client id of a device of userId: "{userId}.{device}". */
export function clientIdFor(userId, device) {
  return `${userId}.${device}`;
}

/** The client id of a device of userId without the '.': "{userId}_{device}" (open mode only:
 *  it names no user, which jwt mode refuses). Same length as clientIdFor's. */
export function plainClientIdFor(userId, device) {
  return `${userId}_${device}`;
}

/** True when s has a character nats-server 2.9 refuses in a topic level ('.' or a space). */
export function hasNatsRefusedChar(s) {
  return /[. ]/.test(s);
}

/** True when clientId is "{userId}.{device}" with a valid device (common/ids.c). */
export function clientIdNamesUser(clientId, userId) {
  if (typeof clientId !== 'string' || !isValidId(userId) || !isValidId(clientId)) return false;
  if (clientId.length <= userId.length + 1 || !clientId.startsWith(userId + '.')) return false;
  return !clientId.slice(userId.length + 1).includes('.');
}

/** True when clientId has the form of a user's client id (some "{user}.{device}"). */
export function clientIdNamesAUser(clientId) {
  if (!isValidId(clientId)) return false;
  const dot = clientId.lastIndexOf('.');
  return dot > 0 && dot < clientId.length - 1;
}

export const PRESENCE_ALL = 'users/+/presence/+';

/**
 * The contact list of a page: the valid ids of `list` (an array of strings, e.g. the `contact`
 * URL parameters), each once, in order, without `me`. Returns { contacts, invalid }: invalid
 * lists what was dropped for not being a valid id.
 */
export function parseContacts(list, me) {
  const contacts = [];
  const invalid = [];
  for (const raw of list || []) {
    const id = typeof raw === 'string' ? raw.trim() : raw;
    if (!isValidId(id)) invalid.push(String(raw));
    else if (id !== me && !contacts.includes(id)) contacts.push(id);
  }
  return { contacts, invalid };
}

/** The presence filters to subscribe to: every user's when contacts is null (no contact list),
 *  else one per contact (users/{contact}/presence/+), none for an empty list. */
export function presenceFilters(contacts) {
  if (contacts === null || contacts === undefined) return [PRESENCE_ALL];
  return contacts.map((c) => `users/${c}/presence/+`);
}

/** True when the page shows userId's presence: always without a contact list, else contacts only. */
export function showsPresenceOf(contacts, userId) {
  return contacts === null || contacts === undefined || contacts.includes(userId);
}

export function presenceTopic(userId, clientId) {
  return `users/${userId}/presence/${clientId}`;
}

export function eventsTopic(userId) {
  return `users/${userId}/events`;
}

/** Retained by the service: the user's live call, empty when there is none. */
export function callTopic(userId) {
  return `users/${userId}/call`;
}

/**
 * What a topic the client receives is: { kind: 'presence', userId, clientId } with both ids
 * valid (service/topics.c topic_parse_presence), { kind: 'events' | 'call', userId }, or null.
 */
export function parseTopic(topic) {
  if (typeof topic !== 'string') return null;
  const parts = topic.split('/');
  if (parts[0] !== 'users') return null;
  if (parts.length === 4 && parts[2] === 'presence') {
    if (!isValidId(parts[1]) || !isValidId(parts[3])) return null;
    return { kind: 'presence', userId: parts[1], clientId: parts[3] };
  }
  if (parts.length === 3 && (parts[2] === 'events' || parts[2] === 'call') && isValidId(parts[1])) {
    return { kind: parts[2], userId: parts[1] };
  }
  return null;
}
