// Builds and checks LiveKit webhook requests with LiveKit's own Node SDK (livekit-server-sdk), as a
// LiveKit server and a receiving app do. Used by 56_livekit_webhook.py.
// Usage (the body is read from stdin, byte for byte):
//   node livekit_webhook.mjs sign <apiKey> <apiSecret> <ttl>   prints the Authorization value: an
//        AccessToken (iss = apiKey, HS256) carrying the sha256 claim of the body; ttl as the SDK
//        takes it ("5m", "2 hours ago")
//   node livekit_webhook.mjs receive <apiKey> <apiSecret> <authorization>   runs WebhookReceiver:
//        prints the event as JSON and exits 0 when accepted, prints the reason and exits 1 when not
//        ("" stands for a missing header)
// Exits 3 when the SDK is missing (web/node_modules not installed), 2 on bad usage.
import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const sdk = path.join(here, '..', '..', 'web', 'node_modules', 'livekit-server-sdk', 'dist', 'index.js');
if (!existsSync(sdk)) {
  console.error(`livekit-server-sdk not found at ${sdk} (run npm install in web/)`);
  process.exit(3);
}
const [mode, apiKey, apiSecret, arg] = process.argv.slice(2);
if (!['sign', 'receive'].includes(mode) || !apiKey || !apiSecret || arg === undefined) {
  console.error('usage: node livekit_webhook.mjs sign|receive <apiKey> <apiSecret> <ttl|authorization>');
  process.exit(2);
}
const body = readFileSync(0);
const { AccessToken, WebhookReceiver } = await import(pathToFileURL(sdk).href);

if (mode === 'sign') {
  // What livekit-server does for each webhook: a token with the body's hash as its sha256 claim.
  const at = new AccessToken(apiKey, apiSecret, { ttl: arg });
  at.sha256 = createHash('sha256').update(body).digest('base64');
  process.stdout.write(await at.toJwt());
} else {
  try {
    const event = await new WebhookReceiver(apiKey, apiSecret).receive(body.toString('utf8'), arg || undefined);
    process.stdout.write(JSON.stringify(event.toJson()) + '\n');
  } catch (err) {
    console.error(`webhook rejected: ${err.message}`);
    process.exit(1);
  }
}
