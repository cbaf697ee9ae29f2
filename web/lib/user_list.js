/*
 * user_list.js - the online list in the DOM, updated per user: a presence change touches the one
 * <li> of that user (and the count), never the whole list, so the retained replay of N users on
 * connect costs O(N log N) and each later change O(log N). Imported by web/app.js, which feeds it
 * the users' merged presence (id, name, location, busy); tests/e2e/render_bench.mjs measures it.
 *
 * Items are sorted by name, then id. Each carries data-testid="user" and data-user-id, a busy
 * badge (data-busy) when the user's presence says they are in a call, and a Call button (its
 * accessible name "Call {name}", "... (in a call)" while busy). A busy user can still be called:
 * the service answers "Receiver busy", as a phone line does, and presence may lag. The whole
 * list's buttons are disabled at once (a disabled <fieldset>) while this tab is in a call itself.
 */

function compare(a, b) {
  return a.name.localeCompare(b.name) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function initials(user) {
  const name = (user.name || user.id).trim();
  const words = name.split(/\s+/).filter(Boolean);
  return (words.length > 1 ? words[0][0] + words[words.length - 1][0] : name.slice(0, 2)).toUpperCase();
}

export function hue(text) {
  let h = 0;
  for (const ch of String(text)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

export function createUserList({ fieldset, list, count, empty, onCall }) {
  const items = new Map(); // id -> { user, li, parts }
  const order = []; // users in display order

  function position(user) {
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compare(order[mid], user) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  function build(user) {
    const li = document.createElement('li');
    li.className = 'user';
    li.dataset.testid = 'user';
    li.dataset.userId = user.id;
    const av = document.createElement('span');
    av.className = 'avatar';
    av.setAttribute('aria-hidden', 'true');
    const text = document.createElement('span');
    text.className = 'user-text';
    const name = document.createElement('span');
    name.className = 'user-name';
    name.dataset.testid = 'user-name';
    const meta = document.createElement('span');
    meta.className = 'user-meta muted';
    const badge = document.createElement('span');
    badge.className = 'badge-busy';
    badge.dataset.testid = 'busy-badge';
    badge.textContent = 'in a call';
    badge.hidden = true;
    text.append(name, meta, badge);
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'btn btn-call';
    button.dataset.testid = 'call-button';
    button.textContent = 'Call';
    button.addEventListener('click', () => onCall(items.get(user.id).user));
    li.append(av, text, button);
    return { li, parts: { av, name, meta, badge, button } };
  }

  function fill(entry, user, old) {
    const { av, name, meta, badge, button } = entry.parts;
    if (!old || old.name !== user.name) {
      name.textContent = user.name;
      av.textContent = initials(user);
    }
    if (!old || old.name !== user.name || old.busy !== user.busy) {
      button.setAttribute('aria-label', `Call ${user.name}${user.busy ? ' (in a call)' : ''}`);
    }
    if (!old) av.style.setProperty('--hue', hue(user.id));
    const m = user.location ? `${user.id} \u00b7 ${user.location}` : user.id;
    if (!old || (old.location !== user.location)) meta.textContent = m;
    if (!old || old.busy !== user.busy) {
      badge.hidden = !user.busy;
      if (user.busy) entry.li.dataset.busy = 'true';
      else delete entry.li.dataset.busy;
    }
  }

  function counted() {
    count.textContent = String(order.length);
    empty.hidden = order.length > 0;
  }

  return {
    /** Adds or updates one user ({id, name, location, busy}). */
    upsert(user) {
      const entry = items.get(user.id);
      if (entry) {
        const old = entry.user;
        if (old.name === user.name && old.location === user.location && old.busy === user.busy) return;
        entry.user = user;
        fill(entry, user, old);
        if (old.name !== user.name) {
          order.splice(position(old), 1);
          const at = position(user);
          order.splice(at, 0, user);
          list.insertBefore(entry.li, at + 1 < order.length ? items.get(order[at + 1].id).li : null);
        } else {
          order[position(user)] = user;
        }
        return;
      }
      const fresh = { user, ...build(user) };
      fill(fresh, user, null);
      items.set(user.id, fresh);
      const at = position(user);
      order.splice(at, 0, user);
      list.insertBefore(fresh.li, at + 1 < order.length ? items.get(order[at + 1].id).li : null);
      counted();
    },
    remove(id) {
      const entry = items.get(id);
      if (!entry) return;
      order.splice(position(entry.user), 1);
      items.delete(id);
      entry.li.remove();
      counted();
    },
    clear() {
      items.clear();
      order.length = 0;
      list.replaceChildren();
      counted();
    },
    has: (id) => items.has(id),
    /** While this tab is in a call, nobody can be called from the list. */
    setCallingDisabled(disabled) {
      if (fieldset.disabled !== disabled) fieldset.disabled = disabled;
    },
  };
}
