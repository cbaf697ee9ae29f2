/*
 * presence.js - PURE set of who is online, per device, as the page sees it on
 * users/+/presence/+: a retained User = that device online, an empty payload = offline. A user
 * is listed while one device is online, with the latest device's name and location, and busy
 * when any device says so (the web client's own extra field `busy`). Payloads whose `id` differs
 * from the topic's user id, or without a string name, are ignored. Imported by web/app.js;
 * tested by web/test/presence.test.js.
 */

/** Parses a presence payload (text) of userId: a device's User, null (offline), or undefined
 *  (invalid: ignore the message). */
export function parsePresence(userId, text) {
  if (text === '') return null;
  let u;
  try {
    u = JSON.parse(text);
  } catch (e) {
    return undefined;
  }
  if (!u || typeof u !== 'object' || u.id !== userId || typeof u.name !== 'string') return undefined;
  return { id: u.id, name: u.name, location: typeof u.location === 'string' ? u.location : '', busy: u.busy === true };
}

export function createPresence() {
  const users = new Map(); // userId -> Map(clientId -> device User)

  return {
    /** Applies one message; returns the user's merged entry ({id, name, location, busy}), or null
     *  when the user is offline now. device: from parsePresence (not undefined). */
    apply(userId, clientId, device) {
      let devices = users.get(userId);
      if (device === null) {
        if (devices) {
          devices.delete(clientId);
          if (devices.size === 0) users.delete(userId);
        }
      } else {
        if (!devices) {
          devices = new Map();
          users.set(userId, devices);
        }
        devices.delete(clientId); // the latest device last
        devices.set(clientId, device);
      }
      return this.get(userId);
    },
    get(userId) {
      const devices = users.get(userId);
      if (!devices) return null;
      let last = null;
      let busy = false;
      for (const d of devices.values()) {
        last = d;
        busy = busy || d.busy;
      }
      return { id: last.id, name: last.name, location: last.location, busy };
    },
    has: (userId) => users.has(userId),
    clear: () => users.clear(),
    size: () => users.size,
  };
}
