// hermod with the centrifuge SDK's Protobuf browser bundle (dist/centrifuge.protobuf.js,
// `protocol: 'protobuf'`) in headless Chromium: the browser's own WebSocket negotiates
// `centrifuge-protobuf`; connect with a token, subscribe, client publish (JSON and binary
// data), an API publication arriving as its JSON text, history, presence, and recovery
// after the connection is cut; and the same bundle over http_stream when WebSocket is blocked.
// Run: node browser_protobuf_test.mjs --hermod PATH [--chromium PATH]
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { jwt, now, startBrowserHarness } from './browser_harness.mjs';
import { closedPort } from './harness.mjs';

const CONFIG = {
  websocket: { allowed_origins: ['*'] },
  http_stream: true,
  allowed_origins: ['*'],
  allow_subscribe_for_client: true,
  history_size: 100,
  history_ttl: '300s',
  force_recovery: true,
  presence: true,
  allow_presence_for_subscriber: true,
  allow_history_for_subscriber: true,
  allow_publish_for_subscriber: true,
  api_key: 'test-key',
  token_hmac_secret_key: 'hmac-secret',
};

let h;
let hermod;
let proxy;
let page;
let api;

before(async () => {
  h = await startBrowserHarness(CONFIG, 'centrifuge.protobuf.js');
  ({ hermod, proxy, page, api } = h);
});

after(() => h?.stop());

const inPage = (t, fn, arg) => h.inPage(t, fn, arg);

test('the protobuf bundle connects, publishes, and reads history and presence', async (t) => {
  const token = jwt({ sub: 'alice', exp: now() + 600 });
  await inPage(t, async ({ url, token }) => {
    const sockets = [];
    class RecordingWebSocket extends WebSocket {
      constructor(...args) {
        super(...args);
        sockets.push(this);
      }
    }
    const c = new Centrifuge(url, { protocol: 'protobuf', token, websocket: RecordingWebSocket });
    window.main = { client: c, sockets, received: [] };
    const connected = window.nextEvent(c, 'connected');
    c.connect();
    await connected;
    const sub = c.newSubscription('page');
    sub.on('publication', (ctx) => window.main.received.push(Array.from(ctx.data)));
    const subscribed = window.nextEvent(sub, 'subscribed');
    sub.subscribe();
    await subscribed;
    window.main.sub = sub;
  }, { url: `ws://127.0.0.1:${hermod.port}/connection/websocket`, token });
  await api('publish', { channel: 'page', data: { from: 'api' } });
  const seen = await inPage(t, async () => {
    const { sub, sockets } = window.main;
    while (window.main.received.length < 1) await new Promise((r) => setTimeout(r, 10));
    await sub.publish(new TextEncoder().encode('{"from":"page"}'));
    await sub.publish(new Uint8Array([0, 255, 10, 1]));
    while (window.main.received.length < 3) await new Promise((r) => setTimeout(r, 10));
    const history = await sub.history({ limit: 10 });
    const presence = await sub.presence();
    return {
      protocol: sockets[0].protocol,
      received: window.main.received.map((b, i) => (i === 2 ? b : window.text(new Uint8Array(b)))),
      history: history.publications.map((p) => Array.from(p.data)),
      users: Object.values(presence.clients).map((info) => info.user),
    };
  });
  assert.equal(seen.protocol, 'centrifuge-protobuf');
  assert.deepEqual(seen.received, ['{"from":"api"}', '{"from":"page"}', [0, 255, 10, 1]]);
  assert.equal(seen.history.length, 3);
  assert.deepEqual(seen.history[2], [0, 255, 10, 1]);
  assert.deepEqual(seen.users, ['alice']);
});

test('recovers every missed publication in order after the connection is cut', async (t) => {
  const token = jwt({ sub: 'bob', exp: now() + 600 });
  await inPage(t, async ({ url, token }) => {
    const c = new Centrifuge(url, { protocol: 'protobuf', token, minReconnectDelay: 50,
                                    maxReconnectDelay: 300 });
    const sub = c.newSubscription('feed');
    window.feed = { client: c, received: [], resubscribed: null, cut: false };
    sub.on('publication', (ctx) => window.feed.received.push(JSON.parse(window.text(ctx.data)).n));
    sub.on('subscribed', (ctx) => {
      if (ctx.wasRecovering) window.feed.resubscribed = ctx;
    });
    c.on('connecting', () => { window.feed.cut = true; });
    const subscribed = window.nextEvent(sub, 'subscribed');
    c.connect();
    sub.subscribe();
    await subscribed;
    window.feed.cut = false;
  }, { url: `ws://127.0.0.1:${proxy.port}/connection/websocket`, token });
  await api('publish', { channel: 'feed', data: { n: 0 } });
  await page.waitForFunction(() => window.feed.received.length === 1, null, { timeout: 10000 });
  proxy.cutAll();
  await page.waitForFunction(() => window.feed.cut, null, { timeout: 10000 });
  for (let n = 1; n <= 3; n++) await api('publish', { channel: 'feed', data: { n } });
  await page.waitForFunction(() => window.feed.resubscribed !== null, null, { timeout: 10000 });
  await page.waitForFunction(() => window.feed.received.length >= 4, null, { timeout: 10000 });
  const seen = await page.evaluate(() => {
    if (window.main) window.main.client.disconnect();
    window.feed.client.disconnect();
    return { received: window.feed.received, recovered: window.feed.resubscribed.recovered };
  });
  assert.equal(seen.recovered, true);
  assert.deepEqual(seen.received, [0, 1, 2, 3]);
});

test('the protobuf bundle over http_stream (WebSocket blocked): publish, history, presence', async (t) => {
  const token = jwt({ sub: 'carol', exp: now() + 600 });
  const base = `http://127.0.0.1:${hermod.port}`;
  const blocked = `ws://127.0.0.1:${await closedPort()}/connection/websocket`;
  await inPage(t, async ({ base, blocked, token }) => {
    const c = new Centrifuge([
      { transport: 'websocket', endpoint: blocked },
      { transport: 'http_stream', endpoint: `${base}/connection/http_stream` },
    ], { protocol: 'protobuf', token, emulationEndpoint: `${base}/emulation` });
    const connected = window.nextEvent(c, 'connected');
    c.connect();
    const ctx = await connected;
    const sub = c.newSubscription('streamed');
    window.streamed = { client: c, sub, transport: ctx.transport, received: [] };
    sub.on('publication', (ctx) => window.streamed.received.push(Array.from(ctx.data)));
    const subscribed = window.nextEvent(sub, 'subscribed');
    sub.subscribe();
    await subscribed;
  }, { base, blocked, token });
  await api('publish', { channel: 'streamed', data: { from: 'api' } });
  const seen = await inPage(t, async () => {
    const { sub, client } = window.streamed;
    while (window.streamed.received.length < 1) await new Promise((r) => setTimeout(r, 10));
    await sub.publish(new Uint8Array([0, 255, 10, 1]));
    while (window.streamed.received.length < 2) await new Promise((r) => setTimeout(r, 10));
    const history = await sub.history({ limit: 10 });
    const presence = await sub.presence();
    client.disconnect();
    return {
      transport: window.streamed.transport,
      first: window.text(new Uint8Array(window.streamed.received[0])),
      second: window.streamed.received[1],
      history: history.publications.map((p) => Array.from(p.data)),
      users: Object.values(presence.clients).map((info) => info.user),
    };
  });
  assert.equal(seen.transport, 'http_stream');
  assert.equal(seen.first, '{"from":"api"}');
  assert.deepEqual(seen.second, [0, 255, 10, 1]);
  assert.equal(seen.history.length, 2);
  assert.deepEqual(seen.history[1], [0, 255, 10, 1]);
  assert.deepEqual(seen.users, ['carol']);
});
