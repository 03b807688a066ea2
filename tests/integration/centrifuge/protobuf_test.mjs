// hermod against the centrifuge SDK's Protobuf build (`centrifuge/build/protobuf`,
// `protocol: 'protobuf'`) in Node: the subprotocol handshake, connect with a token,
// subscribe, client publish (JSON and binary data), an API publication arriving as its JSON
// text, history (binary data byte-exact), presence, keepalive, recovery after a cut
// connection, a JSON and a Protobuf subscriber on one channel, the query's `format=protobuf`
// and `cf_protocol=protobuf`, and malformed Protobuf answered with 3501 and counted.
// Run: node protobuf_test.mjs --hermod PATH (after `npm ci` here).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';

import { Centrifuge } from 'centrifuge';
import { Centrifuge as ProtobufCentrifuge } from 'centrifuge/build/protobuf';
import WebSocket from 'ws';

import {
  connected, nextEvent, startHermod, startProxy, subscribed,
} from './harness.mjs';

const binary = process.argv[process.argv.indexOf('--hermod') + 1];
assert.ok(process.argv.includes('--hermod') && binary, 'usage: --hermod PATH');

const CONFIG = {
  allow_subscribe_for_client: true,
  allow_publish_for_subscriber: true,
  presence: true,
  allow_presence_for_subscriber: true,
  join_leave: true,
  history_size: 100,
  history_ttl: '300s',
  allow_history_for_subscriber: true,
  force_recovery: true,
  api_key: 'test-key',
  token_hmac_secret_key: 'hmac-secret',
  ping_interval: '1s',
  pong_timeout: '500ms',
};

let hermod;
let proxy;
const clients = [];

function jwt(claims, secret = 'hmac-secret') {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);

function pbClient(user, port = hermod.port, query = '') {
  const c = new ProtobufCentrifuge(`ws://127.0.0.1:${port}/connection/websocket${query}`, {
    websocket: WebSocket,
    protocol: 'protobuf',
    token: jwt({ sub: user, exp: now() + 600, info: { name: user } }),
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
  });
  clients.push(c);
  return c;
}

async function api(method, body) {
  const response = await fetch(`http://127.0.0.1:${hermod.port}/api/${method}`, {
    method: 'POST',
    headers: { Authorization: 'apikey test-key' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  return response.json();
}

// A protobuf varint.
function varint(n) {
  const out = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
const text = (bytes) => Buffer.from(bytes).toString('utf8');
const encode = (o) => new TextEncoder().encode(JSON.stringify(o));

before(async () => {
  hermod = await startHermod(binary, CONFIG);
  proxy = await startProxy(hermod.port);
});

after(async () => {
  for (const c of clients) c.disconnect();
  proxy.close();
  const status = await hermod.stop();
  assert.equal(status.code, 0, 'hermod exits cleanly on SIGTERM');
});

test('the 101 echoes the centrifuge-protobuf subprotocol', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${hermod.port}/connection/websocket`,
                           ['centrifuge-protobuf']);
  await new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('error', reject);
  });
  assert.equal(ws.protocol, 'centrifuge-protobuf');
  ws.close();
});

test('connects with a token, subscribes, publishes and receives an API publication', async () => {
  const c = pbClient('alice');
  const ctx = await connected(c);
  assert.equal(ctx.transport, 'websocket');
  const sub = await subscribed(c, 'news');
  // A client publication with JSON data comes back as its bytes.
  let pub = nextEvent(sub, 'publication');
  await sub.publish(encode({ hello: 'world' }));
  let got = await pub;
  assert.deepEqual(JSON.parse(text(got.data)), { hello: 'world' });
  assert.equal(got.info.user, 'alice');
  assert.ok(got.offset > 0);
  // An API publication reaches the Protobuf client as its JSON text.
  pub = nextEvent(sub, 'publication');
  await api('publish', { channel: 'news', data: { n: 1, s: 'é' } });
  got = await pub;
  assert.equal(text(got.data), '{"n":1,"s":"é"}');
  // Presence and presence stats.
  const presence = await sub.presence();
  assert.equal(Object.values(presence.clients)[0].user, 'alice');
  const stats = await sub.presenceStats();
  assert.equal(stats.numClients, 1);
  assert.equal(stats.numUsers, 1);
});

test('binary data stays byte-exact, live and in history', async () => {
  const c = pbClient('bob');
  await connected(c);
  const sub = await subscribed(c, 'bin');
  const bytes = new Uint8Array([0, 1, 2, 10, 13, 255, 254, 0x7b]);
  const pub = nextEvent(sub, 'publication');
  await sub.publish(bytes);
  const got = await pub;
  assert.deepEqual(Array.from(got.data), Array.from(bytes));
  await sub.publish(encode({ after: true }));
  const history = await sub.history({ limit: 10 });
  assert.equal(history.publications.length, 2);
  assert.deepEqual(Array.from(history.publications[0].data), Array.from(bytes));
  assert.equal(text(history.publications[1].data), '{"after":true}');
  // The API's history shows the binary one as b64data.
  const answer = await api('history', { channel: 'bin', limit: 10 });
  assert.equal(answer.result.publications[0].b64data, Buffer.from(bytes).toString('base64'));
});

test('a JSON and a Protobuf subscriber on one channel both receive', async () => {
  const pbc = pbClient('carol');
  await connected(pbc);
  const pbSub = await subscribed(pbc, 'mixed');
  const jsonc = new Centrifuge(`ws://127.0.0.1:${hermod.port}/connection/websocket`, {
    websocket: WebSocket,
    token: jwt({ sub: 'carol-json', exp: now() + 600 }),
  });
  clients.push(jsonc);
  await connected(jsonc);
  const jsonSub = await subscribed(jsonc, 'mixed');
  const both = [nextEvent(pbSub, 'publication'), nextEvent(jsonSub, 'publication')];
  await api('publish', { channel: 'mixed', data: { to: 'both' } });
  const [pb, json] = await Promise.all(both);
  assert.equal(text(pb.data), '{"to":"both"}');
  assert.deepEqual(json.data, { to: 'both' });
  // A Protobuf client's JSON publication reaches the JSON subscriber as JSON.
  const next = nextEvent(jsonSub, 'publication');
  await pbSub.publish(encode({ from: 'protobuf' }));
  assert.deepEqual((await next).data, { from: 'protobuf' });
});

test('recovers what it missed after a cut connection', async () => {
  const c = pbClient('dave', proxy.port);
  await connected(c);
  const sub = await subscribed(c, 'recover');
  const first = nextEvent(sub, 'publication');
  await api('publish', { channel: 'recover', data: { n: 0 } });
  await first;
  const disconnected = nextEvent(c, 'connecting');
  proxy.cutAll();
  await disconnected;
  for (let n = 1; n <= 3; n++) await api('publish', { channel: 'recover', data: { n } });
  const seen = [];
  const done = new Promise((resolve) => {
    sub.on('publication', (ctx) => {
      seen.push(JSON.parse(text(ctx.data)).n);
      if (seen.length === 3) resolve();
    });
  });
  const resubscribed = await nextEvent(sub, 'subscribed');
  assert.equal(resubscribed.recovered, true);
  await done;
  assert.deepEqual(seen, [1, 2, 3]);
});

test('format=protobuf or cf_protocol=protobuf in the query picks Protobuf too', async () => {
  for (const query of ['?format=protobuf', '?cf_protocol=protobuf']) {
    // A raw client that offers no subprotocol: the query alone decides.
    const ws = new WebSocket(`ws://127.0.0.1:${hermod.port}/connection/websocket${query}`);
    await new Promise((resolve) => ws.on('open', resolve));
    assert.equal(ws.protocol, '');
    const reply = new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({ data, isBinary })));
    // Command{id: 1, connect: {token}}, length-delimited.
    const token = Buffer.from(jwt({ sub: 'erin', exp: now() + 600 }));
    const connect = Buffer.concat([Buffer.from([0x0a]), varint(token.length), token]);
    const command = Buffer.concat([Buffer.from([0x08, 0x01, 0x22]), varint(connect.length),
                                   connect]);
    ws.send(Buffer.concat([varint(command.length), command]));
    const { data, isBinary } = await reply;
    assert.ok(isBinary, query);
    // Reply{id: 1, connect: ConnectResult{client: ...}}: a one-byte length, 0x08 0x01, 0x2a.
    assert.equal(data[0], data.length - 1, query);
    assert.deepEqual(Array.from(data.subarray(1, 4)), [0x08, 0x01, 0x2a], query);
    ws.close();
  }
});

test('answers the server\'s pings (empty Replies) with pongs (empty Commands)', async () => {
  const c = pbClient('frank');
  await connected(c);
  let disconnects = 0;
  c.on('disconnected', () => disconnects++);
  c.on('connecting', () => disconnects++);
  // Three ping intervals: a client that did not answer would be cut with 3012 after one.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  assert.equal(disconnects, 0);
  assert.equal(c.state, 'connected');
});

test('malformed Protobuf is disconnected with 3501 and counted', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${hermod.port}/connection/websocket`,
                           ['centrifuge-protobuf']);
  await new Promise((resolve) => ws.on('open', resolve));
  const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  // A length prefix that promises more bytes than the message holds.
  ws.send(Buffer.from([0x7f, 0x08, 0x01]));
  assert.equal(await closed, 3501);
  const metrics = await (await fetch(`http://127.0.0.1:${hermod.port}/metrics`)).text();
  const m = /hermod_client_malformed_messages_total\{format="protobuf"\} (\d+)/.exec(metrics);
  assert.ok(m && Number(m[1]) >= 1, 'counted');
});
