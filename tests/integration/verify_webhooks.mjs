// Verifies received webhooks with LiveKit's own server SDK (livekit-server-sdk's WebhookReceiver,
// configured with the issuer "callsignal" and the webhook secret), as an app's backend would.
// Used by 88_webhooks.py.
// Usage: node verify_webhooks.mjs <secret> <file>   where file holds a JSON array of
// {"body": string, "auth": Authorization header}. Prints one JSON line per webhook:
// {"ok": true, "event": ..., "id": ...} or {"ok": false, "error": ...}; exits 0 after all of them
// (the caller judges), 2 on bad usage, 3 when the SDK is missing (web/node_modules not installed).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const sdk = path.join(here, '..', '..', 'web', 'node_modules', 'livekit-server-sdk', 'dist', 'index.js');
if (!existsSync(sdk)) {
  console.error(`livekit-server-sdk not found at ${sdk} (run npm install in web/)`);
  process.exit(3);
}
const [secret, file] = process.argv.slice(2);
if (!secret || !file) {
  console.error('usage: node verify_webhooks.mjs <secret> <file>');
  process.exit(2);
}
const { WebhookReceiver } = await import(pathToFileURL(sdk).href);
const receiver = new WebhookReceiver('callsignal', secret);
for (const { body, auth } of JSON.parse(readFileSync(file, 'utf8'))) {
  try {
    const event = await receiver.receive(body, auth);
    process.stdout.write(JSON.stringify({ ok: true, event: event.event, id: event.id }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ ok: false, error: err.message }) + '\n');
  }
}
