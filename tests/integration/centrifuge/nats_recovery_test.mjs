// engine "nats" with the real centrifuge SDK: a nats-server with JetStream (temporary store
// dir, a port of its choosing) and three hermod nodes A, B, C. The SDK client reaches node A
// through a TCP proxy the test controls and subscribes to a channel with recovery. While
// publications go on through the API of nodes B and C, node A is killed with SIGKILL and the
// proxy is switched to node B: the SDK reconnects by itself, resubscribes with `recovered:
// true` in the same epoch, and has received every publication exactly once, in offset order
// (offsets 1..N, each with the data the API answered that offset for).
// Run: node nats_recovery_test.mjs --hermod PATH [--nats-server PATH] (after `npm ci` here).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import {
  argValue, connected, nextEvent, sdkClient, startHermod, startNats, startProxy, waitFor,
} from './harness.mjs';

const binary = argValue('--hermod');
assert.ok(binary, 'usage: --hermod PATH [--nats-server PATH]');
const natsBinary = argValue('--nats-server', 'nats-server');

const DEADLINE_MS = 20000;
const BEFORE_KILL = 30;  // publications the client sees live from node A
const AFTER_RECOVERY = 30;  // publications made after the SDK recovered on node B

function nodeConfig(natsPort) {
  return {
    engine: 'nats',
    nats: { url: `nats://127.0.0.1:${natsPort}`, prefix: 'sdkrecovery', dial_timeout: '1s',
            reconnect_wait: '100ms' },
    api_key: 'k',
    allow_anonymous_connect_without_token: true,
    allow_subscribe_for_client: true,
    allow_subscribe_for_anonymous: true,
    history_size: 10000,
    history_ttl: '600s',
    force_recovery: true,
  };
}

async function publish(node, n) {
  const response = await fetch(`http://127.0.0.1:${node.port}/api/publish`, {
    method: 'POST',
    headers: { Authorization: 'apikey k' },
    body: JSON.stringify({ channel: 'feed', data: { n } }),
  });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.ok(body.result, JSON.stringify(body));
  return body.result;
}

let nats;
let proxy;
const nodes = [];
const clients = [];

after(async () => {
  for (const c of clients) c.disconnect();
  proxy?.close();
  for (const node of nodes) await node.kill();
  if (nats) await nats.stop();
});

test('the SDK recovers on node B after node A is killed, with no gap and no duplicate',
     async () => {
  nats = await startNats(natsBinary, { jetstream: true });
  const [a, b, c] = [await startHermod(binary, nodeConfig(nats.port)),
                     await startHermod(binary, nodeConfig(nats.port)),
                     await startHermod(binary, nodeConfig(nats.port))];
  nodes.push(a, b, c);
  proxy = await startProxy(a.port);
  const client = sdkClient(proxy.port, clients);
  await connected(client);

  const got = [];  // [offset, n] in the order the SDK handed them over
  const sub = client.newSubscription('feed');
  sub.on('publication', (ctx) => got.push([Number(ctx.offset), ctx.data.n]));
  const first = nextEvent(sub, 'subscribed');
  sub.subscribe();
  const { streamPosition } = await first;

  // Publications through nodes B and C, one at a time, until told to stop: the offset each
  // was answered with is what the client must get it with.
  const answered = new Map();  // offset -> n
  let n = 0;
  let stop = false;
  const publisher = (async () => {
    while (!stop) {
      n += 1;
      const result = await publish(n % 2 ? b : c, n);
      assert.equal(result.epoch, streamPosition.epoch);
      assert.ok(!answered.has(result.offset), `offset ${result.offset} answered twice`);
      answered.set(result.offset, n);
      await new Promise((resolve) => setTimeout(resolve, 5));  // pace: bounds the load
    }
  })();

  await waitFor(`${BEFORE_KILL} publications on node A`, () => got.length >= BEFORE_KILL,
                DEADLINE_MS);
  const recovered = nextEvent(sub, 'subscribed', () => true, DEADLINE_MS);
  await a.kill();
  proxy.retarget(b.port);
  const ctx = await recovered;
  assert.equal(ctx.wasRecovering, true);
  assert.equal(ctx.recovered, true);
  assert.equal(ctx.streamPosition.epoch, streamPosition.epoch);
  const atRecovery = n;
  await waitFor(`${AFTER_RECOVERY} more publications`, () => n >= atRecovery + AFTER_RECOVERY,
                DEADLINE_MS);
  stop = true;
  await publisher;

  const last = n;
  await waitFor(`publication ${last} on node B`, () => got.length >= last, DEADLINE_MS);
  const expected = Array.from({ length: last }, (_, i) => [i + 1, answered.get(i + 1)]);
  assert.deepEqual(got, expected);
  // Node B's subscriber is live: the next one arrives with the next offset.
  const next = nextEvent(sub, 'publication');
  const result = await publish(c, last + 1);
  assert.equal(result.offset, last + 1);
  assert.equal(Number((await next).offset), last + 1);

  client.disconnect();
  nodes.splice(0, 1);
  const statuses = [];
  while (nodes.length > 0) statuses.push(await nodes.shift().stop());
  for (const status of statuses) assert.deepEqual(status, { code: 0, signal: null });
});
