// Cluster mode with the real centrifuge SDK (pinned in package.json) in Node: a nats-server on
// a port it picks itself, two hermod nodes with `broker: nats`. An SDK client on node B,
// subscribed to a channel with join_leave and presence, receives in order the publications
// made through node A's HTTP API and by an SDK client on node A, and that client's join and
// leave. Every wait is an event or a condition with a deadline; every process is stopped.
// Run: node cluster_test.mjs --hermod PATH [--nats-server PATH] (after `npm ci` here).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  argValue, connected, nextEvent, sdkClient, startHermod, startNats, subscribed, waitFor,
} from './harness.mjs';

const binary = argValue('--hermod');
assert.ok(binary, 'usage: --hermod PATH [--nats-server PATH]');
const natsBinary = argValue('--nats-server', 'nats-server');

function nodeConfig(natsPort) {
  return {
    broker: 'nats',
    nats: { url: `nats://127.0.0.1:${natsPort}`, prefix: 'sdkcluster', dial_timeout: '500ms' },
    api_key: 'k',
    allow_anonymous_connect_without_token: true,
    allow_subscribe_for_client: true,
    allow_subscribe_for_anonymous: true,
    allow_publish_for_subscriber: true,
    presence: true,
    allow_presence_for_subscriber: true,
    join_leave: true,
    force_push_join_leave: true,
    namespaces: [{ name: 'doc', allowed_delta_types: ['fossil'], allow_subscribe_for_client: true,
                   allow_subscribe_for_anonymous: true }],
  };
}

async function api(node, method, body) {
  const response = await fetch(`http://127.0.0.1:${node.port}/api/${method}`, {
    method: 'POST',
    headers: { Authorization: 'apikey k' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  const reply = await response.json();
  assert.ok(!reply.error, JSON.stringify(reply));
  return reply;
}

async function metric(node, name) {
  const text = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

let nats;
const nodes = [];
const clients = [];

function client(node) {
  return sdkClient(node.port, clients);
}

before(async () => {
  nats = await startNats(natsBinary);
  nodes.push(await startHermod(binary, nodeConfig(nats.port)));
  nodes.push(await startHermod(binary, nodeConfig(nats.port)));
  for (const node of nodes) {
    await waitFor(`node ${node.port} connected to NATS`,
                  async () => (await metric(node, 'hermod_broker_connected')) === 1);
  }
});

after(async () => {
  for (const c of clients) c.disconnect();
  const statuses = await Promise.all(nodes.map((node) => node.stop()));
  if (nats) await nats.stop();
  for (const status of statuses) assert.deepEqual(status, { code: 0, signal: null });
});

test('an SDK client on node B gets node A\'s publications in order, and its joins and leaves',
     async () => {
  const [a, b] = nodes;
  const onB = client(b);
  await connected(onB);
  const watch = await subscribed(onB, 'chat');
  const received = [];
  watch.on('publication', (ctx) => received.push(ctx.data));

  // Until node B's NATS subscription is known to be live: probes from node A until one crosses.
  await waitFor('a probe from node A on node B', async () => {
    await api(a, 'publish', { channel: 'chat', data: { probe: true } });
    const deadline = Date.now() + 200;
    while (Date.now() < deadline && received.length === 0) {
      await new Promise((resolve) => setTimeout(resolve, 10));  // poll interval
    }
    return received.length > 0;
  });
  // Probes still in flight arrive before what follows (one sender, one NATS connection).
  received.length = 0;
  const expected = [];

  await api(a, 'publish', { channel: 'chat', data: { n: 1, from: 'api' } });
  expected.push({ n: 1, from: 'api' });

  const onA = client(a);
  const ctxA = await connected(onA);
  const joined = nextEvent(watch, 'join', (ctx) => ctx.info.client === ctxA.client);
  const subA = await subscribed(onA, 'chat');
  const join = await joined;
  assert.equal(join.channel, 'chat');
  assert.equal(join.info.client, ctxA.client);

  await subA.publish({ n: 2, from: 'client' });
  expected.push({ n: 2, from: 'client' });
  await api(a, 'publish', { channel: 'chat', data: { n: 3, from: 'api' } });
  expected.push({ n: 3, from: 'api' });
  await subA.publish({ n: 4, from: 'client' });
  expected.push({ n: 4, from: 'client' });

  await waitFor('every publication on node B',
                () => received.filter((d) => !d.probe).length >= expected.length);
  assert.deepEqual(received.filter((d) => !d.probe), expected);

  // Presence on node B answers (it is per node: NATS carries joins and leaves, not presence).
  const presence = await watch.presence();
  assert.ok(onB._client in presence.clients, JSON.stringify(presence.clients));

  const left = nextEvent(watch, 'leave', (ctx) => ctx.info.client === ctxA.client);
  onA.disconnect();
  const leave = await left;
  assert.equal(leave.channel, 'chat');
  assert.equal(leave.info.client, ctxA.client);
  assert.deepEqual(received.filter((d) => !d.probe), expected);  // nothing extra came
});

test('a delta subscriber on node B gets node A\'s delta publications as fossil deltas',
     async () => {
  const [a, b] = nodes;
  const onB = client(b);
  await connected(onB);
  const sub = await subscribed(onB, 'doc:x', { delta: 'fossil' });
  assert.equal(sub._delta_negotiated, true);
  const received = [];
  sub.on('publication', (ctx) => received.push(ctx.data));
  await waitFor('a probe from node A on node B', async () => {
    await api(a, 'publish', { channel: 'doc:x', data: { probe: true } });
    const deadline = Date.now() + 200;
    while (Date.now() < deadline && received.length === 0) {
      await new Promise((resolve) => setTimeout(resolve, 10));  // poll interval
    }
    return received.length > 0;
  });
  const probes = () => received.filter((d) => d.probe).length;
  await waitFor('probes in flight', async () => {
    const seen = probes();
    await new Promise((resolve) => setTimeout(resolve, 100));  // poll interval
    return probes() === seen;
  });
  const fullBefore = sub.deltaStats().numFullPayloads;
  received.length = 0;
  const VERSIONS = 20;
  const doc = (v) => ({ v, body: `${'lorem ipsum '.repeat(200)}${v}` });
  for (let v = 0; v < VERSIONS; v++) {
    await api(a, 'publish', { channel: 'doc:x', data: doc(v), delta: true });
  }
  await waitFor('every version on node B', () => received.length >= VERSIONS);
  assert.deepEqual(received, Array.from({ length: VERSIONS }, (_, v) => doc(v)));
  // Relayed with its delta flag: node B sent each as a delta against its previous one (the
  // first may go in full: a delta against the small probe is not shorter).
  const stats = sub.deltaStats();
  assert.ok(stats.numFullPayloads <= fullBefore + 1, JSON.stringify(stats));
  assert.ok(stats.numDeltaPayloads >= VERSIONS - 1, JSON.stringify(stats));
});
