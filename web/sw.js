/*
 * sw.js - the web client's service worker, only for desktop notifications with actions: app.js
 * shows the ringing notification through it (registration.showNotification, which supports
 * Accept and Decline buttons where the browser does) and this forwards a click to the tab that
 * rings. It handles no fetch: the page works the same without it (plain notifications).
 */
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('notificationclick', (event) => {
  const callId = event.notification.data && event.notification.data.callId;
  const action = event.action || 'open';
  event.notification.close();
  const work = (async () => {
    const tabs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const tab of tabs) tab.postMessage({ type: 'ring-action', action, callId });
    const first = tabs[0];
    if (first && action !== 'decline' && 'focus' in first) await first.focus().catch(() => {});
  })();
  try {
    event.waitUntil(work);
  } catch (e) {
    // an event dispatched by a script (tests/e2e) may not extend its lifetime; the work runs anyway
  }
});
