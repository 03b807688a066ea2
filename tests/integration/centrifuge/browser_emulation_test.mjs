// The centrifuge SDK's browser build in headless Chromium over the emulated transports, as a
// page behind a proxy that breaks WebSocket would use them: the fallback chain (a WebSocket
// endpoint that cannot connect, then http_stream, then sse) from a page of another origin,
// so every POST to /emulation and /connection/http_stream is a real cross-origin request
// with its CORS preflight. Connect with a token, subscribe, client publish, an API
// publication, history, presence, and recovery after the proxy cuts the page's connections;
// then sse alone with Chromium's own EventSource.
// Run: node browser_emulation_test.mjs --hermod PATH [--chromium PATH]
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { launchChromium } from '../node/chromium.mjs';
import { closedPort, startHermod, startProxy } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name, fallback) =>
  process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback;
const binary = arg('--hermod');
const executablePath = arg('--chromium', '/usr/bin/chromium');
assert.ok(binary, 'usage: --hermod PATH [--chromium PATH]');
const SDK = fs.readFileSync(path.join(here, 'node_modules/centrifuge/dist/centrifuge.js'));

function jwt(claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${crypto.createHmac('sha256', 'hmac-secret').update(body).digest('base64url')}`;
}

let hermod;
let proxy;
let pages;  // the page's own origin: another port than hermod's
let browser;
let page;
const consoleLines = [];

async function api(method, body) {
  const response = await fetch(`http://127.0.0.1:${hermod.port}/api/${method}`, {
    method: 'POST', headers: { Authorization: 'apikey test-key' }, body: JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  return response.json();
}

before(async () => {
  pages = http.createServer((req, res) => {
    if (req.url === '/centrifuge.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      return res.end(SDK);
    }
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end('<!doctype html><script src="/centrifuge.js"></script>');
  });
  await new Promise((resolve) => pages.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${pages.address().port}`;
  hermod = await startHermod(binary, {
    http_stream: true,
    sse: true,
    allowed_origins: [origin],
    allow_subscribe_for_client: true,
    allow_publish_for_subscriber: true,
    presence: true,
    allow_presence_for_subscriber: true,
    history_size: 100,
    history_ttl: '300s',
    allow_history_for_subscriber: true,
    force_recovery: true,
    api_key: 'test-key',
    token_hmac_secret_key: 'hmac-secret',
  });
  proxy = await startProxy(hermod.port);
  browser = await launchChromium(executablePath);
  page = await browser.newPage();
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  await page.goto(`${origin}/`);
});

after(async () => {
  if (browser) await browser.close();
  if (proxy) proxy.close();
  if (pages) pages.close();
  if (hermod) assert.equal((await hermod.stop()).code, 0, hermod.log.join(''));
});

// In the page: connect over transports, subscribe, publish; the results for the test.
async function scenario(transports, channel) {
  const base = `http://127.0.0.1:${proxy.port}`;
  const token = jwt({ sub: 'browser', exp: Math.floor(Date.now() / 1000) + 600 });
  const first = await page.evaluate(async ({ transports, base, token, channel }) => {
    const next = (emitter, event, timeoutMs = 10000) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), timeoutMs);
      emitter.once(event, (ctx) => {
        clearTimeout(timer);
        resolve(ctx);
      });
    });
    const c = new Centrifuge(transports, {
      token, emulationEndpoint: `${base}/emulation`, minReconnectDelay: 50, maxReconnectDelay: 300,
    });
    window.client = c;
    const connected = next(c, 'connected');
    c.connect();
    const ctx = await connected;
    const sub = c.newSubscription(channel);
    window.sub = sub;
    window.received = [];
    sub.on('publication', (p) => window.received.push(p.data.text));
    const subscribed = next(sub, 'subscribed');
    sub.subscribe();
    await subscribed;
    await sub.publish({ text: 'from page' });
    return { transport: ctx.transport };
  }, { transports, base, token, channel });

  await api('publish', { channel, data: { text: 'from api' } });
  await page.waitForFunction(() => window.received.length === 2);
  const state = await page.evaluate(async () => {
    const history = await window.sub.history({ limit: 10 });
    const presence = await window.sub.presence();
    return {
      history: history.publications.map((p) => p.data.text),
      presence: Object.keys(presence.clients).length,
    };
  });

  // Recovery: the proxy cuts the page's connections; a publication meanwhile arrives after.
  // Reconnects fail (the proxy points at a closed port) until the publication is made.
  await page.evaluate(() => {
    window.away = new Promise((resolve) => window.client.once('connecting', resolve));
    window.back = new Promise((resolve) => {
      window.sub.once('subscribed', (ctx) => resolve(ctx.recovered));
    });
  });
  proxy.retarget(await closedPort());
  proxy.cutAll();
  await page.evaluate(() => window.away.then(() => true));
  await api('publish', { channel, data: { text: 'missed' } });
  proxy.retarget(hermod.port);
  const recovered = await page.evaluate(() => window.back);
  await page.waitForFunction(() => window.received.includes('missed'));
  const received = await page.evaluate(() => {
    window.client.disconnect();
    return window.received;
  });
  return { ...first, ...state, recovered, received };
}

test('the fallback chain: WebSocket blocked, then http_stream (cross-origin)', async (t) => {
  t.after(() => {
    if (t.signal.aborted) console.error(`page console:\n${consoleLines.join('\n')}`);
  });
  const base = `http://127.0.0.1:${proxy.port}`;
  const r = await scenario([
    { transport: 'websocket', endpoint: `ws://127.0.0.1:${await closedPort()}/connection/websocket` },
    { transport: 'http_stream', endpoint: `${base}/connection/http_stream` },
    { transport: 'sse', endpoint: `${base}/connection/sse` },
  ], 'chain');
  assert.equal(r.transport, 'http_stream');
  assert.deepEqual(r.history, ['from page', 'from api']);
  assert.equal(r.presence, 1);
  assert.equal(r.recovered, true);
  assert.deepEqual(r.received, ['from page', 'from api', 'missed']);
});

test('sse with the browser\'s EventSource', async () => {
  const base = `http://127.0.0.1:${proxy.port}`;
  const r = await scenario([{ transport: 'sse', endpoint: `${base}/connection/sse` }], 'sse');
  assert.equal(r.transport, 'sse');
  assert.deepEqual(r.history, ['from page', 'from api']);
  assert.equal(r.recovered, true);
  assert.deepEqual(r.received, ['from page', 'from api', 'missed']);
});
