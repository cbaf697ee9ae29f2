/*
 * history.js - the recent calls of one user, kept in this browser's localStorage so that they
 * survive a reload (the service has no call history yet; when GET /calls?userId= lands, this is
 * the module to swap: app.js only calls load() and add()). Imported by web/app.js.
 *
 * Entries: { at: ISO-8601, callId|null, peer: User, direction: 'outgoing'|'incoming',
 * outcome, label }, newest first, at most MAX; one entry per call id.
 */

const MAX = 50;

export function createHistory(userId, storage = globalThis.localStorage) {
  const key = `callsignal.recents.${userId}`;

  function load() {
    try {
      const list = JSON.parse(storage.getItem(key) || '[]');
      return Array.isArray(list) ? list.filter((e) => e && typeof e === 'object' && e.peer && e.at) : [];
    } catch (e) {
      return [];
    }
  }

  let entries = load();

  return {
    /** The entries, newest first (borrowed: do not modify). */
    list: () => entries,
    /** Adds one finished call (a second entry for the same call id is ignored). */
    add(entry, at = new Date()) {
      if (entry.callId && entries.some((e) => e.callId === entry.callId)) return false;
      entries = [{ at: at.toISOString(), ...entry }, ...entries].slice(0, MAX);
      try {
        storage.setItem(key, JSON.stringify(entries));
      } catch (e) { /* storage full or disabled: kept for this page only */ }
      return true;
    },
  };
}
