// The centrifuge SDK against hermod's backend proxies (run by ../proxy_test.py, which starts
// hermod and the backend): `node proxy_client.mjs PORT SCENARIO [COOKIE]` prints one JSON
// line of what the SDK saw and exits 0, or exits 1 with the error.
//   full:    connect with no token through the connect proxy (cookie forwarded), the
//            server-side channel from the backend, rpc echo and a refused rpc, a subscribe
//            the proxy allows and one it refuses, a publication the publish proxy rewrites.
//   connect: only the connect; reports the first `connected`, `disconnected` or connect error.
//   rpc:     connect, then one rpc ('echo'); reports its result or error.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

import { nextEvent } from './harness.mjs';

const [port, scenario, cookie = 'session=alice'] = process.argv.slice(2);
const url = `ws://127.0.0.1:${port}/connection/websocket`;

// The browser's request headers, as a WebSocket upgrade carries them.
class BrowserWebSocket extends WebSocket {
  constructor(address, protocols) {
    super(address, protocols, {
      headers: { Cookie: cookie, Authorization: 'Bearer t0ken', 'X-Not-Forwarded': 'secret' },
    });
  }
}

function client() {
  return new Centrifuge(url, { websocket: BrowserWebSocket, minReconnectDelay: 60000 });
}

// The first of connected, disconnected or a connect error.
function connectOutcome(c) {
  return new Promise((resolve) => {
    c.on('connected', (ctx) => resolve({ event: 'connected', client: ctx.client, data: ctx.data }));
    c.on('disconnected', (ctx) => resolve({ event: 'disconnected', code: ctx.code, reason: ctx.reason }));
    c.on('error', (ctx) => {
      if (ctx.type === 'connect') {
        resolve({ event: 'error', code: ctx.error.code, temporary: !!ctx.error.temporary });
      }
    });
  });
}

async function rpc(c, method, data) {
  try {
    const r = await c.rpc(method, data);
    return { data: r.data };
  } catch (e) {
    return { code: e.code, message: e.message, temporary: !!e.temporary };
  }
}

async function full() {
  const c = client();
  const serverSub = nextEvent(c, 'subscribed', (ctx) => ctx.channel === 'news');
  const outcome = connectOutcome(c);
  c.connect();
  const connected = await outcome;
  if (connected.event !== 'connected') return { connected };
  const news = await serverSub;
  const out = { connected, server_sub: { channel: news.channel, data: news.data } };
  out.rpc_echo = await rpc(c, 'echo', { n: 7 });
  out.rpc_fail = await rpc(c, 'fail', {});

  const allowed = c.newSubscription('proxied:ok');
  const allowedDone = new Promise((resolve) => {
    allowed.on('subscribed', (ctx) => resolve({ data: ctx.data }));
    allowed.on('error', (ctx) => resolve({ code: ctx.error.code }));
  });
  allowed.subscribe();
  out.sub_ok = await allowedDone;

  const refused = c.newSubscription('proxied:no');
  out.sub_refused = await new Promise((resolve) => {
    refused.on('unsubscribed', (ctx) => resolve({ code: ctx.code, reason: ctx.reason }));
    refused.on('subscribed', () => resolve({ subscribed: true }));
    refused.subscribe();
  });

  const publication = nextEvent(allowed, 'publication');
  await allowed.publish({ text: 'hello' });
  out.published = (await publication).data;
  c.disconnect();
  return out;
}

async function connectOnly() {
  const c = client();
  const outcome = connectOutcome(c);
  c.connect();
  const result = await outcome;
  c.disconnect();
  return result;
}

async function rpcOnly() {
  const c = client();
  const outcome = connectOutcome(c);
  c.connect();
  const connected = await outcome;
  if (connected.event !== 'connected') return { connected };
  const result = await rpc(c, 'echo', { n: 1 });
  c.disconnect();
  return { connected, rpc: result };
}

const scenarios = { full, connect: connectOnly, rpc: rpcOnly };
try {
  const result = await scenarios[scenario]();
  console.log(JSON.stringify(result));
  process.exit(0);
} catch (e) {
  console.error(e);
  process.exit(1);
}
