// hermod with the real centrifuge SDK in headless Chromium: the SDK's browser build
// (node_modules/centrifuge/dist/centrifuge.js) runs in a blank page and uses the browser's own
// WebSocket; publications come from the server HTTP API. Chromium offers permessage-deflate,
// so this also covers the fan-out path's shared deflated frame in a real browser.
// Chromium is Debian's (/usr/bin/chromium), driven by playwright-core from ../node (run
// `npm ci` in both folders first). The blank page's Origin is "null": the config allows any.
// Run: node browser_test.mjs --hermod PATH [--chromium PATH]
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { startHermod } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name, fallback) =>
  process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback;
const binary = arg('--hermod');
const executablePath = arg('--chromium', '/usr/bin/chromium');
assert.ok(binary, 'usage: --hermod PATH [--chromium PATH]');
// playwright-core is a dependency of the transport tests' folder, not of this one.
const { chromium } = createRequire(path.join(here, '../node/package.json'))('playwright-core');
const SDK = path.join(here, 'node_modules/centrifuge/dist/centrifuge.js');

const CONFIG = {
  websocket: { allowed_origins: ['*'] },
  allow_anonymous_connect_without_token: true,
  allow_subscribe_for_client: true,
  allow_subscribe_for_anonymous: true,
  history_size: 100,
  history_ttl: '300s',
  api_key: 'test-key',
};

let hermod;
let browser;
let page;
const consoleLines = [];  // Chromium explains WebSocket failures only on the console

async function api(method, body) {
  const response = await fetch(`http://127.0.0.1:${hermod.port}/api/${method}`, {
    method: 'POST',
    headers: { Authorization: 'apikey test-key' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  return response.json();
}

before(async () => {
  hermod = await startHermod(binary, CONFIG);
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--disable-dev-shm-usage'],
    timeout: 60000,
  });
  page = await browser.newPage();
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  await page.addScriptTag({ path: SDK });
});

after(async () => {
  if (browser) await browser.close();
  if (hermod) {
    const status = await hermod.stop();
    assert.equal(status.code, 0, hermod.log.join(''));
  }
});

test('the browser SDK connects, subscribes and receives API publications', async (t) => {
  t.after(() => {
    if (t.signal.aborted) console.error(`page console:\n${consoleLines.join('\n')}`);
  });
  // In the page: connect and subscribe; window.received collects publications.
  const ready = await page.evaluate(async (url) => {
    const sockets = [];
    // The browser's WebSocket, remembered so the test can read the negotiated extensions.
    class RecordingWebSocket extends WebSocket {
      constructor(...args) {
        super(...args);
        sockets.push(this);
      }
    }
    const c = new Centrifuge(url, { websocket: RecordingWebSocket });
    window.received = [];
    window.waiters = [];
    const connected = new Promise((resolve, reject) => {
      c.on('connected', resolve);
      c.on('error', (e) => reject(new Error(JSON.stringify(e.error))));
    });
    c.connect();
    const ctx = await connected;
    const sub = c.newSubscription('news');
    sub.on('publication', (p) => {
      window.received.push({ data: p.data, offset: p.offset });
      window.waiters.splice(0).forEach((w) => w());
    });
    const subscribed = new Promise((resolve) => sub.on('subscribed', resolve));
    sub.subscribe();
    await subscribed;
    window.client = c;
    return { client: ctx.client, transport: ctx.transport, extensions: sockets[0].extensions };
  }, `ws://127.0.0.1:${hermod.port}/connection/websocket`);
  assert.match(ready.client, /^[0-9a-f-]{36}$/);
  assert.equal(ready.transport, 'websocket');
  assert.match(ready.extensions, /permessage-deflate/);

  const sent = [];
  for (let n = 1; n <= 3; n++) {
    // Long enough to leave compressed (compression.min_size is 64).
    const data = { n, text: 'from the server API, through the hub, to chromium '.repeat(4) };
    const body = await api('publish', { channel: 'news', data });
    sent.push({ data, offset: body.result.offset });
  }
  const received = await page.evaluate(async (count) => {
    const deadline = Date.now() + 10000;
    while (window.received.length < count && Date.now() < deadline) {
      await new Promise((resolve) => {
        window.waiters.push(resolve);
        setTimeout(resolve, deadline - Date.now());
      });
    }
    window.client.disconnect();
    return window.received;
  }, sent.length);
  assert.deepEqual(received, sent);
});
