/*
 * notices.js - the notices the person sees (every REST error's `message`, connection problems).
 * They sit in the page's flow above its content (#notices), never over the call controls, and
 * clear themselves: errors after 10 s, warnings after 7 s. Imported by web/app.js and handed to
 * web/lib/media.js.
 */

const NOTICE_MS = { error: 10000, warn: 7000, info: 5000 };
const MAX_SHOWN = 3;

/* kind: 'error' | 'warn' | 'info'. key: a notice with the same key is replaced, and dismiss(key)
   removes it. */
export function notify(message, kind = 'error', key = null) {
  const box = document.getElementById('notices');
  if (key) dismiss(key);
  const item = document.createElement('div');
  item.className = 'notice notice-' + kind;
  item.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  item.dataset.testid = kind === 'error' ? 'error' : 'notice';
  if (key) item.dataset.key = key;
  const text = document.createElement('span');
  text.className = 'notice-text';
  text.textContent = message;
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'notice-close';
  close.setAttribute('aria-label', 'Dismiss');
  close.textContent = '\u00d7';
  close.addEventListener('click', () => item.remove());
  item.append(text, close);
  box.prepend(item);
  while (box.children.length > MAX_SHOWN) box.lastElementChild.remove();
  setTimeout(() => item.remove(), NOTICE_MS[kind] || NOTICE_MS.error);
}

export function dismiss(key) {
  for (const n of document.getElementById('notices').querySelectorAll('.notice')) {
    if (n.dataset.key === key) n.remove();
  }
}
