// Inboxes (namespace option `inbox: true`) with the real centrifuge SDK and engine "sqlite":
// offline buffering, delivery on connect in offset order to a fresh client, acks through the
// SDK's rpc (hermod.ack), redelivery on reconnect, max_deliveries then dead letters, redrive,
// receipts, inbox_status; and kill -9 between publish and ack: after a restart on the same
// file the unacked publications arrive again and the acked ones never do.
// Run: node inbox_test.mjs --hermod PATH (after `npm ci` here).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

import { nextEvent, startHermod } from './harness.mjs';

const binary = process.argv[process.argv.indexOf('--hermod') + 1];
assert.ok(process.argv.includes('--hermod') && binary, 'usage: --hermod PATH');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hermod-inbox-sdk-'));
const config = (file) => ({
  engine: 'sqlite',
  sqlite: { path: path.join(dir, file) },
  token_hmac_secret_key: 'hmac-secret',
  api_key: 'test-key',
  allow_subscribe_for_client: true,
  user_subscribe_to_personal: true,
  user_personal_channel_namespace: 'inbox',
  namespaces: [
    // Nothing is redelivered by time during the test: only on reconnect.
    { name: 'inbox', inbox: true, ack_timeout: '600s', receipts_channel: 'receipts' },
    // Redelivered quickly, dead after 3 deliveries.
    {
      name: 'fast', inbox: true, ack_timeout: '200ms', max_deliveries: 3,
      receipts_channel: 'receipts', allow_user_limited_channels: true,
      allow_subscribe_for_client: true,
    },
  ],
});

const clients = [];
const servers = [];
after(async () => {
  for (const c of clients) c.disconnect();
  for (const s of servers) await s.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

function jwt(claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${crypto.createHmac('sha256', 'hmac-secret').update(body).digest('base64url')}`;
}

// A fresh SDK client of user (no recovery state), collecting the publications of channel.
function userClient(port, user, channel) {
  const c = new Centrifuge(`ws://127.0.0.1:${port}/connection/websocket`, {
    websocket: WebSocket,
    token: jwt({ sub: user, exp: Math.floor(Date.now() / 1000) + 600 }),
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
  });
  clients.push(c);
  c.got = [];
  c.on('publication', (ctx) => {
    if (ctx.channel === channel) c.got.push(ctx);
  });
  return c;
}

// Resolves once pred holds, checked on each event of emitter (no polling by time).
function until(emitter, event, pred, timeoutMs = 10000) {
  if (pred()) return Promise.resolve();
  return nextEvent(emitter, event, () => pred(), timeoutMs);
}

async function api(port, method, body) {
  const response = await fetch(`http://127.0.0.1:${port}/api/${method}`, {
    method: 'POST',
    headers: { Authorization: 'apikey test-key' },
    body: JSON.stringify(body),
  });
  return [response.status, await response.json()];
}

async function publish(port, channel, n) {
  const [status, body] = await api(port, 'publish', { channel, data: { n } });
  assert.equal(status, 200, JSON.stringify(body));
  assert.ok(body.result && body.result.offset > 0 && body.result.epoch, JSON.stringify(body));
  return body.result;
}

const delivery = (ctx) => Number(ctx.tags?.['hermod-delivery']);

test('offline user gets every publication on connect, acks, and gets the rest again', async () => {
  const hermod = await startHermod(binary, config('a.db'));
  servers.push(hermod);
  // A backend's watcher of the receipts.
  const watcher = new Centrifuge(`ws://127.0.0.1:${hermod.port}/connection/websocket`, {
    websocket: WebSocket, token: jwt({ sub: 'backend' }),
  });
  clients.push(watcher);
  const receipts = [];
  const receiptsSub = watcher.newSubscription('receipts');
  receiptsSub.on('publication', (ctx) => receipts.push(ctx.data));
  const watching = nextEvent(receiptsSub, 'subscribed');
  watcher.connect();
  receiptsSub.subscribe();
  await watching;

  // User 42 is offline: the backend publishes 50.
  for (let n = 1; n <= 50; n++) {
    const r = await publish(hermod.port, 'inbox:#42', n);
    assert.equal(r.offset, n);
  }
  let [, status] = await api(hermod.port, 'inbox_status', { channel: 'inbox:#42' });
  assert.equal(status.result.publications.length, 50);
  assert.ok(status.result.publications.every((p) => p.status === 'pending'));

  // A fresh client of user 42: all 50, in order, first deliveries.
  const first = userClient(hermod.port, '42', 'inbox:#42');
  first.connect();
  await until(first, 'publication', () => first.got.length >= 50);
  assert.deepEqual(first.got.map((p) => p.data.n), Array.from({ length: 50 }, (_, i) => i + 1));
  assert.deepEqual(first.got.map((p) => p.offset), Array.from({ length: 50 }, (_, i) => i + 1));
  assert.ok(first.got.every((p) => delivery(p) === 1));

  // Acks 30: 29 by offsets, then up_to 30.
  const acked = await first.rpc('hermod.ack', {
    channel: 'inbox:#42', offsets: Array.from({ length: 29 }, (_, i) => i + 1),
  });
  assert.equal(acked.data.offsets.length, 29);
  assert.deepEqual((await first.rpc('hermod.ack', { channel: 'inbox:#42', up_to: 30 })).data,
                   { offsets: [30] });
  // Bad acks: twice, unknown offset, another user's inbox. Errors, nothing changes.
  await assert.rejects(first.rpc('hermod.ack', { channel: 'inbox:#42', offsets: [3] }));
  await assert.rejects(first.rpc('hermod.ack', { channel: 'inbox:#42', offsets: [31, 999] }));
  await assert.rejects(first.rpc('hermod.ack', { channel: 'inbox:#43', offsets: [1] }));
  await until(receiptsSub, 'publication', () => receipts.length >= 30);
  assert.deepEqual(receipts.slice(0, 30).map((r) => [r.channel, r.offset, r.status]),
                   Array.from({ length: 30 }, (_, i) => ['inbox:#42', i + 1, 'acked']));
  assert.ok(receipts[0].at > 0);

  [, status] = await api(hermod.port, 'inbox_status', { channel: 'inbox:#42', offsets: [30, 31] });
  assert.deepEqual(status.result.publications.map((p) => [p.offset, p.status, p.deliveries]),
                   [[30, 'acked', 1], [31, 'delivered', 1]]);

  // Reconnects as a fresh client: the other 20 again, counted as second deliveries.
  first.disconnect();
  const second = userClient(hermod.port, '42', 'inbox:#42');
  second.connect();
  await until(second, 'publication', () => second.got.length >= 20);
  assert.deepEqual(second.got.map((p) => p.offset), Array.from({ length: 20 }, (_, i) => i + 31));
  assert.ok(second.got.every((p) => delivery(p) === 2));
  second.disconnect();
  assert.equal((await hermod.stop()).code, 0);
  servers.length = 0;
});

test('a publication never acked arrives max_deliveries times, is dead, and redrive brings it back',
     async () => {
  const hermod = await startHermod(binary, config('b.db'));
  servers.push(hermod);
  const c = userClient(hermod.port, '42', 'fast:#42');
  const sub = c.newSubscription('fast:#42');
  const got = [];
  sub.on('publication', (ctx) => got.push(ctx));
  const subscribed = nextEvent(sub, 'subscribed');
  c.connect();
  sub.subscribe();
  await subscribed;
  const receiptsSub = c.newSubscription('receipts');
  const receipts = [];
  receiptsSub.on('publication', (ctx) => receipts.push(ctx.data));
  const watching = nextEvent(receiptsSub, 'subscribed');
  receiptsSub.subscribe();
  await watching;

  const { offset } = await publish(hermod.port, 'fast:#42', 1);
  await until(sub, 'publication', () => got.length >= 3);
  assert.deepEqual(got.map((p) => [p.offset, delivery(p)]), [[offset, 1], [offset, 2], [offset, 3]]);
  await until(receiptsSub, 'publication', () => receipts.length >= 1);
  assert.equal(receipts[0].status, 'dead');
  assert.equal(receipts[0].reason, 'max_deliveries');
  assert.equal(got.length, 3);  // the dead letter is not delivered again

  let [, dead] = await api(hermod.port, 'dead_letters', { user: '42' });
  assert.deepEqual(dead.result.dead_letters.map((d) => [d.channel, d.offset, d.reason, d.deliveries]),
                   [['fast:#42', offset, 'max_deliveries', 3]]);
  assert.deepEqual(dead.result.dead_letters[0].data, { n: 1 });

  // Redrive: back, delivery count reset; this time it is acked.
  const [, redriven] = await api(hermod.port, 'dead_letters_redrive', { channel: 'fast:#42' });
  assert.deepEqual(redriven.result.offsets, [offset]);
  await until(sub, 'publication', () => got.length >= 4);
  assert.deepEqual([got[3].offset, delivery(got[3])], [offset, 1]);
  await c.rpc('hermod.ack', { channel: 'fast:#42', offsets: [offset] });
  await until(receiptsSub, 'publication', () => receipts.length >= 2);
  assert.deepEqual([receipts[1].offset, receipts[1].status], [offset, 'acked']);
  const [, status] = await api(hermod.port, 'inbox_status', { channel: 'fast:#42' });
  assert.equal(status.result.publications[0].status, 'acked');
  [, dead] = await api(hermod.port, 'dead_letters', { channel: 'fast:#42' });
  assert.equal(dead.result.dead_letters.length, 0);

  // A rejected one is dead at once, with the client's reason.
  const second = await publish(hermod.port, 'fast:#42', 2);
  await until(sub, 'publication', () => got.some((p) => p.offset === second.offset));
  await c.rpc('hermod.reject', { channel: 'fast:#42', offsets: [second.offset], reason: 'bad' });
  [, dead] = await api(hermod.port, 'dead_letters', { channel: 'fast:#42' });
  assert.deepEqual(dead.result.dead_letters.map((d) => [d.offset, d.reason]), [[second.offset, 'bad']]);
  c.disconnect();
  assert.equal((await hermod.stop()).code, 0);
  servers.length = 0;
});

test('kill -9 between publish and ack: unacked arrive again, acked never', async () => {
  const first = await startHermod(binary, config('c.db'));
  servers.push(first);
  for (let n = 1; n <= 10; n++) await publish(first.port, 'inbox:#42', n);
  const c = userClient(first.port, '42', 'inbox:#42');
  c.connect();
  await until(c, 'publication', () => c.got.length >= 10);
  await c.rpc('hermod.ack', { channel: 'inbox:#42', up_to: 5 });
  c.disconnect();
  await first.kill();
  servers.length = 0;

  const second = await startHermod(binary, config('c.db'));
  servers.push(second);
  const d = userClient(second.port, '42', 'inbox:#42');
  d.connect();
  await until(d, 'publication', () => d.got.length >= 5);
  // Every unacked one is sent at connect, in offset order, in one go: an acked one would come
  // first.
  assert.deepEqual(d.got.map((p) => p.data.n), [6, 7, 8, 9, 10]);
  const [, status] = await api(second.port, 'inbox_status', { channel: 'inbox:#42' });
  assert.deepEqual(status.result.publications.map((p) => p.status),
                   ['acked', 'acked', 'acked', 'acked', 'acked',
                    'delivered', 'delivered', 'delivered', 'delivered', 'delivered']);
  // The offsets continue.
  assert.equal((await publish(second.port, 'inbox:#42', 11)).offset, 11);
  d.disconnect();
});
