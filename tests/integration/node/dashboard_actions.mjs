// The admin dashboard's operator flow in headless Debian Chromium (playwright-core): the node
// figures and the nodes table, the ten-minute chart kept by the server across a reload, a
// channel search with presence and history, and each action (publish, unsubscribe a user,
// remove history, disconnect a user), each verified outside the page: by real WebSocket
// clients of the JSON protocol (Node's ws) and by the server API with the API key. Then a
// full-page screenshot, decoded again by Chromium to measure its pixels (a blank or
// half-drawn page has no variance where the chart should be).
// Usage: node dashboard_actions.mjs PORT CHROMIUM PASSWORD API_KEY HMAC_SECRET SCREENSHOT.
// Prints one JSON line with what it saw; exits non-zero on failure (dashboard_test.py).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import WebSocket from 'ws';
import {launchChromium} from './chromium.mjs';

const [port, executablePath, password, apiKey, secret, screenshot] =
    [Number(process.argv[2]), ...process.argv.slice(3)];
assert.ok(port > 0 && screenshot, 'usage: PORT CHROMIUM PASSWORD API_KEY HMAC_SECRET SCREENSHOT');
const base = `http://127.0.0.1:${port}`;
const DEADLINE_MS = 15000;

async function until(what, fn) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));  // a poll interval, bounded by the deadline
  }
}

function token(user) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const unsigned = `${b64({alg: 'HS256', typ: 'JWT'})}.${b64({sub: user})}`;
  const signature = crypto.createHmac('sha256', secret).update(unsigned).digest('base64url');
  return `${unsigned}.${signature}`;
}

// A client of the JSON protocol as `user`, subscribed to channels; keeps every push.
async function openClient(user, channels) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/connection/websocket`);
  const client = {user, ws, pushes: [], closed: null};
  await new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('error', reject);
  });
  ws.on('close', (code) => (client.closed = code));
  let replies = 0;
  const ready = new Promise((resolve) => {
    ws.on('message', (data) => {
      for (const line of data.toString().split('\n')) {
        if (!line.trim()) continue;
        const message = JSON.parse(line);
        if (message.id) {
          assert.ok(!message.error, `${user}: ${line}`);
          if (++replies === channels.length + 1) resolve();
        } else if (message.push) {
          client.pushes.push(message.push);
        }
      }
    });
  });
  const commands = [{id: 1, connect: {token: token(user)}}];
  channels.forEach((channel, i) => commands.push({id: i + 2, subscribe: {channel}}));
  ws.send(commands.map((c) => JSON.stringify(c)).join('\n'));
  await ready;
  return client;
}

async function serverApi(method, params) {
  const response = await fetch(`${base}/api/${method}`, {
    method: 'POST',
    headers: {'Authorization': `apikey ${apiKey}`},
    body: JSON.stringify(params),
  });
  assert.equal(response.status, 200);
  const answer = await response.json();
  assert.ok(!answer.error, JSON.stringify(answer));
  return answer.result;
}

const browser = await launchChromium(executablePath);
let failed = false;
const problems = [];
const clients = [];
try {
  const alice = await openClient('alice', ['room-1', 'room-2']);
  const bob = await openClient('bob', ['room-1', 'other']);
  clients.push(alice, bob);

  const context = await browser.newContext({
    httpCredentials: {username: 'admin', password},
    viewport: {width: 1280, height: 900},
  });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  assert.equal((await page.goto(`${base}/dashboard`)).status(), 200);
  const polls = async () => Number(await page.evaluate(() => document.body.dataset.polls || 0));
  const figure = (id) => page.evaluate((i) => document.getElementById(i).textContent, id);
  await until('three polls', async () => (await polls()) >= 3);

  // The node's figures and the nodes table: every tile filled in.
  const tiles = {};
  for (const id of ['version', 'node-uptime', 'node-memory', 'node-cpu', 'node-clients',
                    'node-users', 'node-channels', 'node-subscriptions', 'node-count']) {
    tiles[id] = await figure(id);
  }
  const nodes = await page.evaluate(
      () => [...document.querySelectorAll('#nodes tbody tr')].map((r) => r.innerText));

  // The chart's samples come from the server: a reload keeps them, and they keep growing.
  const heldBefore = await page.evaluate(() => samples.at_ms.length);
  await page.reload();
  await until('a poll after the reload', async () => (await polls()) >= 1);
  const heldAfter = await page.evaluate(() => samples.at_ms.length);

  // Channel search, then presence and history of one channel.
  const search = async (pattern) => {
    const before = await page.evaluate(
        () => Number(document.querySelector('#channel-list tbody').dataset.searches || 0));
    await page.fill('#channel-pattern', pattern);
    await page.click('#channel-search');
    await until('the search', async () => Number(await page.evaluate(
        () => document.querySelector('#channel-list tbody').dataset.searches || 0)) > before);
    return page.evaluate(
        () => [...document.querySelectorAll('#channel-list tbody tr')].map((r) => r.innerText));
  };
  const found = await search('room-*');

  // Each action through the page; its answer shows, and its effect is checked outside.
  const act = async (button, fields) => {
    const before = Number(await page.evaluate(
        () => document.getElementById('action-result').dataset.done || 0));
    for (const [id, value] of Object.entries(fields)) await page.fill(id, value);
    await page.click(button);
    await until(`${button} answered`, async () => Number(await page.evaluate(
        () => document.getElementById('action-result').dataset.done || 0)) > before);
    return page.evaluate(() => {
      const out = document.getElementById('action-result');
      return {ok: out.className === 'ok', text: out.textContent};
    });
  };
  const actions = {};
  actions.publish = await act('#publish-send', {'#publish-channel': 'room-1',
                                                '#publish-data': '{"text":"from the dashboard"}'});
  const delivered = (c) => c.pushes.some((p) => p.channel === 'room-1' && p.pub &&
                                                p.pub.data.text === 'from the dashboard');
  await until('the publication at alice and bob', () => delivered(alice) && delivered(bob));

  const loads = () => page.evaluate(
      () => Number(document.getElementById('channel-detail').dataset.loads || 0));
  let before = await loads();
  await page.click('#channel-list tbody tr[data-channel="room-1"]');
  await until('the channel detail', async () => (await loads()) > before);
  const detail = await page.evaluate(() => ({
    presence: [...document.querySelectorAll('#presence tbody tr')].map((r) => r.innerText),
    history: [...document.querySelectorAll('#history tbody tr')].map((r) => r.innerText),
  }));

  actions.unsubscribe = await act('#unsubscribe-send', {'#unsubscribe-user': 'bob',
                                                        '#unsubscribe-channel': 'room-1'});
  await until('bob unsubscribed from room-1',
              () => bob.pushes.some((p) => p.channel === 'room-1' && p.unsubscribe));
  const presence = await serverApi('presence', {channel: 'room-1'});
  const presentUsers = Object.values(presence.presence).map((i) => i.user).sort();

  // An action on the channel shown reloads its detail before it counts as done.
  before = await loads();
  actions.historyRemove = await act('#history-remove-send', {'#history-remove-channel': 'room-1'});
  const historyLeft = (await serverApi('history', {channel: 'room-1', limit: 10})).publications;
  assert.ok((await loads()) > before, 'the detail was not reloaded');
  const historyShown = await page.evaluate(
      () => [...document.querySelectorAll('#history tbody tr')].map((r) => r.innerText));

  actions.disconnect = await act('#disconnect-send', {'#disconnect-user': 'alice'});
  await until('alice disconnected', () => alice.closed !== null);
  actions.badData = await act('#publish-send', {'#publish-channel': 'room-1',
                                                '#publish-data': '{not json'});
  // bob stays: only the named user went.
  assert.equal(bob.closed, null);

  // What another origin could make a browser send (the credentials, no custom header): 403.
  const forged = (await fetch(`${base}/dashboard/api/publish`, {
    method: 'POST',
    headers: {'Authorization': 'Basic ' + Buffer.from(`admin:${password}`).toString('base64')},
    body: '{"channel":"room-1","data":{}}',
  })).status;

  // The screenshot, then its pixels as Chromium decodes the saved file.
  await until('a poll that draws the chart', async () => (await polls()) >= 3);
  const chartBox = await page.locator('#chart').boundingBox();
  await page.screenshot({path: screenshot, fullPage: true});
  const png = fs.readFileSync(screenshot).toString('base64');
  const viewer = await context.newPage();
  const pixels = await viewer.evaluate(async ({png, box}) => {
    const image = new Image();
    image.src = 'data:image/png;base64,' + png;
    await image.decode();
    const canvas = document.createElement('canvas');
    canvas.width = image.width;
    canvas.height = image.height;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(image, 0, 0);
    const stddev = (x, y, w, h) => {
      const d = ctx.getImageData(x, y, w, h).data;
      let sum = 0, squares = 0;
      const n = d.length / 4;
      for (let i = 0; i < d.length; i += 4) {
        const l = 0.2126 * d[i] + 0.7152 * d[i + 1] + 0.0722 * d[i + 2];
        sum += l;
        squares += l * l;
      }
      return Math.sqrt(Math.max(0, squares / n - (sum / n) * (sum / n)));
    };
    return {width: image.width, height: image.height,
            stddev: stddev(0, 0, image.width, image.height),
            chart_stddev: stddev(Math.round(box.x), Math.round(box.y), Math.round(box.width),
                                 Math.round(box.height))};
  }, {png, box: chartBox});

  // Both scales read on one chart: ten minutes of 200/s in and 100k/s out, drawn by the page
  // itself; each line's height, as a fraction of the plot above its baseline, from the
  // canvas's pixels of its colour. On a linear axis 200/s would lie on the baseline (0.002).
  const scales = await page.evaluate(() => {
    for (const key of Object.keys(samples)) samples[key].length = 0;
    const now = Date.now();
    for (let i = 0; i <= 600; ++i) {
      samples.at_ms.push(now - (600 - i) * 1000);
      samples.messages_in.push(200 * i);
      samples.messages_out.push(100000 * i);
      samples.publications_out.push(0);
    }
    drawChart();
    const canvas = document.getElementById('chart');
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const rows = {in: [], out: []};
    for (let i = 0; i < d.length; i += 4) {
      const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
      const row = Math.floor(i / 4 / canvas.width);
      if (r === 0x4f && g === 0xb3 && b === 0xff) rows.in.push(row);
      if (r === 0x7d && g === 0xdc && b === 0x7a) rows.out.push(row);
    }
    const ratio = window.devicePixelRatio || 1;
    const top = 8 * ratio, bottom = canvas.height - 20 * ratio;
    const height = (list) => (list.length === 0 ? null
        : (bottom - list.reduce((a, b) => a + b, 0) / list.length) / (bottom - top));
    return {in: height(rows.in), out: height(rows.out), pixels_in: rows.in.length,
            pixels_out: rows.out.length};
  });

  const seen = {tiles, nodes, heldBefore, heldAfter, found, actions, detail, presentUsers,
                historyLeft: historyLeft.length, historyShown, forged, pixels, scales,
                screenshot, problems};
  console.log(JSON.stringify(seen));

  assert.ok(/^v\d/.test(tiles.version), tiles.version);
  assert.ok(Object.values(tiles).every((v) => v !== '–' && v !== ''), JSON.stringify(tiles));
  assert.equal(tiles['node-clients'], '2');
  assert.equal(tiles['node-users'], '2');
  assert.equal(tiles['node-subscriptions'], '4');
  assert.equal(nodes.length, 1);
  assert.ok(nodes[0].includes('(this node)'), nodes[0]);
  assert.ok(heldBefore >= 3 && heldAfter >= heldBefore, `samples ${heldBefore} ${heldAfter}`);
  assert.deepEqual(found.map((r) => r.split('\t')[0]).sort(), ['room-1', 'room-2']);
  assert.ok(found.some((r) => r === 'room-1\t2'), found);
  assert.ok(actions.publish.ok && actions.unsubscribe.ok && actions.historyRemove.ok &&
            actions.disconnect.ok, JSON.stringify(actions));
  assert.ok(!actions.badData.ok, JSON.stringify(actions.badData));
  assert.deepEqual(detail.presence.map((r) => r.split('\t')[1]).sort(), ['alice', 'bob']);
  assert.ok(detail.history.some((r) => r.includes('from the dashboard')), detail.history);
  assert.deepEqual(presentUsers, ['alice']);
  assert.equal(historyLeft.length, 0);
  assert.deepEqual(historyShown, ['empty']);
  assert.equal(forged, 403);
  // 200/s sits well above the baseline, 100k/s near the top, both drawn across the width.
  assert.ok(scales.pixels_in > 500 && scales.pixels_out > 500, JSON.stringify(scales));
  assert.ok(scales.in > 0.3 && scales.in < 0.6, JSON.stringify(scales));
  assert.ok(scales.out > 0.8 && scales.out <= 1.01, JSON.stringify(scales));
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
