/*
 * ring_notification.js - the desktop notification of a ringing call while the tab is in the
 * background: shown through the page's service worker (web/sw.js), which gives it Accept and
 * Decline buttons where the browser supports actions, else as a plain Notification; closed when
 * the ring ends. Imported by web/app.js: setUp() once at load, show(call|null) on every render,
 * onAction(fn) for the buttons (the worker forwards a click to the tabs).
 *
 * Permission is asked for by app.js, once, from the sign-in click (a user gesture).
 * `shown` lists what was notified ({ callId, via: 'worker'|'page', at }), for tests.
 */

export function createRingNotification() {
  let worker = null; // the service worker registration
  let current = null; // { callId, close() }
  let onAction = () => {};
  const rn = { shown: [] };

  rn.setUp = async () => {
    if (!('serviceWorker' in navigator) || !window.isSecureContext) return;
    try {
      await navigator.serviceWorker.register('sw.js');
      worker = await navigator.serviceWorker.ready;
      navigator.serviceWorker.addEventListener('message', (event) => {
        const m = event.data || {};
        if (m.type === 'ring-action' && (m.action === 'accept' || m.action === 'decline')) onAction(m.action, m.callId);
      });
    } catch (e) {
      worker = null; // plain notifications, without actions
    }
  };

  /** fn(action: 'accept'|'decline', callId) */
  rn.onAction = (fn) => {
    onAction = fn;
  };

  /**
   * ring: { id, peer } of the call ringing now, or null. stillRinging(callId) is asked after the
   * (asynchronous) show, so that a ring that ended meanwhile closes its notification at once.
   */
  rn.show = async (ring, stillRinging) => {
    if (!ring) {
      if (current) current.close();
      current = null;
      return;
    }
    if (current && current.callId === ring.id) return;
    if (!document.hidden || typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
    const name = (ring.peer && (ring.peer.name || ring.peer.id)) || 'someone';
    const title = `${name} is calling`;
    const opts = { body: ring.peer.location ? `Incoming call \u00b7 ${ring.peer.location}` : 'Incoming call',
                   tag: `ring-${ring.id}`, requireInteraction: true, data: { callId: ring.id } };
    const entry = { callId: ring.id, close() {} };
    current = entry;
    try {
      if (worker) {
        await worker.showNotification(title, { ...opts, actions: [{ action: 'accept', title: 'Accept' },
                                                                   { action: 'decline', title: 'Decline' }] });
        entry.close = () => worker.getNotifications({ tag: opts.tag }).then((ns) => ns.forEach((n) => n.close()));
        rn.shown.push({ callId: ring.id, via: 'worker', at: Date.now() });
      } else {
        const n = new Notification(title, opts);
        n.onclick = () => {
          window.focus();
          n.close();
        };
        entry.close = () => n.close();
        rn.shown.push({ callId: ring.id, via: 'page', at: Date.now() });
      }
    } catch (e) {
      console.warn('notification failed', e);
    }
    if (current !== entry || !stillRinging(ring.id)) entry.close();
  };

  return rn;
}
