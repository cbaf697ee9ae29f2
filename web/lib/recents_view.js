/*
 * recents_view.js - the "Recent calls" list in the DOM (#recent-list), from the entries of
 * web/lib/history.js: who, which direction, the end reason in words, when, and "Call back" when
 * the person is online and this tab is free. Imported by web/app.js, which re-renders it when a
 * call is recorded, when this tab's busy state changes, and when someone in it comes or goes.
 */

function displayName(user) {
  return (user && (user.name || user.id)) || 'someone';
}

function clock(date) {
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** entries: newest first; canCall(peer) says whether to offer "Call back"; onCall(peer). */
export function renderRecents(entries, canCall, onCall) {
  const list = document.getElementById('recent-list');
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
    if (canCall(r.peer)) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'btn btn-ghost btn-small';
      b.setAttribute('aria-label', `Call ${displayName(r.peer)} back`);
      b.textContent = 'Call back';
      b.addEventListener('click', () => onCall(r.peer));
      li.append(b);
    }
    return li;
  }));
  document.getElementById('recents-empty').hidden = entries.length > 0;
}
