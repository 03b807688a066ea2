// hermod with the real centrifuge SDK in headless Chromium: the SDK's browser build
// (node_modules/centrifuge/dist/centrifuge.js) runs in a blank page and uses the browser's own
// WebSocket; publications come from the server HTTP API. Chromium offers permessage-deflate,
// so this also covers the fan-out path's shared deflated frame in a real browser. The same
// scenarios as the Node test where a page can play them: presence, join/leave, history, a
// token connection, a private channel with a subscription token, recovery after the
// harness's TCP proxy cuts the page's connection (the SDK reconnects by itself), and an inbox:
// a publication queued while the user was offline arrives in the page, the page acks it with
// the `hermod.ack` RPC, and the receipt arrives on the receipts channel.
// Chromium is Debian's (/usr/bin/chromium), driven by playwright-core from ../node (run
// `npm ci` in both folders first). The blank page's Origin is "null": the config allows any.
// Run: node browser_test.mjs --hermod PATH [--chromium PATH]
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { jwt, now, startBrowserHarness } from './browser_harness.mjs';

const CONFIG = {
  websocket: { allowed_origins: ['*'] },
  allow_anonymous_connect_without_token: true,
  allow_subscribe_for_client: true,
  allow_subscribe_for_anonymous: true,
  history_size: 100,
  history_ttl: '300s',
  force_recovery: true,
  presence: true,
  join_leave: true,
  allow_presence_for_subscriber: true,
  allow_history_for_subscriber: true,
  allow_publish_for_subscriber: true,
  api_key: 'test-key',
  token_hmac_secret_key: 'hmac-secret',
  // An inbox the page's user subscribes to itself, with receipts to a top-level channel.
  namespaces: [{
    name: 'inbox', inbox: true, ack_timeout: '600s', receipts_channel: 'receipts',
    allow_user_limited_channels: true, allow_subscribe_for_client: true,
  }],
};

let h;
let hermod;
let page;
let proxy;
let api;

before(async () => {
  h = await startBrowserHarness(CONFIG, 'centrifuge.js');
  ({ hermod, page, proxy, api } = h);
});

after(() => h?.stop());

test('the browser SDK connects, subscribes and receives API publications', async (t) => {
  // In the page: connect and subscribe; window.received collects publications.
  const ready = await h.inPage(t, async (url) => {
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

const url = () => `ws://127.0.0.1:${hermod.port}/connection/websocket`;

const inPage = (t, fn, arg) => h.inPage(t, fn, arg);

test('presence, presence stats, join and leave in the browser', async (t) => {
  const seen = await inPage(t, async (u) => {
    const a = await window.connectClient(u);
    const b = await window.connectClient(u);
    const ids = { a: a._client, b: b._client };  // cleared on disconnect
    const watch = await window.subscribeTo(a, 'room', { joinLeave: true });
    const joined = window.nextEvent(watch, 'join', (ctx) => ctx.info.client === b._client);
    const sub = await window.subscribeTo(b, 'room');
    const join = await joined;
    const presence = await watch.presence();
    const stats = await watch.presenceStats();
    const left = window.nextEvent(watch, 'leave', (ctx) => ctx.info.client === b._client);
    sub.unsubscribe();
    const leave = await left;
    const after = await watch.presenceStats();
    a.disconnect();
    b.disconnect();
    return { a: ids.a, b: ids.b, join: join.info.client, leave: leave.info.client,
             clients: Object.keys(presence.clients).sort(), stats, after };
  }, url());
  assert.deepEqual(seen.clients, [seen.a, seen.b].sort());
  assert.equal(seen.join, seen.b);
  assert.equal(seen.leave, seen.b);
  assert.deepEqual([seen.stats.numClients, seen.stats.numUsers], [2, 1]);
  assert.equal(seen.after.numClients, 1);
});

test('history with limit and reverse in the browser', async (t) => {
  for (let i = 1; i <= 3; i++) await api('publish', { channel: 'log', data: { i } });
  const seen = await inPage(t, async (u) => {
    const c = await window.connectClient(u);
    const sub = await window.subscribeTo(c, 'log');
    const all = await sub.history({ limit: -1 });
    const last = await sub.history({ limit: 2, reverse: true });
    c.disconnect();
    return { all: all.publications.map((p) => p.data.i), offset: all.offset,
             last: last.publications.map((p) => p.data.i) };
  }, url());
  assert.deepEqual(seen, { all: [1, 2, 3], offset: 3, last: [3, 2] });
});

test('a token connection and a private channel with a subscription token', async (t) => {
  const tokens = {
    connect: jwt({ sub: 'alice', exp: now() + 600, info: { name: 'Alice' } }),
    channel: jwt({ sub: 'alice', channel: '$secret', exp: now() + 600, info: { seat: 1 } }),
  };
  const seen = await inPage(t, async ({ u, tokens }) => {
    const c = await window.connectClient(u, { token: tokens.connect });
    const denied = c.newSubscription('$secret');
    const ended = window.nextEvent(denied, 'unsubscribed');
    denied.subscribe();
    const refusal = await ended;
    c.removeSubscription(denied);
    const sub = await window.subscribeTo(c, '$secret', { getToken: async () => tokens.channel });
    const presence = await sub.presence();
    const got = window.nextEvent(sub, 'publication');
    await sub.publish({ hello: 'from the page' });
    const pub = await got;
    c.disconnect();
    return { refusal: refusal.code, entry: Object.values(presence.clients)[0],
             pub: { data: pub.data, user: pub.info.user, chanInfo: pub.info.chanInfo } };
  }, { u: url(), tokens });
  assert.equal(seen.refusal, 103);
  assert.equal(seen.entry.user, 'alice');
  assert.deepEqual(seen.entry.connInfo, { name: 'Alice' });
  assert.deepEqual(seen.entry.chanInfo, { seat: 1 });
  assert.deepEqual(seen.pub, { data: { hello: 'from the page' }, user: 'alice',
                               chanInfo: { seat: 1 } });
});

test('recovers every missed publication in order after the connection is cut', async (t) => {
  await inPage(t, async (u) => {
    const c = await window.connectClient(u);
    const sub = await window.subscribeTo(c, 'feed');
    window.feed = { client: c, received: [], resubscribed: null, cut: false };
    sub.on('publication', (ctx) => window.feed.received.push(ctx.data.n));
    sub.on('subscribed', (ctx) => {
      if (ctx.wasRecovering) window.feed.resubscribed = ctx;
    });
    c.on('connecting', () => { window.feed.cut = true; });
  }, `ws://127.0.0.1:${proxy.port}/connection/websocket`);
  await api('publish', { channel: 'feed', data: { n: 0 } });
  await page.waitForFunction(() => window.feed.received.length === 1, null, { timeout: 10000 });
  proxy.cutAll();
  await page.waitForFunction(() => window.feed.cut, null, { timeout: 10000 });
  for (let n = 1; n <= 3; n++) await api('publish', { channel: 'feed', data: { n } });
  await page.waitForFunction(() => window.feed.resubscribed !== null, null, { timeout: 10000 });
  await api('publish', { channel: 'feed', data: { n: 4 } });
  await page.waitForFunction(() => window.feed.received.length >= 5, null, { timeout: 10000 });
  const seen = await page.evaluate(() => {
    window.feed.client.disconnect();
    return { received: window.feed.received, recovered: window.feed.resubscribed.recovered };
  });
  assert.equal(seen.recovered, true);
  assert.deepEqual(seen.received, [0, 1, 2, 3, 4]);
});

test('an inbox delivery is acked from the browser and its receipt arrives', async (t) => {
  // Queued while user 42 is offline.
  const published = await api('publish', { channel: 'inbox:#42', data: { task: 'browser' } });
  const offset = published.result.offset;
  const token = jwt({ sub: '42', exp: now() + 600 });
  const seen = await inPage(t, async ({ u, token, offset }) => {
    // A backend's watcher of the receipts, in the same page.
    const watcher = await window.connectClient(u);
    const receipts = await window.subscribeTo(watcher, 'receipts');
    const receipt = window.nextEvent(receipts, 'publication', (ctx) => ctx.data.offset === offset);
    const c = await window.connectClient(u, { token });
    const sub = c.newSubscription('inbox:#42');
    const delivered = window.nextEvent(sub, 'publication');
    sub.subscribe();
    const pub = await delivered;
    const ack = await c.rpc('hermod.ack', { channel: 'inbox:#42', offsets: [pub.offset] });
    const got = await receipt;
    // Acked twice: an error reply, nothing changes.
    const again = await c.rpc('hermod.ack', { channel: 'inbox:#42', offsets: [pub.offset] })
      .then(() => null, (e) => e.code);
    c.disconnect();
    watcher.disconnect();
    return { data: pub.data, offset: pub.offset, delivery: pub.tags['hermod-delivery'],
             ack: ack.data, receipt: got.data, again };
  }, { u: url(), token, offset });
  assert.deepEqual(seen.data, { task: 'browser' });
  assert.equal(seen.offset, offset);
  assert.equal(seen.delivery, '1');
  assert.deepEqual(seen.ack, { offsets: [offset] });
  assert.deepEqual([seen.receipt.channel, seen.receipt.offset, seen.receipt.status],
                   ['inbox:#42', offset, 'acked']);
  assert.ok(seen.receipt.at > 0);
  assert.equal(seen.again, 107);
  const status = await api('inbox_status', { channel: 'inbox:#42', offsets: [offset] });
  assert.equal(status.result.publications[0].status, 'acked');
});
