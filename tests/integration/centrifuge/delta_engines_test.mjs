// Delta compression (`delta: 'fossil'`) on each history engine, with the centrifuge SDK's
// JSON and Protobuf builds. `--engine nats`: two hermod nodes on one nats-server with
// JetStream (engine "nats": every publication comes back to every node from the stream),
// publications through node A's API with `delta: true`, delta subscribers on node A and,
// through a TCP proxy, on node B. `--engine sqlite|memory`: one node, the subscriber through
// the proxy. Every subscriber hands the application each version byte-equal to what was
// published, all but the first as fossil deltas, with a fraction of the payload bytes on the
// wire; after a cut the subscriber through the proxy (alone on its node: nobody there gets
// the publications made meanwhile) recovers them from the engine's history, the first in
// full and the others as deltas, and the next live one is a delta against the last recovered.
// Run: node delta_engines_test.mjs --hermod PATH --engine sqlite|nats|memory
//      [--nats-server PATH]
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { Centrifuge } from 'centrifuge';
import { Centrifuge as ProtobufCentrifuge } from 'centrifuge/build/protobuf';
import WebSocket from 'ws';

import {
  closedPort, argValue, connected, nextEvent, startHermod, startNats, startProxy, subscribed,
} from './harness.mjs';
import { bytesOf, documentText } from './delta_document.mjs';

const binary = argValue('--hermod');
const engine = argValue('--engine');
assert.ok(binary && ['sqlite', 'nats', 'memory'].includes(engine),
          'usage: --hermod PATH --engine sqlite|nats|memory [--nats-server PATH]');
const natsBinary = argValue('--nats-server', 'nats-server');

const VERSIONS = 40;
const MISSED = 10;  // published while the proxied subscriber is cut off
const DOC_BYTES = 8 * 1024;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hermod-delta-engines-'));
let nats;
let a;
let b;
let proxy;
const clients = [];

function config(natsPort) {
  const c = {
    api_key: 'test-key',
    allow_anonymous_connect_without_token: true,
    namespaces: [{
      name: 'doc',
      allowed_delta_types: ['fossil'],
      allow_subscribe_for_client: true,
      allow_subscribe_for_anonymous: true,
      history_size: 300,
      history_ttl: '300s',
      force_recovery: true,
    }],
  };
  if (engine === 'sqlite') {
    c.engine = 'sqlite';
    c.sqlite = { path: path.join(dir, 'hermod.db') };
  } else if (engine === 'nats') {
    c.engine = 'nats';
    c.nats = { url: `nats://127.0.0.1:${natsPort}`, prefix: 'deltaengines', dial_timeout: '1s',
               reconnect_wait: '100ms' };
  }
  return c;
}

before(async () => {
  if (engine === 'nats') {
    nats = await startNats(natsBinary, { jetstream: true });
    a = await startHermod(binary, config(nats.port));
    b = await startHermod(binary, config(nats.port));
  } else {
    a = await startHermod(binary, config(0));
    b = a;
  }
  proxy = await startProxy(b.port);
});

after(async () => {
  for (const c of clients) c.disconnect();
  proxy?.close();
  for (const node of new Set([a, b])) {
    if (node) assert.equal((await node.stop()).code, 0);
  }
  if (nats) await nats.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function publish(channel, v) {
  const response = await fetch(`http://127.0.0.1:${a.port}/api/publish`, {
    method: 'POST',
    headers: { Authorization: 'apikey test-key' },
    body: JSON.stringify({ channel, data: JSON.parse(documentText(v, DOC_BYTES)), delta: true }),
  });
  assert.equal(response.status, 200);
  const answer = await response.json();
  assert.ok(answer.result, JSON.stringify(answer));
}

function client(protobuf, port) {
  const options = { websocket: WebSocket, minReconnectDelay: 50, maxReconnectDelay: 300 };
  const url = `ws://127.0.0.1:${port}/connection/websocket`;
  const c = protobuf ? new ProtobufCentrifuge(url, { ...options, protocol: 'protobuf' })
                     : new Centrifuge(url, options);
  clients.push(c);
  return c;
}

// Every publication sub hands the app, in order.
function record(sub) {
  const got = [];
  sub.on('publication', (ctx) => got.push(ctx.data));
  return got;
}

async function until(what, predicate, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));  // poll interval of a condition
  }
}

for (const protobuf of [false, true]) {
  const name = protobuf ? 'protobuf' : 'json';
  test(`${engine} ${name}: live deltas on every node, and recovery as deltas`, async () => {
    const channel = `doc:${name}`;
    const c = client(protobuf, proxy.port);  // on node B (nats) through the proxy
    await connected(c);
    const sub = await subscribed(c, channel, { delta: 'fossil' });
    assert.equal(sub._delta_negotiated, true);
    // Another node's subscriber (nats); on one node the proxied one stays alone.
    const subs = [sub];
    let gotA = [];
    if (a !== b) {
      const onA = client(protobuf, a.port);
      await connected(onA);
      const subA = await subscribed(onA, channel, { delta: 'fossil' });
      subs.push(subA);
      gotA = record(subA);
    }
    const got = record(sub);

    const before = proxy.counts.down;
    let full = 0;
    for (let v = 0; v < VERSIONS; v++) {
      full += Buffer.byteLength(documentText(v, DOC_BYTES));
      await publish(channel, v);
    }
    await until(`${VERSIONS} versions`,
                () => got.length >= VERSIONS && (a === b || gotA.length >= VERSIONS));
    const wire = proxy.counts.down - before;
    for (let v = 0; v < VERSIONS; v++) {
      assert.equal(bytesOf(protobuf, got[v]), documentText(v, DOC_BYTES), `version ${v}`);
      if (a !== b) assert.equal(bytesOf(protobuf, gotA[v]), documentText(v, DOC_BYTES), `version ${v} on A`);
    }
    for (const s of subs) {
      const stats = s.deltaStats();
      assert.equal(stats.numFullPayloads, 1, JSON.stringify(stats));
      assert.equal(stats.numDeltaPayloads, VERSIONS - 1, JSON.stringify(stats));
    }
    console.log(`${engine} ${name}: ${VERSIONS} publications live: ${wire} B on the wire for ` +
                `${full} B of data`);
    assert.ok(wire < full / 10, `wire ${wire} B vs full ${full} B`);

    // Cut off: reconnects go to a dead port until MISSED versions are stored, then recover.
    proxy.retarget(await closedPort());
    const away = nextEvent(sub, 'subscribing');
    proxy.cutAll();
    await away;
    for (let v = VERSIONS; v < VERSIONS + MISSED; v++) await publish(channel, v);
    const back = nextEvent(sub, 'subscribed', (ctx) => ctx.wasRecovering, 20000);
    const beforeRecovery = proxy.counts.down;
    proxy.retarget(b.port);
    const ctx = await back;
    assert.equal(ctx.recovered, true);
    await until('the recovered versions', () => got.length >= VERSIONS + MISSED);
    const recoveryWire = proxy.counts.down - beforeRecovery;
    for (let v = VERSIONS; v < VERSIONS + MISSED; v++) {
      assert.equal(bytesOf(protobuf, got[v]), documentText(v, DOC_BYTES), `recovered version ${v}`);
    }
    const stats = sub.deltaStats();
    // The first recovered in full (the SDK starts a new chain), the others as deltas.
    assert.equal(stats.numFullPayloads, 2, JSON.stringify(stats));
    assert.equal(stats.numDeltaPayloads, VERSIONS - 1 + MISSED - 1, JSON.stringify(stats));
    assert.ok(recoveryWire < 3 * DOC_BYTES, `recovery: ${recoveryWire} B on the wire`);

    // Live again: the next delta applies to the last recovered.
    for (let v = VERSIONS + MISSED; v < VERSIONS + MISSED + 3; v++) await publish(channel, v);
    await until('live after recovery', () => got.length >= VERSIONS + MISSED + 3);
    for (let v = VERSIONS + MISSED; v < VERSIONS + MISSED + 3; v++) {
      assert.equal(bytesOf(protobuf, got[v]), documentText(v, DOC_BYTES), `version ${v}`);
    }
    assert.equal(sub.deltaStats().numDeltaPayloads, VERSIONS - 1 + MISSED - 1 + 3);
    assert.equal(got.length, VERSIONS + MISSED + 3);  // nothing twice
  });
}
