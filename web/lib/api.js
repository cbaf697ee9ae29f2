/*
 * api.js - the service's REST API on the page's own origin. Imported by web/app.js, which sets
 * the user token (jwt mode) at sign-in; every request then carries it as `Authorization: Bearer`.
 */

let userToken = null;

/** The user token sent with every request from now on (null: none, open mode). */
export function setUserToken(token) {
  userToken = token || null;
}

/**
 * One request. Resolves (never rejects) to {ok, status, data, message, code}: message is the
 * service's own `message` on errors (with Retry-After on a 429), or a description of the network
 * failure; code its machine `error`.
 */
export async function api(method, path, body) {
  const headers = userToken ? { Authorization: 'Bearer ' + userToken } : {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, cache: 'no-store',
                              body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    return { ok: false, status: 0, data: null,
             message: `The service is not reachable (${method} ${path.split('?')[0]}: ${e.message})` };
  }
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (res.ok) return { ok: true, status: res.status, data };
  let message = data && typeof data.message === 'string' && data.message
    ? data.message : `${method} ${path.split('?')[0]} failed (HTTP ${res.status})`;
  const retry = res.headers.get('Retry-After');
  if (res.status === 429 && retry) message += ` (try again in ${retry} s)`;
  return { ok: false, status: res.status, data, message, code: data && data.error };
}
