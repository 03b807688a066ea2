// Bidirectional emulation against the real centrifuge SDK in Node: the http_stream and sse
// transports with commands POSTed to /emulation, each alone and as the SDK's fallback chain
// behind a WebSocket that cannot connect; the Protobuf build over http_stream; and the
// endpoints' HTTP side (404 for a disabled transport and an unknown node, 400 and a metric
// for a malformed request, CORS preflight, a closed stream's session runs no more commands).
// Node has no EventSource: the sse transport gets a small one over fetch (the browser test
// uses Chromium's own).
// Run: node emulation_test.mjs --hermod PATH (after `npm ci` here).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';

import { Centrifuge } from 'centrifuge';
import { Centrifuge as ProtobufCentrifuge } from 'centrifuge/build/protobuf';
import WebSocket from 'ws';

import { closedPort, nextEvent, startHermod, startProxy, subscribed } from './harness.mjs';

const binary = process.argv[process.argv.indexOf('--hermod') + 1];
assert.ok(process.argv.includes('--hermod') && binary, 'usage: --hermod PATH');

const CONFIG = {
  http_stream: true,
  sse: true,
  allow_subscribe_for_client: true,
  allow_publish_for_subscriber: true,
  presence: true,
  allow_presence_for_subscriber: true,
  history_size: 100,
  history_ttl: '300s',
  allow_history_for_subscriber: true,
  force_recovery: true,
  api_key: 'test-key',
  token_hmac_secret_key: 'hmac-secret',
  allowed_origins: ['http://app.example'],
};

let hermod;
let proxy;
const clients = [];

function jwt(claims, secret = 'hmac-secret') {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
}
const token = (user) => jwt({ sub: user, exp: Math.floor(Date.now() / 1000) + 600 });

// A minimal EventSource over fetch: what the SDK uses of it (onopen, onmessage, onerror,
// close), `data:` lines joined per event.
class FetchEventSource {
  constructor(url) {
    this._abort = new AbortController();
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    fetch(url, { headers: { Accept: 'text/event-stream' }, signal: this._abort.signal })
      .then(async (response) => {
        if (response.status !== 200) throw new Error(`status ${response.status}`);
        if (this.onopen) this.onopen();
        const decoder = new TextDecoder();
        let buffer = '';
        let data = [];
        for await (const chunk of response.body) {
          buffer += decoder.decode(chunk, { stream: true });
          let nl;
          while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, nl).replace(/\r$/, '');
            buffer = buffer.slice(nl + 1);
            if (line === '') {
              if (data.length > 0 && this.onmessage) this.onmessage({ data: data.join('\n') });
              data = [];
            } else if (line.startsWith('data:')) {
              data.push(line.slice(5).replace(/^ /, ''));
            }
          }
        }
        throw new Error('stream ended');
      })
      .catch((e) => {
        if (!this._abort.signal.aborted && this.onerror) this.onerror(e);
      });
  }
  close() {
    this._abort.abort();
  }
}

function client(transports, user, Sdk = Centrifuge, extra = {}) {
  const c = new Sdk(transports, {
    token: token(user),
    emulationEndpoint: `http://127.0.0.1:${proxy.port}/emulation`,
    eventsource: FetchEventSource,
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
    ...extra,
  });
  clients.push(c);
  return c;
}

const at = (path) => `http://127.0.0.1:${proxy.port}${path}`;
const HTTP_STREAM = () => ({ transport: 'http_stream', endpoint: at('/connection/http_stream') });
const SSE = () => ({ transport: 'sse', endpoint: at('/connection/sse') });

async function api(method, body) {
  const response = await fetch(`http://127.0.0.1:${hermod.port}/api/${method}`, {
    method: 'POST',
    headers: { Authorization: 'apikey test-key' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  return response.json();
}

async function connect(c) {
  const ctx = nextEvent(c, 'connected');
  c.connect();
  return ctx;
}

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

// Everything a client does, over whatever transport c uses.
async function scenario(c, name, transport) {
  const ctx = await connect(c);
  assert.equal(ctx.transport, transport);
  const channel = `room-${name}`;
  const sub = await subscribed(c, channel);

  // Client publish, received by itself.
  let got = nextEvent(sub, 'publication');
  await sub.publish({ text: 'from client' });
  assert.deepEqual((await got).data, { text: 'from client' });

  // An API publication.
  got = nextEvent(sub, 'publication');
  await api('publish', { channel, data: { text: 'from api' } });
  assert.deepEqual((await got).data, { text: 'from api' });

  const history = await sub.history({ limit: 10 });
  assert.deepEqual(history.publications.map((p) => p.data.text), ['from client', 'from api']);
  const presence = await sub.presence();
  assert.equal(Object.keys(presence.clients).length, 1);

  // Recovery after a cut: what is published while the client is away arrives on its return.
  // Reconnects fail (the proxy points at a closed port) until the publication is made.
  const away = nextEvent(c, 'connecting');
  const recovered = nextEvent(sub, 'subscribed');
  got = nextEvent(sub, 'publication');
  proxy.retarget(await closedPort());
  proxy.cutAll();
  await away;
  await api('publish', { channel, data: { text: 'missed' } });
  proxy.retarget(hermod.port);
  const back = await recovered;
  assert.equal(back.recovered, true);
  assert.deepEqual((await got).data, { text: 'missed' });
  c.disconnect();
}

test('http_stream alone (JSON)', async () => {
  await scenario(client([HTTP_STREAM()], 'u1'), 'hs', 'http_stream');
});

test('sse alone (JSON)', async () => {
  await scenario(client([SSE()], 'u2'), 'sse', 'sse');
});

test('fallback chain: a WebSocket that cannot connect, then http_stream', async () => {
  const closed = await closedPort();
  const c = client([{ transport: 'websocket', endpoint: `ws://127.0.0.1:${closed}/connection/websocket` },
    HTTP_STREAM(), SSE()], 'u3', Centrifuge, { websocket: WebSocket });
  await scenario(c, 'chain', 'http_stream');
});

test('fallback chain: http_stream disabled (404), then sse', async () => {
  const c = client([{ transport: 'http_stream', endpoint: at('/connection/no_such_stream') }, SSE()],
    'u4');
  await scenario(c, 'chain2', 'sse');
});

test('Protobuf build over http_stream', async () => {
  const c = client([HTTP_STREAM()], 'u5', ProtobufCentrifuge, { protocol: 'protobuf' });
  const ctx = await connect(c);
  assert.equal(ctx.transport, 'http_stream');
  const sub = await subscribed(c, 'room-pb');
  let got = nextEvent(sub, 'publication');
  await sub.publish(new TextEncoder().encode('binary \u0000 data'));
  assert.equal(Buffer.from((await got).data).toString(), 'binary \u0000 data');
  got = nextEvent(sub, 'publication');
  await api('publish', { channel: 'room-pb', data: { text: 'from api' } });
  assert.equal(Buffer.from((await got).data).toString(), '{"text":"from api"}');
  const history = await sub.history({ limit: 10 });
  assert.equal(history.publications.length, 2);
  const presence = await sub.presence();
  assert.equal(Object.keys(presence.clients).length, 1);
  c.disconnect();
});

// A raw http_stream: the connect reply's session and node, and a reader of the lines.
async function rawStream(user) {
  const abort = new AbortController();
  const response = await fetch(`http://127.0.0.1:${hermod.port}/connection/http_stream`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ id: 1, connect: { token: token(user) } }),
    signal: abort.signal,
  });
  assert.equal(response.status, 200);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const lines = [];
  async function next() {
    while (true) {
      const nl = buffer.indexOf('\n');
      if (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        return JSON.parse(line);
      }
      const { done, value } = await reader.read();
      if (done) return null;
      buffer += decoder.decode(value, { stream: true });
    }
  }
  const reply = await next();
  assert.ok(reply.connect.session && reply.connect.node, JSON.stringify(reply));
  return { session: reply.connect.session, node: reply.connect.node, next, abort, lines };
}

async function emulate(body, type = 'application/json', headers = {}) {
  return fetch(`http://127.0.0.1:${hermod.port}/emulation`, {
    method: 'POST', headers: { 'Content-Type': type, ...headers }, body,
  });
}

test('/emulation: 204, unknown node 404, malformed 400 with a metric, CORS', async () => {
  const s = await rawStream('raw1');
  let r = await emulate(JSON.stringify({ session: s.session, node: s.node,
    data: JSON.stringify({ id: 2, subscribe: { channel: 'raw' } }) }));
  assert.equal(r.status, 204);
  assert.deepEqual(Object.keys(await s.next()), ['id', 'subscribe']);

  r = await emulate(JSON.stringify({ session: s.session, node: 'not-this-node', data: '{}' }));
  assert.equal(r.status, 404);
  for (const bad of ['{', '[]', '{"session":1}', '{"session":"a","node":"b"}']) {
    r = await emulate(bad);
    assert.equal(r.status, 400, bad);
  }
  r = await emulate(Buffer.from([0x0a, 0x80]), 'application/octet-stream');  // truncated
  assert.equal(r.status, 400);
  const metrics = await (await fetch(`http://127.0.0.1:${hermod.port}/metrics`)).text();
  assert.match(metrics, /hermod_emulation_requests_total\{result="bad_request"\} 5/);
  assert.match(metrics, /hermod_emulation_requests_total\{result="unknown_node"\} 1/);
  assert.match(hermod.log.join(''), /emulation: bad request/);

  // CORS: an allowed origin's preflight and POST; another origin is refused.
  r = await fetch(`http://127.0.0.1:${hermod.port}/emulation`, {
    method: 'OPTIONS',
    headers: { Origin: 'http://app.example', 'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'content-type' },
  });
  assert.equal(r.status, 204);
  assert.equal(r.headers.get('access-control-allow-origin'), 'http://app.example');
  assert.match(r.headers.get('access-control-allow-methods'), /POST/);
  assert.equal(r.headers.get('access-control-allow-headers'), 'content-type');
  r = await fetch(`http://127.0.0.1:${hermod.port}/connection/http_stream`, {
    method: 'OPTIONS', headers: { Origin: 'http://app.example' } });
  assert.equal(r.status, 204);
  r = await emulate(JSON.stringify({ session: s.session, node: s.node, data: '{"id":3,"presence":{"channel":"raw"}}' }),
    'application/json', { Origin: 'http://app.example' });
  assert.equal(r.status, 204);
  assert.equal(r.headers.get('access-control-allow-origin'), 'http://app.example');
  r = await emulate('{}', 'application/json', { Origin: 'http://evil.example' });
  assert.equal(r.status, 403);
  s.abort.abort();
});

test('a stream that ended runs no more commands', async () => {
  const dead = await rawStream('gone');
  await api('disconnect', { user: 'gone' });
  let line;
  while ((line = await dead.next()) !== null) assert.ok(line.push?.disconnect || line.id);
  // Its session's commands are accepted (204: the client learns from its stream) and dropped.
  const publish = (s, text) => emulate(JSON.stringify({ session: s.session, node: s.node,
    data: [JSON.stringify({ id: 2, subscribe: { channel: 'after' } }),
      JSON.stringify({ id: 3, publish: { channel: 'after', data: { text } } })].join('\n') }));
  assert.equal((await publish(dead, 'ghost')).status, 204);
  // A live stream on the same loop: its commands are queued behind the dead one's.
  const loop = dead.session.split('-')[0];
  let live;
  for (let i = 0; i < 20; i++) {
    const s = await rawStream(`live${i}`);
    if (s.session.split('-')[0] === loop) {
      live = s;
      break;
    }
    s.abort.abort();
  }
  assert.ok(live, 'no stream on the same loop');
  assert.equal((await publish(live, 'alive')).status, 204);
  for (;;) {
    const reply = await live.next();
    if (reply?.id === 3) break;
  }
  const history = await api('history', { channel: 'after', limit: 10 });
  assert.deepEqual(history.result.publications.map((p) => p.data.text), ['alive']);
  // An id no loop owns is answered the same; both are counted, not silently dropped. The
  // dead session's commands ran (were found without a session) before the live one's reply.
  assert.equal((await emulate(JSON.stringify({ session: '999-x', node: dead.node,
    data: '{"id":4,"presence":{"channel":"after"}}' }))).status, 204);
  const metrics = await (await fetch(`http://127.0.0.1:${hermod.port}/metrics`)).text();
  assert.match(metrics, /hermod_emulation_requests_total\{result="no_session"\} 2/);
  live.abort.abort();
});

test('disabled transports answer 404', async () => {
  const off = await startHermod(binary, { api_key: 'k' });
  for (const [method, path] of [['POST', '/connection/http_stream'], ['GET', '/connection/sse'],
    ['POST', '/emulation']]) {
    const r = await fetch(`http://127.0.0.1:${off.port}${path}`, { method, body: method === 'POST' ? '{}' : undefined });
    assert.equal(r.status, 404, path);
  }
  assert.equal((await off.stop()).code, 0);
});
