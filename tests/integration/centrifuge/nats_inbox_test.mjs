// Reliable delivery with engine "nats" and the real centrifuge SDK across a node killed with
// SIGKILL: a nats-server with JetStream (temporary store dir, a port of its choosing) and three
// hermod nodes A, B, C sharing an inbox namespace (user_subscribe_to_personal into "inbox",
// a short ack_timeout).
// - Inboxes: user 42's SDK client reaches node A through a TCP proxy the test controls, gets
//   N publications made through node C's API (half stored while the user was offline), and
//   their redelivery by A after ack_timeout, then acks some of them (hermod.ack). Node A is
//   killed as soon as the acks are answered; more are published while the user is away; the
//   proxy sends the SDK's reconnect to node B. There every unacked publication arrives again with its offset and data and a
//   higher delivery count, every new one arrives, no acked one ever does, and acking the
//   rest on B acks exactly those.
// - Scheduled delivery: a publication scheduled through node A a few seconds ahead; A is
//   killed before it is due; it fires exactly once in the cluster (once at an SDK subscriber
//   on B and one on C, once in the channel's history, once in the nodes' fired counters),
//   and each subscriber receives it within 1 s of deliver_at, by the test's clock.
// Run: node nats_inbox_test.mjs --hermod PATH [--nats-server PATH] (after `npm ci` here).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, test } from 'node:test';

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

import {
  argValue, closedPort, connected, nextEvent, startHermod, startNats, startProxy, waitFor,
} from './harness.mjs';

const binary = argValue('--hermod');
assert.ok(binary, 'usage: --hermod PATH [--nats-server PATH]');
const natsBinary = argValue('--nats-server', 'nats-server');

const SECRET = 'hmac-secret';
const DEADLINE_MS = 20000;
const BEFORE_KILL = 20;  // inbox publications the user gets from node A
const WHILE_AWAY = 5;    // published while the user is between nodes
const ACKED = new Set([1, 2, 3, 4, 5, 6, 7, 8, 12, 15, 20]);  // acked on node A
const SCHEDULE_AHEAD_MS = 4000;  // time to list it on every node and kill A before it is due

function nodeConfig(natsPort, prefix) {
  return {
    engine: 'nats',
    nats: { url: `nats://127.0.0.1:${natsPort}`, prefix, dial_timeout: '1s',
            reconnect_wait: '100ms' },
    api_key: 'k',
    token_hmac_secret_key: SECRET,
    allow_subscribe_for_client: true,
    history_size: 100,
    history_ttl: '600s',
    user_subscribe_to_personal: true,
    user_personal_channel_namespace: 'inbox',
    // Redelivered by time while connected (node A does, before it dies); never dead within
    // the test.
    namespaces: [{ name: 'inbox', inbox: true, ack_timeout: '1s', max_deliveries: 100 }],
  };
}

function jwt(claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${crypto.createHmac('sha256', SECRET).update(body).digest('base64url')}`;
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

function userClient(port, user) {
  const c = new Centrifuge(`ws://127.0.0.1:${port}/connection/websocket`, {
    websocket: WebSocket,
    token: jwt({ sub: user, exp: Math.floor(Date.now() / 1000) + 600 }),
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
  });
  clients.push(c);
  return c;
}

async function api(node, method, body) {
  const response = await fetch(`http://127.0.0.1:${node.port}/api/${method}`, {
    method: 'POST',
    headers: { Authorization: 'apikey k' },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  assert.equal(response.status, 200, JSON.stringify(answer));
  assert.ok(answer.result, JSON.stringify(answer));
  return answer.result;
}

async function metric(node, name) {
  const body = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
  const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'm').exec(body);
  return m ? Number(m[2]) : 0;
}

// Three nodes on one JetStream; A is the one the test kills.
async function cluster(prefix) {
  nats = await startNats(natsBinary, { jetstream: true });
  const started = [];
  for (let i = 0; i < 3; i++) {
    started.push(await startHermod(binary, nodeConfig(nats.port, prefix)));
  }
  nodes.push(...started);
  return started;
}

// SIGTERMs the nodes still running (each must exit 0), then nats-server.
async function stopAll() {
  for (const c of clients.splice(0)) c.disconnect();
  proxy?.close();
  proxy = undefined;
  const statuses = [];
  while (nodes.length > 0) statuses.push(await nodes.shift().stop());
  for (const status of statuses) assert.deepEqual(status, { code: 0, signal: null });
  await nats.stop();
  nats = undefined;
}

test('inbox: after node A is killed, node B delivers the unacked again and never the acked',
     async () => {
  const [a, b, c] = await cluster('sdkinbox');
  proxy = await startProxy(a.port);
  const client = userClient(proxy.port, '42');
  // Every inbox delivery: its offset, data, delivery count, and which connection got it.
  let connection = 0;
  client.on('connected', () => { connection += 1; });
  const got = [];
  client.on('publication', (ctx) => {
    if (ctx.channel !== 'inbox:#42') return;
    got.push({ offset: Number(ctx.offset), n: ctx.data?.n,
               delivery: Number(ctx.tags?.['hermod-delivery']), connection });
  });
  const data = new Map();  // offset -> n, as the API answered
  async function publish(n) {
    const r = await api(c, 'publish', { channel: 'inbox:#42', data: { n } });
    assert.ok(!data.has(r.offset), `offset ${r.offset} answered twice`);
    data.set(r.offset, n);
  }
  const offsets = (list) => new Set(list.map((p) => p.offset));
  const sorted = (set) => [...set].sort((x, y) => x - y);
  // Half while user 42 is offline (delivered when they connect to A), half while connected
  // (stored by C, delivered live by A).
  for (let n = 1; n <= BEFORE_KILL / 2; n++) await publish(100 + n);
  await connected(client);
  assert.equal(connection, 1);
  for (let n = BEFORE_KILL / 2 + 1; n <= BEFORE_KILL; n++) await publish(100 + n);
  await waitFor(`${BEFORE_KILL} publications on node A`,
                () => offsets(got).size === BEFORE_KILL, DEADLINE_MS);
  assert.deepEqual([...data.keys()], Array.from({ length: BEFORE_KILL }, (_, i) => i + 1));
  for (const p of got) assert.equal(p.n, data.get(p.offset));

  // A redelivers them after ack_timeout (delivery 2).
  await waitFor('node A redelivering every one', () => [...data.keys()].every(
    (o) => got.some((p) => p.offset === o && p.delivery >= 2)), DEADLINE_MS);

  // Acks on node A: a range and single offsets, each answered once stored. Then at once node
  // A dies with the user on it; new connections go to a closed port until the test sends them
  // to B, so what follows is published while the user is away.
  const acks = sorted(ACKED);
  assert.deepEqual((await client.rpc('hermod.ack', { channel: 'inbox:#42', up_to: 8 })).data,
                   { offsets: acks.filter((o) => o <= 8) });
  assert.deepEqual((await client.rpc('hermod.ack', {
    channel: 'inbox:#42', offsets: acks.filter((o) => o > 8),
  })).data, { offsets: acks.filter((o) => o > 8) });
  const away = nextEvent(client, 'connecting', () => true, DEADLINE_MS);
  proxy.retarget(await closedPort());
  await a.kill();
  nodes.splice(nodes.indexOf(a), 1);
  await away;
  // How many times each acked one was delivered (counted in NATS) before its ack.
  const before = await api(c, 'inbox_status', { channel: 'inbox:#42', offsets: acks });
  const ackedCounts = new Map(before.publications.map((p) => [p.offset, p.deliveries]));
  assert.deepEqual(before.publications.map((p) => p.status), acks.map(() => 'acked'));
  const onA = got.slice();
  const seenOnA = new Map();  // offset -> the highest delivery count node A sent
  for (const p of onA) seenOnA.set(p.offset, Math.max(seenOnA.get(p.offset) ?? 0, p.delivery));
  for (let n = 1; n <= WHILE_AWAY; n++) await publish(200 + n);

  const unacked = [...data.keys()].filter((o) => !ACKED.has(o));
  const back = nextEvent(client, 'connected', () => true, DEADLINE_MS);
  proxy.retarget(b.port);
  await back;
  const onB = () => got.filter((p) => p.connection === 2);
  await waitFor(`${unacked.length} publications on node B`,
                () => offsets(onB()).size >= unacked.length, DEADLINE_MS);

  // On B: each unacked one and no acked one, with its data; the ones A delivered with a
  // higher count.
  assert.deepEqual([...offsets(onB())].sort((x, y) => x - y), unacked);
  for (const p of onB()) {
    assert.equal(p.n, data.get(p.offset));
    assert.ok(p.delivery > (seenOnA.get(p.offset) ?? 0),
              `offset ${p.offset}: delivery ${p.delivery} on B, ${seenOnA.get(p.offset)} on A`);
  }
  // Nothing lost: every publication reached the user.
  assert.deepEqual([...offsets(got)].sort((x, y) => x - y), [...data.keys()]);

  // Acking everything on B acks exactly the unacked ones: none was counted acked before.
  assert.deepEqual((await client.rpc('hermod.ack', { channel: 'inbox:#42', up_to: data.size }))
    .data, { offsets: unacked });
  const status = await api(c, 'inbox_status', { channel: 'inbox:#42' });
  assert.deepEqual(status.publications.map((p) => [p.offset, p.status]),
                   [...data.keys()].map((o) => [o, 'acked']));
  // The stored counts are at least what the user saw (a node may count one and die before
  // sending it); an acked one was delivered exactly as often as counted at its ack, and its
  // count never moved.
  const seen = new Map();
  for (const p of got) seen.set(p.offset, Math.max(seen.get(p.offset) ?? 0, p.delivery));
  for (const p of status.publications) {
    assert.ok(p.deliveries >= seen.get(p.offset), JSON.stringify(p));
    if (!ACKED.has(p.offset)) continue;
    assert.equal(p.deliveries, ackedCounts.get(p.offset), JSON.stringify(p));
    assert.equal(got.filter((q) => q.offset === p.offset).length, p.deliveries,
                 `acked offset ${p.offset} delivered more often than counted`);
  }
  await stopAll();
});

test('a publication scheduled on node A, killed before it is due, fires once on time',
     async () => {
  const [a, b, c] = await cluster('sdkschedule');
  const received = [];  // [node, data, Date.now() at receipt]
  for (const [name, node] of [['b', b], ['c', c]]) {
    const client = userClient(node.port, `watcher-${name}`);
    await connected(client);
    const sub = client.newSubscription('job');
    sub.on('publication', (ctx) => received.push([name, ctx.data, Date.now()]));
    const subscribed = nextEvent(sub, 'subscribed');
    sub.subscribe();
    await subscribed;
  }

  const at = Date.now() + SCHEDULE_AHEAD_MS;
  const { schedule_id: id } = await api(a, 'publish',
                                        { channel: 'job', data: { run: 1 }, deliver_at: at });
  assert.ok(id);
  for (const node of [b, c]) {
    await waitFor('the schedule listed on every node', async () =>
      (await api(node, 'scheduled', {})).scheduled.some((s) => s.schedule_id === id), DEADLINE_MS);
  }
  await a.kill();
  nodes.splice(nodes.indexOf(a), 1);
  assert.ok(Date.now() < at - 500, 'node A killed too late: the machine is too slow for the test');

  await waitFor('the firing at both subscribers', () => received.length >= 2,
                at + DEADLINE_MS - Date.now());
  for (const [node, payload, when] of received) {
    assert.deepEqual(payload, { run: 1 });
    assert.ok(Math.abs(when - at) <= 1000, `received on ${node} ${when - at} ms from deliver_at`);
  }
  // Fired once: forgotten everywhere, counted by one node, once in history; then a marker
  // through the same channel reaches both subscribers with nothing else before it.
  for (const node of [b, c]) {
    await waitFor('nothing pending', async () =>
      (await api(node, 'scheduled', {})).scheduled.length === 0, DEADLINE_MS);
  }
  const fired = async () => await metric(b, 'hermod_scheduled_fired_total') +
                            await metric(c, 'hermod_scheduled_fired_total');
  await waitFor('the firing counted', async () => await fired() >= 1, DEADLINE_MS);
  await api(c, 'publish', { channel: 'job', data: { marker: true } });
  const payloadsAt = (node) =>
    received.filter(([name]) => name === node).map(([, payload]) => payload);
  await waitFor('the marker at both subscribers', () =>
    ['b', 'c'].every((node) => payloadsAt(node).some((p) => p.marker)), DEADLINE_MS);
  for (const node of ['b', 'c']) assert.deepEqual(payloadsAt(node), [{ run: 1 }, { marker: true }]);
  assert.equal(await fired(), 1);
  const history = await api(b, 'history', { channel: 'job', limit: -1 });
  assert.deepEqual(history.publications.map((p) => p.data), [{ run: 1 }, { marker: true }]);
  await stopAll();
});
