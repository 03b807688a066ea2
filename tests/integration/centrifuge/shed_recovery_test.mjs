// With the real centrifuge SDK: a recoverable subscriber that stalls (the proxy stops
// reading for it) while the server API publishes is told at once when a publication cannot be
// queued for it (an `unsubscribe` push with 2500, behind the publications already queued), and
// the SDK, resubscribing with recovery, ends with every publication exactly once, in order.
// Run: node shed_recovery_test.mjs --hermod PATH (after `npm ci` here).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  connected, nextEvent, sdkClient, startHermod, startProxy, subscribed,
} from './harness.mjs';

const binary = process.argv[process.argv.indexOf('--hermod') + 1];
assert.ok(process.argv.includes('--hermod') && binary, 'usage: --hermod PATH');

const COUNT = 2500;
const PAD = 'x'.repeat(8000);  // 20 MB in all: more than the kernel's buffers on the way hold
const CONFIG = {
  allow_anonymous_connect_without_token: true,
  allow_subscribe_for_client: true,
  allow_subscribe_for_anonymous: true,
  history_size: COUNT,
  history_ttl: '300s',
  force_recovery: true,
  client_recovery_max_publication_limit: COUNT,
  api_key: 'test-key',
  ping_interval: '300s',
  // A low watermark, so the queue reaches it soon after the kernel's buffers fill, and room
  // for the recovering subscribe reply (replies are never shed). The normal deadline stays
  // far away: this test is about the unsubscribe, not the cut.
  send_queue: { drop_low_bytes: 128 * 1024, drop_normal_bytes: 256 * 1024, normal_deadline_ms: 120000 },
  websocket: { max_write_buffer_bytes: 64 << 20, compression: { enabled: false } },
};

let hermod;
let proxy;
const clients = [];

async function metric(name, label) {
  const text = await (await fetch(`http://127.0.0.1:${hermod.port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && line.includes(label)) sum += Number(line.split(' ').pop());
  }
  return sum;
}

async function publish(n) {
  const response = await fetch(`http://127.0.0.1:${hermod.port}/api/publish`, {
    method: 'POST',
    headers: { Authorization: 'apikey test-key' },
    body: JSON.stringify({ channel: 'feed', data: { n, pad: PAD } }),
  });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.ok(body.result, JSON.stringify(body));
}

before(async () => {
  hermod = await startHermod(binary, CONFIG);
  proxy = await startProxy(hermod.port);
});

after(async () => {
  for (const c of clients) c.disconnect();
  if (proxy) proxy.close();
  if (hermod) assert.deepEqual(await hermod.stop(), { code: 0, signal: null });
});

test('a stalled recoverable subscriber is told with 2500 and recovers with no gap', async () => {
  const c = sdkClient(proxy.port, clients);
  await connected(c);
  const sub = await subscribed(c, 'feed');
  const received = [];
  // By offset: 50 requests in flight publish in an order of their own, which the offsets
  // (the channel's stream) record.
  sub.on('publication', (ctx) => received.push(Number(ctx.offset)));
  const told = nextEvent(sub, 'subscribing', (ctx) => ctx.code === 2500, 60000);

  proxy.pauseAll();
  // The API, 50 requests in flight at a time.
  for (let n = 0; n < COUNT; n += 50) {
    await Promise.all(Array.from({ length: Math.min(50, COUNT - n) }, (_, i) => publish(n + i)));
  }
  assert.ok(await metric('hermod_send_queue_dropped_total', 'reason="told"') > 0,
            'the subscriber was never shed: the kernel buffered everything');
  assert.equal(await metric('hermod_send_queue_dropped_total', 'reason="shed"'), 0);
  proxy.resumeAll();

  const ctx = await told;
  assert.equal(ctx.reason, 'insufficient state');
  const again = await nextEvent(sub, 'subscribed', () => true, 60000);
  assert.equal(again.wasRecovering, true);
  assert.equal(again.recovered, true);
  while (received.length < COUNT) await nextEvent(sub, 'publication', () => true, 60000);
  // Every publication exactly once, in the stream's order: no gap, no duplicate.
  assert.deepEqual(received, Array.from({ length: COUNT }, (_, i) => i + 1));
  assert.equal(await metric('hermod_slow_consumer_disconnects_total', ''), 0);
});
