/*
 * token_check.js - PURE first look at a user token pasted into the jwt-mode sign-in form, so that
 * a malformed one is explained in words before anything is sent. It does not verify the
 * signature (the service and the broker do). Imported by web/app.js; tested by
 * web/test/token_check.test.js.
 */

function b64urlJson(part) {
  if (!/^[A-Za-z0-9_-]+$/.test(part)) return { error: 'is not base64url text' };
  let text;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    text = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch (e) {
    return { error: 'is not base64url text' };
  }
  try {
    const v = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? { value: v } : { error: 'is not a JSON object' };
  } catch (e) {
    return { error: 'is not JSON' };
  }
}

/**
 * { problem: text|null, sub: string|null } for a token; nowS: the current time in seconds.
 * problem says what is wrong with the token, in words.
 */
export function checkToken(token, nowS) {
  const t = (token || '').trim();
  if (!t) return { problem: 'Paste your user token.', sub: null };
  if (/^bearer\s/i.test(t)) return { problem: 'Paste the token without the word "Bearer".', sub: null };
  const parts = t.split('.');
  if (parts.length !== 3) {
    return { problem: `The user token is not a JWT: it has ${parts.length} part${parts.length === 1 ? '' : 's'} ` +
      'separated by dots, a JWT has 3 (header.payload.signature). Was it cut off when copied?', sub: null };
  }
  const header = b64urlJson(parts[0]);
  if (header.error) return { problem: `The user token's header ${header.error}: was it copied whole?`, sub: null };
  if (typeof header.value.alg !== 'string') return { problem: 'The user token\'s header names no algorithm ("alg").', sub: null };
  const payload = b64urlJson(parts[1]);
  if (payload.error) return { problem: `The user token's payload ${payload.error}: was it copied whole?`, sub: null };
  if (!parts[2]) return { problem: 'The user token has no signature.', sub: null };
  const claims = payload.value;
  if (typeof claims.sub !== 'string' || !claims.sub) return { problem: 'The user token names no user (no "sub" claim).', sub: null };
  if (typeof claims.exp === 'number' && claims.exp <= nowS) {
    return { problem: `The user token expired at ${new Date(claims.exp * 1000).toISOString()}: ask for a new one.`, sub: claims.sub };
  }
  if (typeof claims.nbf === 'number' && claims.nbf > nowS + 60) {
    return { problem: `The user token is not valid before ${new Date(claims.nbf * 1000).toISOString()}.`, sub: claims.sub };
  }
  return { problem: null, sub: claims.sub };
}
