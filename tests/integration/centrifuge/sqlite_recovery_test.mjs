// engine "sqlite" with the real centrifuge SDK: a subscriber that lost its server misses
// publications, hermod is killed with SIGKILL and started again on the same file, and the
// SDK, reconnecting by itself, resubscribes with `recovered: true` and gets exactly the
// publications it missed, in order (the ones answered just before the kill included).
// Run: node sqlite_recovery_test.mjs --hermod PATH (after `npm ci` here).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import {
  closedPort, connected, nextEvent, sdkClient, startHermod, startProxy,
} from './harness.mjs';

const binary = process.argv[process.argv.indexOf('--hermod') + 1];
assert.ok(process.argv.includes('--hermod') && binary, 'usage: --hermod PATH');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hermod-sqlite-sdk-'));
const CONFIG = {
  engine: 'sqlite',
  sqlite: { path: path.join(dir, 'hermod.db') },
  allow_anonymous_connect_without_token: true,
  allow_subscribe_for_client: true,
  allow_subscribe_for_anonymous: true,
  history_size: 1000,
  history_ttl: '300s',
  force_recovery: true,
  api_key: 'test-key',
};

const clients = [];
let servers = [];
let proxy;

after(async () => {
  for (const c of clients) c.disconnect();
  proxy?.close();
  for (const s of servers) await s.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function publish(port, n) {
  const response = await fetch(`http://127.0.0.1:${port}/api/publish`, {
    method: 'POST',
    headers: { Authorization: 'apikey test-key' },
    body: JSON.stringify({ channel: 'feed', data: { n } }),
  });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.ok(body.result, JSON.stringify(body));
  return body.result;
}

test('the SDK recovers across kill -9 and a restart on the same file', async () => {
  const first = await startHermod(binary, CONFIG);
  servers.push(first);
  proxy = await startProxy(first.port);
  const c = sdkClient(proxy.port, clients);
  await connected(c);
  const got = [];
  const sub = c.newSubscription('feed');
  sub.on('publication', (ctx) => got.push(ctx.data.n));
  const subscribed = nextEvent(sub, 'subscribed');
  sub.subscribe();
  await subscribed;

  const live = nextEvent(sub, 'publication', (ctx) => ctx.data.n === 10);
  let epoch;
  for (let n = 1; n <= 10; n++) epoch = (await publish(first.port, n)).epoch;
  await live;

  // The client loses the server; what is published meanwhile it has not seen.
  proxy.retarget(await closedPort());
  const gone = nextEvent(c, 'connecting');
  proxy.cutAll();
  await gone;
  for (let n = 11; n <= 30; n++) assert.equal((await publish(first.port, n)).epoch, epoch);
  await first.kill();
  servers = [];

  const second = await startHermod(binary, CONFIG);
  servers.push(second);
  const recovered = nextEvent(sub, 'subscribed', () => true, 20000);
  const all = nextEvent(sub, 'publication', (ctx) => ctx.data.n === 30, 20000);
  proxy.retarget(second.port);
  const ctx = await recovered;
  assert.equal(ctx.wasRecovering, true);
  assert.equal(ctx.recovered, true);
  assert.equal(ctx.streamPosition.epoch, epoch);
  await all;
  assert.deepEqual(got, Array.from({ length: 30 }, (_, i) => i + 1));
  // The stream continues where it was.
  assert.deepEqual(await publish(second.port, 31), { offset: 31, epoch });
  servers = [];
  assert.deepEqual(await second.stop(), { code: 0, signal: null });
});
