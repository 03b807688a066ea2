// Inboxes with the centrifuge SDK's browser build (dist/centrifuge.js) in headless Chromium,
// engine "sqlite" on a temporary file: the scenario of inbox_test.mjs, played by a page.
// User 42 is offline while the backend publishes 50 to `inbox:#42`; a fresh client of user 42
// in the page is subscribed to it server-side (user_subscribe_to_personal) and gets all 50 in
// order, first deliveries; it acks 30 with `client.rpc('hermod.ack', ...)`; after
// disconnect() and connect() it gets exactly the other 20 again, second deliveries. On
// `fast:#42` (ack_timeout 200ms, max_deliveries 3) a publication never acked arrives 3 times
// with increasing `hermod-delivery` tags, is dead-lettered (its receipt arrives, /api/
// dead_letters lists it), and /api/dead_letters_redrive brings it back to the page. The two
// namespaces keep it deterministic: with a short ack_timeout on the personal inbox, the 20
// would also be redelivered by time while the page is connected, as many times as the
// machine's load allows. The page records every publication (channel, offset, data, tag);
// the test waits on those records with a deadline, never on time.
// Run: node browser_inbox_test.mjs --hermod PATH [--chromium PATH]; exits 77 (skipped) when
// there is no Chromium at PATH.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { browserArgs, jwt, now, startBrowserHarness } from './browser_harness.mjs';

if (!fs.existsSync(browserArgs().executablePath)) {
  console.log(`SKIP: no Chromium at ${browserArgs().executablePath}`);
  process.exit(77);
}

const WAIT_MS = 15000;
const MAX_DELIVERIES = 3;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hermod-browser-inbox-'));

const CONFIG = {
  engine: 'sqlite',
  sqlite: { path: path.join(dir, 'inbox.db') },
  websocket: { allowed_origins: ['*'] },
  api_key: 'test-key',
  token_hmac_secret_key: 'hmac-secret',
  allow_subscribe_for_client: true,
  user_subscribe_to_personal: true,
  user_personal_channel_namespace: 'inbox',
  namespaces: [
    // Redelivered on connect only during the test.
    { name: 'inbox', inbox: true, ack_timeout: '600s', receipts_channel: 'receipts' },
    // Redelivered by time, quickly: 3 deliveries in about 0.6 s, dead at about 1.4 s.
    {
      name: 'fast', inbox: true, ack_timeout: '200ms', max_deliveries: MAX_DELIVERIES,
      receipts_channel: 'receipts', allow_user_limited_channels: true,
      allow_subscribe_for_client: true,
    },
  ],
};

let h;
let page;
let api;

before(async () => {
  h = await startBrowserHarness(CONFIG, 'centrifuge.js');
  ({ page, api } = h);
  // In the page: window.users[name] is a client with what it received, connection by
  // connection (`conn` counts its connects); window.receipts what the receipts channel said.
  await page.evaluate(() => {
    window.users = {};
    window.receipts = [];
    window.record = (c, ctx) => c.got.push({
      conn: c.conn, channel: ctx.channel, offset: ctx.offset, data: ctx.data,
      delivery: ctx.tags?.['hermod-delivery'],
    });
    window.connectUser = async (name, url, token) => {
      const c = new Centrifuge(url, { token, minReconnectDelay: 50, maxReconnectDelay: 300 });
      c.got = [];
      c.conn = 0;
      c.on('connected', () => { c.conn += 1; });
      // Publications of server-side subscriptions (the personal inbox) come to the client.
      c.on('publication', (ctx) => window.record(c, ctx));
      window.users[name] = c;
      const connected = window.nextEvent(c, 'connected');
      c.connect();
      await connected;
    };
    window.of = (name, channel, conn) =>
      window.users[name].got.filter((p) => p.channel === channel && (!conn || p.conn === conn));
  });
});

after(async () => {
  await h?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const url = () => `ws://127.0.0.1:${h.hermod.port}/connection/websocket`;
const token = (user) => jwt({ sub: user, exp: now() + 600 });
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

// Waits until the page holds at least count publications of user on channel (from connection
// conn, or any); returns them.
async function received(user, channel, count, conn = 0) {
  const args = { user, channel, count, conn };
  await page.waitForFunction((a) => window.of(a.user, a.channel, a.conn).length >= a.count, args,
                             { timeout: WAIT_MS });
  return page.evaluate((a) => window.of(a.user, a.channel, a.conn), args);
}

async function inboxStatus(channel, offsets) {
  const body = await api('inbox_status', { channel, ...(offsets ? { offsets } : {}) });
  return body.result.publications.map((p) => [p.offset, p.status, p.deliveries]);
}

test('offline user 42 gets all 50 on a fresh client, acks 30, gets the 20 again', async (t) => {
  // A bystander, user 43, is online throughout with its own personal inbox.
  await h.inPage(t, (a) => window.connectUser('43', a.url, a.token),
                 { url: url(), token: token('43') });

  // User 42 is offline: the backend publishes 50; nothing is delivered.
  for (const n of range(1, 50)) {
    const body = await api('publish', { channel: 'inbox:#42', data: { n } });
    assert.equal(body.result.offset, n, JSON.stringify(body));
    assert.ok(body.result.epoch, JSON.stringify(body));
  }
  assert.deepEqual(await inboxStatus('inbox:#42'), range(1, 50).map((n) => [n, 'pending', 0]));

  // A fresh client of user 42: all 50, in offset order, each a first delivery.
  await h.inPage(t, (a) => window.connectUser('42', a.url, a.token),
                 { url: url(), token: token('42') });
  const first = await received('42', 'inbox:#42', 50);
  assert.deepEqual(first.map((p) => [p.conn, p.offset, p.data.n, p.delivery]),
                   range(1, 50).map((n) => [1, n, n, '1']));

  // Acks 30 through the SDK's rpc.
  const ack = await h.inPage(t, (a) => window.users['42'].rpc('hermod.ack', a),
                             { channel: 'inbox:#42', offsets: range(1, 30) });
  assert.deepEqual(ack.data, { offsets: range(1, 30) });
  assert.deepEqual(await inboxStatus('inbox:#42', [30, 31]), [[30, 'acked', 1],
                                                              [31, 'delivered', 1]]);

  // Reconnects: exactly the other 20 again, in order, as second deliveries. hermod sends every
  // unacked one at connect in one go, in offset order: an acked one would be among the first.
  await h.inPage(t, async () => {
    const c = window.users['42'];
    const reconnected = window.nextEvent(c, 'connected');
    c.disconnect();
    c.connect();
    await reconnected;
  });
  const again = await received('42', 'inbox:#42', 20, 2);
  assert.deepEqual(again.map((p) => [p.offset, p.data.n, p.delivery]),
                   range(31, 50).map((n) => [n, n, '2']));
  // The rest acked with up_to: exactly those 20 were unacked.
  const rest = await h.inPage(t, (a) => window.users['42'].rpc('hermod.ack', a),
                              { channel: 'inbox:#42', up_to: 50 });
  assert.deepEqual(rest.data, { offsets: range(31, 50) });
  assert.equal((await received('42', 'inbox:#42', 0, 2)).length, 20);
  assert.deepEqual(await inboxStatus('inbox:#42', [1, 30, 31, 50]),
                   [[1, 'acked', 1], [30, 'acked', 1], [31, 'acked', 2], [50, 'acked', 2]]);
  // The bystander got none of them.
  assert.deepEqual(await received('43', 'inbox:#42', 0), []);
});

test('a publication never acked arrives max_deliveries times, is dead, and redrive brings it back',
     async (t) => {
  await h.inPage(t, async () => {
    const c = window.users['42'];
    const receipts = await window.subscribeTo(c, 'receipts');
    receipts.on('publication', (ctx) => window.receipts.push(ctx.data));
    const fast = c.newSubscription('fast:#42');
    window.acks = [];
    fast.on('publication', (ctx) => {
      window.record(c, ctx);
      // Once told to, acked the moment it arrives (ack_timeout is short).
      if (window.ackOnArrival) {
        window.acks.push(c.rpc('hermod.ack', { channel: ctx.channel, offsets: [ctx.offset] })
          .then((r) => r.data, (e) => ({ error: e.code })));
      }
    });
    const subscribed = window.nextEvent(fast, 'subscribed');
    fast.subscribe();
    await subscribed;
  });
  const { result } = await api('publish', { channel: 'fast:#42', data: { task: 'never acked' } });
  const offset = result.offset;

  // Delivered max_deliveries times, the count growing, the same offset and data each time.
  const deliveries = await received('42', 'fast:#42', MAX_DELIVERIES);
  assert.deepEqual(deliveries.map((p) => [p.offset, p.data.task, p.delivery]),
                   range(1, MAX_DELIVERIES).map((n) => [offset, 'never acked', String(n)]));

  // Then dead: its receipt arrives, and the dead letters list it.
  await page.waitForFunction((o) => window.receipts.some((r) => r.offset === o), offset,
                             { timeout: WAIT_MS });
  const receipt = await page.evaluate((o) => window.receipts.find((r) => r.offset === o), offset);
  assert.deepEqual([receipt.channel, receipt.status, receipt.reason, receipt.deliveries],
                   ['fast:#42', 'dead', 'max_deliveries', MAX_DELIVERIES]);
  const dead = (await api('dead_letters', { user: '42' })).result.dead_letters;
  assert.deepEqual(dead.map((d) => [d.channel, d.offset, d.reason, d.deliveries, d.data]),
                   [['fast:#42', offset, 'max_deliveries', MAX_DELIVERIES,
                     { task: 'never acked' }]]);
  // A dead letter is not delivered again.
  assert.equal((await received('42', 'fast:#42', 0)).length, MAX_DELIVERIES);

  // Redrive: back in the page, its count reset; acked on arrival this time, it leaves the
  // dead letters.
  await page.evaluate(() => { window.ackOnArrival = true; });
  const redriven = await api('dead_letters_redrive', { channel: 'fast:#42' });
  assert.deepEqual(redriven.result.offsets, [offset]);
  const back = (await received('42', 'fast:#42', MAX_DELIVERIES + 1))[MAX_DELIVERIES];
  assert.deepEqual([back.offset, back.data.task, back.delivery], [offset, 'never acked', '1']);
  const ack = await page.evaluate(() => window.acks[0]);
  assert.deepEqual(ack, { offsets: [offset] });
  // (A loaded machine may deliver it once more within the ack's round trip: 200 ms.)
  const [[acked, status, count]] = await inboxStatus('fast:#42');
  assert.deepEqual([acked, status], [offset, 'acked']);
  assert.ok(count >= 1 && count < MAX_DELIVERIES, `deliveries after the redrive: ${count}`);
  assert.deepEqual((await api('dead_letters', { user: '42' })).result.dead_letters, []);
  await page.evaluate(() => Object.values(window.users).forEach((c) => c.disconnect()));
});
