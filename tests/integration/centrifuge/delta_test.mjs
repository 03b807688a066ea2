// Delta compression (Centrifugo's, `delta: 'fossil'`) with the centrifuge SDK's JSON and
// Protobuf builds in Node: a subscriber that asks for deltas gets 100 successive versions of
// a 10 KiB document (a few bytes change in each, published through the API with
// `delta: true`) and hands the application each one byte-equal to what was published, while
// the bytes on the wire (counted by a TCP proxy) are a fraction of the full payloads; after a
// cut it recovers the missed versions, still as deltas. A subscriber that does not ask gets
// full data on the same channel, and a namespace without allowed_delta_types grants none.
// Binary data (a Protobuf client's) reaches a JSON delta subscriber as its base64 string
// (the SDK JSON-parses every payload of a delta subscription).
// Run: node delta_test.mjs --hermod PATH (after `npm ci` here).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Centrifuge } from 'centrifuge';
import { Centrifuge as ProtobufCentrifuge } from 'centrifuge/build/protobuf';
import WebSocket from 'ws';

import { connected, nextEvent, startHermod, startProxy, subscribed } from './harness.mjs';
import { bytesOf, documentText } from './delta_document.mjs';

const binary = process.argv[process.argv.indexOf('--hermod') + 1];
assert.ok(process.argv.includes('--hermod') && binary, 'usage: --hermod PATH');

const CONFIG = {
  allow_subscribe_for_client: true,
  allow_anonymous_connect_without_token: true,
  allow_subscribe_for_anonymous: true,
  api_key: 'test-key',
  // The binary test publishes from one client faster than the default 100/s, burst 10.
  client_command_rate_limit: { publish: { rate: 10000, burst: 1000 } },
  namespaces: [
    {
      name: 'doc',
      allowed_delta_types: ['fossil'],
      allow_subscribe_for_client: true,
      allow_subscribe_for_anonymous: true,
      history_size: 300,
      history_ttl: '300s',
      force_recovery: true,
    },
    { name: 'plain', allow_subscribe_for_client: true, allow_subscribe_for_anonymous: true },
    {
      name: 'bin',
      allowed_delta_types: ['fossil'],
      allow_subscribe_for_client: true,
      allow_subscribe_for_anonymous: true,
      allow_publish_for_subscriber: true,
    },
  ],
};

const VERSIONS = 100;
const DOC_BYTES = 10 * 1024;

let hermod;
let proxy;
const clients = [];

before(async () => {
  hermod = await startHermod(binary, CONFIG);
  proxy = await startProxy(hermod.port);
});

after(async () => {
  for (const c of clients) c.disconnect();
  proxy.close();
  const status = await hermod.stop();
  assert.equal(status.code, 0);
});

async function api(method, body) {
  const response = await fetch(`http://127.0.0.1:${hermod.port}/api/${method}`, {
    method: 'POST',
    headers: { Authorization: 'apikey test-key' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  const answer = await response.json();
  assert.equal(answer.error, undefined, JSON.stringify(answer));
  return answer;
}

function client(protobuf, port = proxy.port) {
  const options = { websocket: WebSocket, minReconnectDelay: 50, maxReconnectDelay: 300 };
  const url = `ws://127.0.0.1:${port}/connection/websocket`;
  const c = protobuf ? new ProtobufCentrifuge(url, { ...options, protocol: 'protobuf' })
                     : new Centrifuge(url, options);
  clients.push(c);
  return c;
}

// Collects the publications sub hands the app until `count` arrived.
function collect(sub, count) {
  const got = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${got.length} of ${count}`)), 20000);
    sub.on('publication', (ctx) => {
      got.push(ctx.data);
      if (got.length === count) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

for (const protobuf of [false, true]) {
  const name = protobuf ? 'protobuf' : 'json';
  test(`${name}: 100 versions arrive byte-exact as fossil deltas, and recover after a cut`,
       async () => {
    const channel = `doc:${name}`;
    const c = client(protobuf);
    await connected(c);
    const sub = await subscribed(c, channel, { delta: 'fossil' });
    // The SDK's own view: the server granted delta (subscribe result `delta: true`).
    assert.equal(sub._delta_negotiated, true);
    const plainClient = client(protobuf, hermod.port);
    await connected(plainClient);
    const plain = await subscribed(plainClient, channel);
    assert.equal(plain._delta_negotiated, false);

    const received = collect(sub, VERSIONS);
    const plainReceived = collect(plain, VERSIONS);
    const before = proxy.counts.down;
    let full = 0;
    for (let v = 0; v < VERSIONS; v++) {
      const text = documentText(v, DOC_BYTES);
      full += Buffer.byteLength(text);
      await api('publish', { channel, data: JSON.parse(text), delta: true });
    }
    const got = await received;
    const wire = proxy.counts.down - before;
    for (let v = 0; v < VERSIONS; v++) {
      assert.equal(bytesOf(protobuf, got[v]), documentText(v, DOC_BYTES), `version ${v}`);
    }
    const plainGot = await plainReceived;
    for (let v = 0; v < VERSIONS; v++) assert.equal(bytesOf(protobuf, plainGot[v]), documentText(v, DOC_BYTES));
    const stats = sub.deltaStats();
    assert.equal(stats.numFullPayloads, 1);
    assert.equal(stats.numDeltaPayloads, VERSIONS - 1);
    console.log(`${name}: ${VERSIONS} publications of ${DOC_BYTES} B: ${wire} B on the wire ` +
                `for ${full} B of data (${(100 * wire / full).toFixed(1)}%)`);
    assert.ok(wire < full / 10, `wire ${wire} B vs full ${full} B`);

    // A cut: the SDK reconnects and recovers what was published meanwhile, then goes on live.
    const gone = nextEvent(c, 'disconnected', () => true).catch(() => {});
    const back = nextEvent(sub, 'subscribed', (ctx) => ctx.wasRecovering);
    proxy.cutAll();
    await Promise.race([gone, new Promise((r) => setTimeout(r, 100))]);
    const more = collect(sub, 10);
    for (let v = VERSIONS; v < VERSIONS + 5; v++) {
      await api('publish', { channel, data: JSON.parse(documentText(v, DOC_BYTES)), delta: true });
    }
    const ctx = await back;
    assert.equal(ctx.recovered, true);
    for (let v = VERSIONS + 5; v < VERSIONS + 10; v++) {
      await api('publish', { channel, data: JSON.parse(documentText(v, DOC_BYTES)), delta: true });
    }
    const after = await more;
    for (let i = 0; i < 10; i++) {
      assert.equal(bytesOf(protobuf, after[i]), documentText(VERSIONS + i, DOC_BYTES), `version ${VERSIONS + i}`);
    }
    assert.ok(sub.deltaStats().numDeltaPayloads >= VERSIONS - 1 + 8);
  });
}

test('a namespace without allowed_delta_types does not grant delta', async () => {
  const c = client(false);
  await connected(c);
  const sub = await subscribed(c, 'plain:x', { delta: 'fossil' });
  assert.equal(sub._delta_negotiated, false);
  const got = collect(sub, 2);
  await api('publish', { channel: 'plain:x', data: { a: 1 }, delta: true });
  await api('publish', { channel: 'plain:x', data: { a: 2 }, delta: true });
  assert.deepEqual(await got, [{ a: 1 }, { a: 2 }]);
});

// Binary publications (a Protobuf client's bytes, not JSON) to a JSON delta subscriber: the
// JSON protocol names binary data by its base64 text, so the app gets each one's base64
// string (and a JSON one its value), in order. (A client's publication carries no delta flag,
// so each goes in full; a recovery would send them as deltas of that text.)
test('json: binary data reaches a delta subscriber as its base64 string', async () => {
  const channel = 'bin:x';
  const publisher = client(true, hermod.port);
  await connected(publisher);
  const pbSub = await subscribed(publisher, channel);
  const c = client(false);
  await connected(c);
  const sub = await subscribed(c, channel, { delta: 'fossil' });
  assert.equal(sub._delta_negotiated, true);
  const COUNT = 20;
  const JSON_AT = 10;  // one JSON publication among the binary ones
  const payloads = [];
  for (let i = 0; i < COUNT; i++) {
    if (i === JSON_AT) {
      payloads.push(Buffer.from(JSON.stringify({ i, text: 'z'.repeat(300) })));
      continue;
    }
    const bytes = Buffer.alloc(300);
    for (let k = 0; k < bytes.length; k++) bytes[k] = (k * 31) & 0xff;  // 0xff etc.: not UTF-8
    for (let k = 0; k < 3; k++) bytes[(i * 97 + k * 101) % bytes.length] = 0xfe;
    payloads.push(bytes);
  }
  const received = collect(sub, COUNT);
  for (const bytes of payloads) await pbSub.publish(new Uint8Array(bytes));
  const got = await received;
  for (let i = 0; i < COUNT; i++) {
    if (i === JSON_AT) {
      assert.deepEqual(got[i], JSON.parse(payloads[i].toString('utf8')));
    } else {
      assert.equal(got[i], payloads[i].toString('base64'), `publication ${i}`);
    }
  }
  assert.equal(sub.deltaStats().numFullPayloads, COUNT);
});
