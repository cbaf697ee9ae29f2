// token_check.test.js - the sign-in form's explanation of a malformed user token
// (web/lib/token_check.js). Run: node --test web/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkToken } from '../lib/token_check.js';

const NOW = 1_800_000_000;
const b64 = (o) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');
const jwt = (claims, header = { alg: 'HS256', typ: 'JWT' }) => `${b64(header)}.${b64(claims)}.c2lnbmF0dXJl`;

test('a well-formed token gives its subject and no problem', () => {
  assert.deepEqual(checkToken(jwt({ sub: 'alice', exp: NOW + 60 }), NOW), { problem: null, sub: 'alice' });
});

test('each malformation is named', () => {
  const cases = [
    ['', /Paste your user token/],
    ['Bearer ' + jwt({ sub: 'a' }), /without the word "Bearer"/],
    ['abc', /not a JWT: it has 1 part .*has 3/],
    [jwt({ sub: 'a' }).split('.').slice(0, 2).join('.'), /not a JWT: it has 2 parts/],
    ['!!.' + b64({ sub: 'a' }) + '.x', /header is not base64url/],
    [b64('not json') + '.' + b64({ sub: 'a' }) + '.x', /header is not JSON/],
    [b64({ typ: 'JWT' }) + '.' + b64({ sub: 'a' }) + '.x', /names no algorithm/],
    [b64({ alg: 'HS256' }) + '.' + b64('[1]') + '.x', /payload is not a JSON object/],
    [b64({ alg: 'HS256' }) + '.' + b64({ sub: 'a' }) + '.', /no signature/],
    [jwt({ name: 'x' }), /names no user/],
    [jwt({ sub: 'a', exp: NOW - 1 }), /expired at 2027-/],
    [jwt({ sub: 'a', nbf: NOW + 3600 }), /not valid before/],
  ];
  for (const [token, re] of cases) {
    const { problem } = checkToken(token, NOW);
    assert.match(problem || '', re, JSON.stringify(token));
  }
});
