// Headless Debian Chromium, driven by playwright-core, opens hermod's live dashboard with the
// admin password while a bounded load runs (WebSocket clients of the JSON protocol from Node's
// ws, publications through the server API), and checks that the page loads without a console
// error, that its figures change with the load, that the busiest channel shows up, and that
// a wrong or missing password is refused. Saves a screenshot.
// Usage: node dashboard_client.mjs PORT CHROMIUM PASSWORD API_KEY SCREENSHOT.
// Prints one JSON line with what it saw; exits non-zero on failure (dashboard_test.py).
import assert from 'node:assert/strict';
import {launchChromium} from './chromium.mjs';
import WebSocket from 'ws';

const [port, executablePath, password, apiKey, screenshot] =
    [Number(process.argv[2]), ...process.argv.slice(3)];
assert.ok(port > 0 && screenshot, 'usage: PORT CHROMIUM PASSWORD API_KEY SCREENSHOT');
const base = `http://127.0.0.1:${port}`;
const CLIENTS = 12;
const PUBLICATIONS = 150;  // over about 3 s: the page polls every second
const CHANNEL = 'dashboard-load';
const DEADLINE_MS = 20000;

async function until(what, fn) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));  // a poll interval, bounded by the deadline
  }
}

// One client of the JSON protocol: connect, subscribe, count the publications it receives.
async function openClient() {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/connection/websocket`);
  const client = {ws, received: 0};
  await new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('error', reject);
  });
  const subscribed = new Promise((resolve) => {
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.includes('"subscribe"')) resolve();
      client.received += (text.match(/"pub"/g) || []).length;
    });
  });
  ws.send(`{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"${CHANNEL}"}}`);
  await subscribed;
  return client;
}

async function publish(n) {
  const response = await fetch(`${base}/api/publish`, {
    method: 'POST',
    headers: {'Authorization': `apikey ${apiKey}`, 'Content-Type': 'application/json'},
    body: JSON.stringify({channel: CHANNEL, data: {n}}),
  });
  assert.equal(response.status, 200);
}

const browser = await launchChromium(executablePath);
let failed = false;
const problems = [];  // console errors and page errors: the test fails on any
const clients = [];
try {
  // Refused: no credentials and a wrong password. Over plain requests the answer is a 401;
  // in the page, Chromium may also give up on the challenge (ERR_INVALID_AUTH_CREDENTIALS).
  const wrong = 'Basic ' + Buffer.from(`admin:${password}x`).toString('base64');
  for (const httpCredentials of [undefined, {username: 'admin', password: password + 'x'}]) {
    const context = await browser.newContext(httpCredentials ? {httpCredentials} : {});
    const page = await context.newPage();
    const refused = await page.goto(`${base}/dashboard`).then(
        (r) => r.status() === 401, (e) => /ERR_INVALID_AUTH_CREDENTIALS/.test(e.message));
    assert.ok(refused, `not refused with credentials ${JSON.stringify(httpCredentials)}`);
    await context.close();
  }
  {
    const context = await browser.newContext();
    for (const path of ['/dashboard', '/dashboard/data']) {
      for (const headers of [{}, {Authorization: wrong}]) {
        const r = await context.request.get(base + path, {headers});
        assert.equal(r.status(), 401, `${path} ${JSON.stringify(headers)}`);
      }
    }
    await context.close();
  }

  const context = await browser.newContext({
    httpCredentials: {username: 'admin', password},
    viewport: {width: 1280, height: 900},
  });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  const response = await page.goto(`${base}/dashboard`);
  assert.equal(response.status(), 200);
  const polls = async () => Number(await page.evaluate(() => document.body.dataset.polls || 0));
  await until('two polls', async () => (await polls()) >= 2);
  const figure = (id) => page.evaluate((i) => document.getElementById(i).textContent, id);
  const before = {connections: await figure('connections'), out: await figure('rate-out')};

  // The load: clients connect and subscribe, then the API publishes at a steady pace.
  for (let i = 0; i < CLIENTS; ++i) clients.push(await openClient());
  let maxOut = 0;
  let maxIn = 0;
  const started = await polls();
  for (let n = 0; n < PUBLICATIONS; ++n) {
    await publish(n);
    await new Promise((r) => setTimeout(r, 20));  // paces the load; not a synchronisation
    if (n % 10 === 0) {
      maxOut = Math.max(maxOut, Number(await figure('rate-out')) || 0);
      maxIn = Math.max(maxIn, Number(await figure('rate-in')) || 0);
    }
  }
  await until('every publication delivered',
              () => clients.every((c) => c.received === PUBLICATIONS));
  // The page saw the load: wait for a poll that covers it.
  await until('a poll after the load', async () => (await polls()) >= started + 2);
  maxOut = Math.max(maxOut, Number(await figure('rate-out')) || 0);
  const during = {connections: await figure('connections'), maxOut, maxIn};
  const channels = await page.evaluate(
      () => [...document.querySelectorAll('#channels tbody tr')].map((r) => r.innerText));
  const level = await figure('level');
  const latency = await page.evaluate(
      () => [...document.querySelectorAll('#latency tbody tr')].map((r) => r.innerText));
  const loops = await page.evaluate(() => document.querySelectorAll('#loops tbody tr').length);
  const state = await page.evaluate(
      () => [...document.querySelectorAll('#state tbody tr')].map((r) => r.innerText));
  await page.screenshot({path: screenshot, fullPage: true});
  const seen = {before, during, channels, level, latency, loops, state, screenshot, problems};
  console.log(JSON.stringify(seen));

  assert.ok(Number(during.connections) >= CLIENTS, `connections ${during.connections}`);
  assert.notEqual(during.connections, before.connections);
  assert.ok(maxOut > 0, 'messages/s out never moved');
  assert.ok(channels.some((r) => r.includes(CHANNEL) && r.includes(String(CLIENTS))),
            `busiest channels: ${channels}`);
  assert.equal(level, 'healthy');
  // Commands ran and publications were queued: their percentiles are figures, not dashes.
  assert.ok(latency.length === 3 && latency.slice(0, 2).every((r) => !r.includes('–')),
            `latency rows: ${latency}`);
  assert.ok(loops >= 1);
  // The hub's state table: the subscribers are counted (total column first).
  const subscriptions = state.find((r) => r.startsWith('subscriptions'));
  assert.ok(subscriptions && Number(subscriptions.split('\t')[1]) >= CLIENTS,
            `state rows: ${state}`);
  assert.deepEqual(problems, []);
  console.log('PASS');
} catch (error) {
  console.error('FAIL:', error);
  console.error(`page console:\n${problems.join('\n')}`);
  failed = true;
} finally {
  for (const c of clients) c.ws.terminate();
  await browser.close();
}
process.exit(failed ? 1 : 0);
