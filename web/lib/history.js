/*
 * history.js - the recent calls of one user: the service's call history (GET /calls?userId=,
 * fetched by web/app.js and handed to merge()) together with what this browser recorded itself,
 * kept in localStorage so that it survives a reload. The local record adds what the service has
 * no call for (a start it refused) and this device's view of a call ("Answered on another
 * device"); the service's adds the calls of the user's other devices and browsers. Imported by
 * web/app.js; no I/O but the storage it is given.
 *
 * Entries: { at: ISO-8601, callId|null, peer: User, direction: 'outgoing'|'incoming',
 * outcome, label }, newest first, at most MAX; one entry per call id (the local one wins).
 */
import { outcomeOf } from './call_state.js';

const MAX = 50;

function byTimeDesc(a, b) {
  return Date.parse(b.at) - Date.parse(a.at);
}

/** A finished Call of the service as an entry, seen by meId. */
export function entryOfCall(call, meId) {
  const role = call.caller && call.caller.id === meId ? 'caller' : 'receiver';
  const o = outcomeOf(call, role, null, meId);
  return { at: call.endedAt || call.createdAt, callId: call.id,
           peer: (role === 'caller' ? call.receiver : call.caller) || {},
           direction: role === 'caller' ? 'outgoing' : 'incoming', outcome: o.outcome, label: o.label };
}

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

  let local = load(); // what this browser recorded
  let remote = []; // the service's, from the last merge()
  let entries = local;

  function combine() {
    const ids = new Set(local.map((e) => e.callId).filter(Boolean));
    entries = local.concat(remote.filter((e) => !ids.has(e.callId))).sort(byTimeDesc).slice(0, MAX);
  }

  return {
    /** The entries, newest first (borrowed: do not modify). */
    list: () => entries,
    /** Adds one finished call recorded here (a second entry for the same call id is ignored). */
    add(entry, at = new Date()) {
      if (entry.callId && local.some((e) => e.callId === entry.callId)) return false;
      local = [{ at: at.toISOString(), ...entry }, ...local].slice(0, MAX);
      try {
        storage.setItem(key, JSON.stringify(local));
      } catch (e) { /* storage full or disabled: kept for this page only */ }
      combine();
      return true;
    },
    /** The service's history (an array of finished Calls, as GET /calls answers). */
    merge(calls) {
      remote = (Array.isArray(calls) ? calls : [])
        .filter((c) => c && typeof c === 'object' && typeof c.id === 'string' && c.caller && c.receiver)
        .map((c) => entryOfCall(c, userId));
      combine();
    },
  };
}
