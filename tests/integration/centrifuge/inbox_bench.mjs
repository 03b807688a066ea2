// Inbox throughput with the real centrifuge SDK: N users connected (personal inbox channels,
// subscribed server-side), a backend publishes M publications to each user's inbox through
// /api/broadcast (one request per round to every user's inbox, 4 requests in flight), and every client acks what it gets
// (hermod.ack with the offsets received since its last ack, one RPC in flight per client).
// Prints acked deliveries per second (first publish to last ack answered) and the
// publish→ack latency percentiles (publish sent to ack answered, per publication).
// Run: node inbox_bench.mjs --hermod PATH [--engine sqlite|memory] [--users N] [--per-user M]
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

import { nextEvent, startHermod } from './harness.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const binary = arg('hermod');
assert.ok(binary, 'usage: --hermod PATH');
const engine = arg('engine', 'sqlite');
const users = Number(arg('users', 100));
const perUser = Number(arg('per-user', 100));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hermod-inbox-bench-'));
const hermod = await startHermod(binary, {
  engine,
  sqlite: { path: path.join(dir, 'bench.db') },
  token_hmac_secret_key: 'hmac-secret',
  api_key: 'k',
  user_subscribe_to_personal: true,
  user_personal_channel_namespace: 'inbox',
  namespaces: [{ name: 'inbox', inbox: true, ack_timeout: '60s', inbox_size: perUser + 10 }],
});

function jwt(claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${crypto.createHmac('sha256', 'hmac-secret').update(body).digest('base64url')}`;
}

const latencies = [];
let acked = 0;
const total = users * perUser;
let allAcked;
const done = new Promise((resolve) => { allAcked = resolve; });
const clients = [];
for (let u = 0; u < users; u++) {
  const channel = `inbox:#${u}`;
  const c = new Centrifuge(`ws://127.0.0.1:${hermod.port}/connection/websocket`, {
    websocket: WebSocket, token: jwt({ sub: String(u) }),
  });
  let pending = [];
  let inFlight = false;
  const flush = async () => {
    if (inFlight || pending.length === 0) return;
    inFlight = true;
    const batch = pending;
    pending = [];
    try {
      await c.rpc('hermod.ack', { channel, offsets: batch.map((p) => p.offset) });
    } catch (e) {
      console.error(`ack refused: ${JSON.stringify(e)}`);
      process.exit(1);
    }
    const now = performance.now();
    for (const p of batch) latencies.push(now - p.t);
    acked += batch.length;
    inFlight = false;
    if (acked === total) allAcked();
    flush();
  };
  c.on('publication', (ctx) => {
    if (ctx.channel !== channel) return;
    pending.push({ offset: ctx.offset, t: ctx.data.t });
    setImmediate(flush);
  });
  const ok = nextEvent(c, 'connected');
  c.connect();
  await ok;
  clients.push(c);
}

const started = performance.now();
const channels = Array.from({ length: users }, (_, u) => `inbox:#${u}`);
let round = 0;
// One broadcast per round: a publication to every user's inbox, stored in one group commit.
async function publisher() {
  while (round < perUser) {
    round++;
    const t = performance.now();
    const r = await fetch(`http://127.0.0.1:${hermod.port}/api/broadcast`, {
      method: 'POST', headers: { Authorization: 'apikey k' },
      body: JSON.stringify({ channels, data: { t } }),
    });
    const answer = await r.json();
    assert.ok(answer.result.responses.every((x) => x.result && x.result.offset > 0),
              JSON.stringify(answer));
  }
}
await Promise.all([publisher(), publisher(), publisher(), publisher()]);
await done;
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const pct = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
console.log(JSON.stringify({
  engine, users, per_user: perUser, acked, seconds: Number(seconds.toFixed(3)),
  acked_per_second: Math.round(acked / seconds),
  publish_to_ack_ms: { p50: Number(pct(0.5).toFixed(1)), p99: Number(pct(0.99).toFixed(1)) },
}));
for (const c of clients) c.disconnect();
await hermod.stop();
fs.rmSync(dir, { recursive: true, force: true });
