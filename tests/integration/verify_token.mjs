// Verifies a LiveKit access token with LiveKit's own server SDK (livekit-server-sdk's TokenVerifier),
// as a LiveKit server would. Used by 60_token.py.
// Usage: node verify_token.mjs <apiKey> <apiSecret> <token>
// Prints the verified claims as JSON on stdout and exits 0; prints the reason and exits 1 when the
// token does not verify; exits 3 when the SDK is missing (web/node_modules not installed).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const sdk = path.join(here, '..', '..', 'web', 'node_modules', 'livekit-server-sdk', 'dist', 'index.js');
if (!existsSync(sdk)) {
  console.error(`livekit-server-sdk not found at ${sdk} (run npm install in web/)`);
  process.exit(3);
}
const [apiKey, apiSecret, token] = process.argv.slice(2);
if (!apiKey || !apiSecret || !token) {
  console.error('usage: node verify_token.mjs <apiKey> <apiSecret> <token>');
  process.exit(2);
}
const { TokenVerifier } = await import(pathToFileURL(sdk).href);
try {
  const claims = await new TokenVerifier(apiKey, apiSecret).verify(token);
  process.stdout.write(JSON.stringify(claims) + '\n');
} catch (err) {
  console.error(`token rejected: ${err.message}`);
  process.exit(1);
}
