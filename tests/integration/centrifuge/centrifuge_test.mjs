// hermod against the real centrifuge SDK (npm, pinned in package.json) in Node, with `ws` as
// its WebSocket: connect (anonymous and with JWTs), subscribe, publish, presence,
// join/leave, history, recovery after a cut connection and after an API disconnect,
// private and user-limited channels, token refresh and expiry (`exp`, `expire_at`),
// server-side subscriptions (`channels`, `subs` with data and chan_info) and their recovery,
// subscription-token chan_info, the server HTTP API, the protocol's close codes and graceful
// shutdown.
// Run: node centrifuge_test.mjs --hermod PATH (after `npm ci` here).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

import {
  connected, nextEvent, sdkClient, startHermod, startProxy, subscribed,
} from './harness.mjs';

const binary = process.argv[process.argv.indexOf('--hermod') + 1];
assert.ok(process.argv.includes('--hermod') && binary, 'usage: --hermod PATH');

const CONFIG = {
  allow_anonymous_connect_without_token: true,
  allow_subscribe_for_client: true,
  allow_subscribe_for_anonymous: true,
  allow_publish_for_subscriber: true,
  presence: true,
  allow_presence_for_subscriber: true,
  join_leave: true,
  history_size: 100,
  history_ttl: '300s',
  allow_history_for_subscriber: true,
  force_recovery: true,
  ping_interval: '2s',
  pong_timeout: '1s',
  client_stale_close_delay: '1s',
  client_expired_close_delay: '1s',
  api_key: 'test-key',
  token_hmac_secret_key: 'hmac-secret',
  namespaces: [{ name: 'dialog', allow_user_limited_channels: true }, {
    name: 'small',
    history_size: 2,
    history_ttl: '300s',
    force_recovery: true,
    allow_subscribe_for_client: true,
    allow_subscribe_for_anonymous: true,
    allow_publish_for_client: true,
  }],
};

let hermod;
let proxy;
const clients = [];

function client(port = hermod.port) {
  return sdkClient(port, clients);
}

// An HS256 JWT, as an application backend would make one.
function jwt(claims, secret = 'hmac-secret') {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);

// The server HTTP API: resolves with [status, parsed body or text].
async function api(method, body, key = 'test-key') {
  const response = await fetch(`http://127.0.0.1:${hermod.port}/api/${method}`, {
    method: 'POST',
    headers: { Authorization: `apikey ${key}` },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return [response.status, response.status === 200 ? JSON.parse(text) : text];
}

// Raw WebSocket: for what the SDK never does. Resolves with the close code.
function rawClose(messages) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${hermod.port}/connection/websocket`);
    ws.on('open', () => messages.forEach((m) => ws.send(m)));
    ws.on('close', (code) => resolve(code));
    ws.on('error', reject);
  });
}

before(async () => {
  hermod = await startHermod(binary, CONFIG);
  proxy = await startProxy(hermod.port);
});

after(async () => {
  for (const c of clients) c.disconnect();
  proxy.close();
  if (hermod) hermod.kill();
});

test('connects anonymously and gets a client id', async () => {
  const c = client();
  const ctx = await connected(c);
  assert.match(ctx.client, /^[0-9a-f-]{36}$/);
  assert.equal(ctx.transport, 'websocket');
});

test('delivers a client publication to every subscriber with its data unchanged', async () => {
  const a = client();
  const b = client();
  const [ca] = await Promise.all([connected(a), connected(b)]);
  const subA = await subscribed(a, 'news');
  const subB = await subscribed(b, 'news');
  const gotA = nextEvent(subA, 'publication');
  const gotB = nextEvent(subB, 'publication');
  const data = { text: 'hi', list: [1, 2, { deep: 'é' }] };
  await subA.publish(data);
  for (const ctx of await Promise.all([gotA, gotB])) {
    assert.deepEqual(ctx.data, data);
    assert.equal(ctx.info.client, ca.client);
    assert.ok(ctx.offset > 0);
  }
});

test('answers presence and presence stats', async () => {
  const a = client();
  const b = client();
  const [ca, cb] = await Promise.all([connected(a), connected(b)]);
  const sub = await subscribed(a, 'lobby');
  await subscribed(b, 'lobby');
  const presence = await sub.presence();
  assert.deepEqual(Object.keys(presence.clients).sort(), [ca.client, cb.client].sort());
  assert.equal(presence.clients[cb.client].client, cb.client);
  const stats = await sub.presenceStats();
  assert.equal(stats.numClients, 2);
  assert.equal(stats.numUsers, 1);  // both anonymous: one (empty) user
});

test('pushes join and leave to subscribers that ask for them', async () => {
  const a = client();
  const b = client();
  await Promise.all([connected(a), connected(b)]);
  const watcher = await subscribed(a, 'room', { joinLeave: true });
  const join = nextEvent(watcher, 'join', (ctx) => ctx.info.client === b._client);
  const sub = await subscribed(b, 'room');
  await join;
  const leave = nextEvent(watcher, 'leave', (ctx) => ctx.info.client === b._client);
  sub.unsubscribe();
  await leave;
});

test('returns history with limit, since and reverse', async () => {
  const c = client();
  await connected(c);
  const sub = await subscribed(c, 'log');
  for (let i = 1; i <= 5; i++) await sub.publish({ i });
  const all = await sub.history({ limit: -1 });
  assert.deepEqual(all.publications.map((p) => p.data.i), [1, 2, 3, 4, 5]);
  assert.equal(all.offset, 5);
  assert.ok(all.epoch);
  const last2 = await sub.history({ limit: 2, reverse: true });
  assert.deepEqual(last2.publications.map((p) => p.data.i), [5, 4]);
  const since = await sub.history({ limit: 10, since: { offset: 3, epoch: all.epoch } });
  assert.deepEqual(since.publications.map((p) => p.data.i), [4, 5]);
  await assert.rejects(sub.history({ limit: 10, since: { offset: 3, epoch: 'other' } }),
                       (e) => e.code === 112);
});

test('refuses what the channel options do not allow', async () => {
  const c = client();
  await connected(c);
  // A permanent subscribe error ends the subscription with the error's code.
  const unknown = c.newSubscription('nowhere:1');
  const ended = nextEvent(unknown, 'unsubscribed');
  unknown.subscribe();
  assert.equal((await ended).code, 102);
  await assert.rejects(c.publish('news', { x: 1 }), (e) => e.code === 103);
});

test('recovers every missed publication in order after its connection is cut', async () => {
  const publisher = client();
  await connected(publisher);
  const pubSub = await subscribed(publisher, 'feed');
  const c = client(proxy.port);
  await connected(c);
  const sub = await subscribed(c, 'feed');
  const first = nextEvent(sub, 'publication');
  await pubSub.publish({ n: 0 });
  await first;

  const received = [];
  sub.on('publication', (ctx) => received.push(ctx.data.n));
  const cut = nextEvent(c, 'connecting');
  proxy.cutAll();
  await cut;
  for (let n = 1; n <= 3; n++) await pubSub.publish({ n });
  const again = await nextEvent(sub, 'subscribed');
  assert.equal(again.wasRecovering, true);
  assert.equal(again.recovered, true);
  await pubSub.publish({ n: 4 });
  while (received.length < 4) await nextEvent(sub, 'publication');
  assert.deepEqual(received, [1, 2, 3, 4]);
});

test('reports recovered: false when the stream no longer covers the gap', async () => {
  const publisher = client();
  await connected(publisher);
  const c = client(proxy.port);
  await connected(c);
  const sub = await subscribed(c, 'small:x');
  const first = nextEvent(sub, 'publication');
  await publisher.publish('small:x', { n: 0 });
  await first;
  const cut = nextEvent(c, 'connecting');
  proxy.cutAll();
  await cut;
  for (let n = 1; n <= 5; n++) await publisher.publish('small:x', { n });
  const again = await nextEvent(sub, 'subscribed');
  assert.equal(again.wasRecovering, true);
  assert.equal(again.recovered, false);
});

test('delivers API publications and broadcasts to SDK subscribers', async () => {
  const c = client();
  await connected(c);
  const sub = await subscribed(c, 'api-news');
  const got = nextEvent(sub, 'publication');
  const [status, body] = await api('publish', { channel: 'api-news', data: { from: 'api' } });
  assert.equal(status, 200);
  assert.ok(body.result.offset > 0 && body.result.epoch);
  const ctx = await got;
  assert.deepEqual(ctx.data, { from: 'api' });
  assert.equal(ctx.offset, body.result.offset);
  const again = nextEvent(sub, 'publication');
  const [, broadcast] = await api('broadcast',
                                  { channels: ['api-news', 'nowhere:1'], data: 'both' });
  assert.equal(broadcast.result.responses.length, 2);
  assert.equal(broadcast.result.responses[1].error.code, 102);
  assert.equal((await again).data, 'both');
});

test('answers the API with 401, 400 and Centrifugo error objects', async () => {
  assert.equal((await api('publish', { channel: 'a', data: 1 }, 'wrong'))[0], 401);
  assert.equal((await api('publish', '{"channel":'))[0], 400);
  assert.deepEqual((await api('publish', { channel: 'nowhere:1', data: 1 }))[1],
                   { error: { code: 102, message: 'unknown channel' } });
  assert.deepEqual((await api('publish', { channel: 'a' }))[1].error.code, 107);
  const [, history] = await api('history', { channel: 'api-news', limit: -1 });
  assert.deepEqual(history.result.publications.map((p) => p.data), [{ from: 'api' }, 'both']);
  const [, stats] = await api('presence_stats', { channel: 'api-news' });
  assert.equal(stats.result.num_clients, 1);
});

test('publishes once per idempotency key', async () => {
  const body = { channel: 'once', data: { n: 1 }, idempotency_key: 'k1' };
  const [, first] = await api('publish', body);
  const [, second] = await api('publish', body);
  assert.deepEqual(second, first);
  const [, history] = await api('history', { channel: 'once', limit: -1 });
  assert.equal(history.result.publications.length, 1);
  await api('history_remove', { channel: 'once' });
  const [, emptied] = await api('history', { channel: 'once', limit: -1 });
  assert.deepEqual(emptied.result.publications, []);
  assert.equal(emptied.result.offset, history.result.offset);  // the position stays
});

test('subscribes and unsubscribes a user from the API (server-side subscriptions)', async () => {
  const c = new Centrifuge(`ws://127.0.0.1:${hermod.port}/connection/websocket`, {
    websocket: WebSocket,
    token: jwt({ sub: 'erin', exp: now() + 600 }),
  });
  clients.push(c);
  await connected(c);
  const joined = nextEvent(c, 'subscribed', (ctx) => ctx.channel === 'ops');
  assert.deepEqual((await api('subscribe', { user: 'erin', channel: 'ops' }))[1], { result: {} });
  await joined;
  const got = nextEvent(c, 'publication', (ctx) => ctx.channel === 'ops');
  await api('publish', { channel: 'ops', data: 'deploy' });
  assert.equal((await got).data, 'deploy');
  const [, listed] = await api('channels', {});
  assert.equal(listed.result.channels.ops.num_clients, 1);
  const left = nextEvent(c, 'unsubscribed', (ctx) => ctx.channel === 'ops');
  await api('unsubscribe', { user: 'erin', channel: 'ops' });
  await left;
});

test('recovers after the API disconnects it with a reconnect code', async () => {
  const c = client();
  const { client: id } = await connected(c);
  const sub = await subscribed(c, 'kicked');
  const first = nextEvent(sub, 'publication');
  await api('publish', { channel: 'kicked', data: 0 });
  await first;
  const received = [];
  sub.on('publication', (ctx) => received.push(ctx.data));
  const kicked = nextEvent(c, 'connecting', (ctx) => ctx.code === 3011);
  await api('disconnect', { user: '', client: id,
                            disconnect: { code: 3011, reason: 'force reconnect' } });
  await kicked;
  for (let n = 1; n <= 3; n++) await api('publish', { channel: 'kicked', data: n });
  const again = await nextEvent(sub, 'subscribed');
  assert.equal(again.recovered, true);
  while (received.length < 3) await nextEvent(sub, 'publication');
  assert.deepEqual(received, [1, 2, 3]);
});

test('connects with a token: user, info and server-side channels from its claims', async () => {
  const c = new Centrifuge(`ws://127.0.0.1:${hermod.port}/connection/websocket`, {
    websocket: WebSocket,
    token: jwt({ sub: 'alice', exp: now() + 600, info: { name: 'Alice' }, channels: ['alerts'] }),
  });
  clients.push(c);
  const serverSub = nextEvent(c, 'subscribed', (ctx) => ctx.channel === 'alerts');
  await connected(c);
  await serverSub;
  const got = nextEvent(c, 'publication', (ctx) => ctx.channel === 'alerts');
  await api('publish', { channel: 'alerts', data: { level: 1 } });
  assert.deepEqual((await got).data, { level: 1 });
  const sub = await subscribed(c, 'team');
  const presence = await sub.presence();
  const [entry] = Object.values(presence.clients);
  assert.equal(entry.user, 'alice');
  assert.deepEqual(entry.connInfo, { name: 'Alice' });
});

test('disconnects with 3500 a client with an invalid token', async () => {
  const c = new Centrifuge(`ws://127.0.0.1:${hermod.port}/connection/websocket`, {
    websocket: WebSocket,
    token: jwt({ sub: 'mallory' }, 'wrong-secret'),
  });
  clients.push(c);
  const gone = nextEvent(c, 'disconnected');
  c.connect();
  assert.equal((await gone).code, 3500);
});

test('opens a private channel with a subscription token only', async () => {
  const c = new Centrifuge(`ws://127.0.0.1:${hermod.port}/connection/websocket`, {
    websocket: WebSocket,
    token: jwt({ sub: 'bob', exp: now() + 600 }),
  });
  clients.push(c);
  await connected(c);
  const denied = c.newSubscription('$secret');
  const ended = nextEvent(denied, 'unsubscribed');
  denied.subscribe();
  assert.equal((await ended).code, 103);
  c.removeSubscription(denied);
  const sub = c.newSubscription('$secret', {
    getToken: async () => jwt({ sub: 'bob', channel: '$secret', exp: now() + 600 }),
  });
  const ok = nextEvent(sub, 'subscribed');
  sub.subscribe();
  await ok;
});

test('lets only the listed users into user-limited channels', async () => {
  const c = new Centrifuge(`ws://127.0.0.1:${hermod.port}/connection/websocket`, {
    websocket: WebSocket,
    token: jwt({ sub: 'bob', exp: now() + 600 }),
  });
  clients.push(c);
  await connected(c);
  await subscribed(c, 'dialog:chat#bob,eve');
  const other = c.newSubscription('dialog:chat#eve');
  const ended = nextEvent(other, 'unsubscribed');
  other.subscribe();
  assert.equal((await ended).code, 103);
});

test('refreshes an expiring connection token and stays connected', async () => {
  let refreshed = 0;
  const c = new Centrifuge(`ws://127.0.0.1:${hermod.port}/connection/websocket`, {
    websocket: WebSocket,
    token: jwt({ sub: 'carol', exp: now() + 2 }),
    getToken: async () => {
      refreshed++;
      return jwt({ sub: 'carol', exp: now() + 600 });
    },
  });
  clients.push(c);
  await connected(c);
  let dropped = false;
  const onDrop = () => { dropped = true; };
  c.on('connecting', onDrop);
  await new Promise((resolve) => setTimeout(resolve, 3500));
  assert.ok(refreshed >= 1);
  c.off('connecting', onDrop);
  assert.equal(dropped, false);
  assert.equal(c.state, 'connected');
});

test('recovers a server-side subscription after its connection is cut', async () => {
  const c = new Centrifuge(`ws://127.0.0.1:${proxy.port}/connection/websocket`, {
    websocket: WebSocket,
    token: jwt({ sub: 'sid', exp: now() + 600, channels: ['server-feed'] }),
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
  });
  clients.push(c);
  const serverSub = nextEvent(c, 'subscribed', (ctx) => ctx.channel === 'server-feed');
  await connected(c);
  assert.equal((await serverSub).recoverable, true);
  const first = nextEvent(c, 'publication', (ctx) => ctx.channel === 'server-feed');
  await api('publish', { channel: 'server-feed', data: { n: 0 } });
  await first;

  const received = [];
  c.on('publication', (ctx) => {
    if (ctx.channel === 'server-feed') received.push(ctx.data.n);
  });
  const cut = nextEvent(c, 'connecting');
  proxy.cutAll();
  await cut;
  for (let n = 1; n <= 3; n++) await api('publish', { channel: 'server-feed', data: { n } });
  const again = await nextEvent(c, 'subscribed',
                                (ctx) => ctx.channel === 'server-feed' && ctx.wasRecovering);
  assert.equal(again.recovered, true);
  await api('publish', { channel: 'server-feed', data: { n: 4 } });
  while (received.length < 4) {
    await nextEvent(c, 'publication', (ctx) => ctx.channel === 'server-feed');
  }
  assert.deepEqual(received, [1, 2, 3, 4]);
});

test('subscribes from the subs claim with its data, and publishes with its chan_info', async () => {
  const watcher = client();
  await connected(watcher);
  const watch = await subscribed(watcher, 'claimed', { joinLeave: true });
  const c = new Centrifuge(`ws://127.0.0.1:${hermod.port}/connection/websocket`, {
    websocket: WebSocket,
    token: jwt({ sub: 'sue', exp: now() + 600, info: { name: 'Sue' },
                 subs: { claimed: { data: { welcome: 1 }, info: { role: 'admin' } } } }),
  });
  clients.push(c);
  const serverSub = nextEvent(c, 'subscribed', (ctx) => ctx.channel === 'claimed');
  const joined = nextEvent(watch, 'join', (ctx) => ctx.info.user === 'sue');
  await connected(c);
  assert.deepEqual((await serverSub).data, { welcome: 1 });
  // Join, presence and publications carry the channel info beside the connection's.
  assert.deepEqual((await joined).info.chanInfo, { role: 'admin' });
  const presence = await watch.presence();
  const sue = Object.values(presence.clients).find((e) => e.user === 'sue');
  assert.deepEqual([sue.connInfo, sue.chanInfo], [{ name: 'Sue' }, { role: 'admin' }]);
  const got = nextEvent(watch, 'publication');
  await c.publish('claimed', { from: 'sue' });
  const pub = await got;
  assert.deepEqual(pub.data, { from: 'sue' });
  assert.deepEqual(pub.info.chanInfo, { role: 'admin' });
  assert.deepEqual(pub.info.connInfo, { name: 'Sue' });
});

test('carries a subscription token info as chan_info', async () => {
  const c = new Centrifuge(`ws://127.0.0.1:${hermod.port}/connection/websocket`, {
    websocket: WebSocket,
    token: jwt({ sub: 'tim', exp: now() + 600 }),
  });
  clients.push(c);
  await connected(c);
  const sub = c.newSubscription('$desk', {
    getToken: async () => jwt({ sub: 'tim', channel: '$desk', info: { seat: 7 } }),
  });
  const ok = nextEvent(sub, 'subscribed');
  sub.subscribe();
  await ok;
  const presence = await sub.presence();
  const [entry] = Object.values(presence.clients);
  assert.deepEqual([entry.user, entry.chanInfo], ['tim', { seat: 7 }]);
  const got = nextEvent(sub, 'publication');
  await sub.publish('hello');
  assert.deepEqual((await got).info.chanInfo, { seat: 7 });
});

test('expire_at: 0 keeps a connection past its token exp without a refresh', async () => {
  let refreshed = 0;
  const c = new Centrifuge(`ws://127.0.0.1:${hermod.port}/connection/websocket`, {
    websocket: WebSocket,
    token: jwt({ sub: 'ursula', exp: now() + 1, expire_at: 0 }),
    getToken: async () => {
      refreshed++;
      return jwt({ sub: 'ursula', exp: now() + 600 });
    },
  });
  clients.push(c);
  await connected(c);
  let dropped = false;
  const onDrop = () => { dropped = true; };
  c.on('connecting', onDrop);
  // Past exp and the 1 s close delay: a connection that expired would be gone by now.
  await new Promise((resolve) => setTimeout(resolve, 2500));
  c.off('connecting', onDrop);
  assert.equal(refreshed, 0);
  assert.equal(dropped, false);
  assert.equal(c.state, 'connected');
});

test('expire_at sets the expiry instead of exp: 3005 when it passes', async () => {
  const token = jwt({ sub: 'vic', exp: now() + 600, expire_at: now() + 1 });
  assert.equal(await rawClose([`{"id":1,"connect":{"token":"${token}"}}`]), 3005);
});

test('disconnects with 3005 a connection whose token expires unrefreshed', async () => {
  const token = jwt({ sub: 'dave', exp: now() + 1 });
  assert.equal(await rawClose([`{"id":1,"connect":{"token":"${token}"}}`]), 3005);
});

test('disconnects with 3501 a client whose first command is not connect', async () => {
  assert.equal(await rawClose(['{"id":1,"subscribe":{"channel":"news"}}']), 3501);
});

test('disconnects with 3501 a client that sends malformed JSON', async () => {
  assert.equal(await rawClose(['{"id":1,"connect":{}}', '{"id":2,']), 3501);
});

test('disconnects with 3502 a client that never sends connect', async () => {
  assert.equal(await rawClose([]), 3502);
});

test('disconnects with 3012 a client that does not answer pings', async () => {
  assert.equal(await rawClose(['{"id":1,"connect":{}}']), 3012);
});

test('graceful shutdown disconnects clients with 3001 so they reconnect', async () => {
  const c = client();
  await connected(c);
  const reconnecting = nextEvent(c, 'connecting', (ctx) => ctx.code === 3001);
  const status = hermod.stop();
  const ctx = await reconnecting;
  assert.equal(ctx.reason, 'shutdown');
  assert.deepEqual(await status, { code: 0, signal: null });
  hermod = null;
});
