// Headless Debian Chromium, driven by playwright-core, opens a WebSocket to a running hermod
// from a real page: the extension Chromium negotiated, text and binary echoes, a clean close.
// Usage: node browser_client.mjs PORT [CHROMIUM]. Prints one JSON line with what the page saw;
// exits non-zero on failure (run by browser_test.py, which starts hermod).
import assert from 'node:assert/strict';
import {launchChromium} from './chromium.mjs';

const port = Number(process.argv[2]);
const executablePath = process.argv[3] || '/usr/bin/chromium';
assert.ok(port > 0, 'usage: node browser_client.mjs PORT [CHROMIUM]');

// Runs in the page: everything a browser application would do, reported as one object.
async function pageTest(url) {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const queue = [];
  const waiting = [];
  ws.onmessage = (e) => (waiting.length ? waiting.shift()(e.data) : queue.push(e.data));
  const next = () => (queue.length ? Promise.resolve(queue.shift())
                                   : new Promise((r) => waiting.push(r)));
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('WebSocket error before open'));
  });
  const result = {extensions: ws.extensions, protocol: ws.protocol, echoes: []};
  const text = 'hello from chromium \u2713 '.repeat(5000);
  for (const message of ['', 'short', text]) {
    ws.send(message);
    result.echoes.push((await next()) === message);
  }
  const bytes = new Uint8Array(100000).map((_, i) => (i * 31) & 0xff);
  ws.send(bytes);
  const back = new Uint8Array(await next());
  result.echoes.push(back.length === bytes.length && back.every((b, i) => b === bytes[i]));
  const closed = new Promise((r) => (ws.onclose = (e) => r({code: e.code, clean: e.wasClean})));
  ws.close(1000, 'bye');
  result.close = await closed;
  return result;
}

const browser = await launchChromium(executablePath);
let failed = false;
const consoleLines = [];  // Chromium explains WebSocket failures only on the console
try {
  const page = await browser.newPage();
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  // Served by hermod itself is not possible (no static files); a blank page has origin
  // "null", which the test's config allows with allowed_origins ["*"].
  const result = await page.evaluate(pageTest, `ws://127.0.0.1:${port}/connection/echo`);
  console.log(JSON.stringify(result));
  assert.match(result.extensions, /permessage-deflate/);
  assert.deepEqual(result.echoes, [true, true, true, true]);
  assert.deepEqual(result.close, {code: 1000, clean: true});
  console.log('PASS');
} catch (error) {
  console.error('FAIL:', error);
  console.error(`page console:\n${consoleLines.join('\n')}`);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
