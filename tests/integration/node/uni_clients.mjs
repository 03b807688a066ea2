// Real third-party clients of hermod's unidirectional transports and htmx fragments.
// Usage: node uni_clients.mjs PORT MODE TOKEN API_KEY [CHROMIUM]
//   ws:          the npm `ws` client on /connection/uni_websocket
//   eventsource: Chromium's EventSource on /connection/uni_sse (GET with cf_connect)
//   htmx:        an htmx page (htmx.org and htmx-ext-sse from npm) on /connection/fragments:
//                a fragment published through the API appears in the DOM; after hermod cuts
//                the page's stream (the API's disconnect), fragments published meanwhile
//                appear too, on both of the page's channels (EventSource's reconnect sends
//                Last-Event-ID, the positions of both; hermod replays each).
//   htmxws:      an htmx page with htmx-ext-ws on /connection/fragments/websocket: a fragment
//                published through the API is swapped into the DOM, and a form sent with
//                ws-send becomes a publication to the channel it names (seen by a uni_websocket
//                client whose token's `channels` holds "chat"; TOKEN2 is its token).
// Publications go through hermod's HTTP API (fetch). The channel is "news"; the token's
// `channels` claim holds it. Prints PASS; exits non-zero on failure.
import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {createRequire} from 'node:module';
import WebSocket from 'ws';
import {launchChromium} from './chromium.mjs';

const [port, mode, token, apiKey] = [Number(process.argv[2]), ...process.argv.slice(3, 6)];
const executablePath = process.argv[6] || '/usr/bin/chromium';  // then TOKEN2 (htmxws)
assert.ok(port > 0 && mode && token && apiKey, 'usage: node uni_clients.mjs PORT MODE TOKEN KEY');
const base = `http://127.0.0.1:${port}`;

async function api(method, body) {
  const r = await fetch(`${base}/api/${method}`, {
    method: 'POST',
    headers: {'Content-Type': 'application/json', 'X-API-Key': apiKey},
    body: JSON.stringify(body),
  });
  const answer = await r.json();
  assert.equal(r.status, 200);
  assert.equal(answer.error, undefined, JSON.stringify(answer));
  return answer;
}

function openUni() {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/connection/uni_websocket`);
  const queue = [];
  const waiting = [];
  ws.on('message', (data, binary) => {
    assert.equal(binary, false);
    const text = data.toString();
    waiting.length ? waiting.shift()(text) : queue.push(text);
  });
  const next = () => (queue.length ? Promise.resolve(queue.shift())
                                   : new Promise((r) => waiting.push(r)));
  const opened = new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('error', reject);
  });
  return {ws, next, opened};
}

async function uniWebSocket() {
  const {ws, next, opened} = openUni();
  await opened;
  ws.send(JSON.stringify({token, name: 'ws-test'}));
  const connect = JSON.parse(await next());
  assert.ok(connect.connect.client, JSON.stringify(connect));
  assert.ok(connect.connect.subs && connect.connect.subs.news, 'server-side subscription');
  assert.equal(connect.connect.pong, undefined, 'a unidirectional client is not asked to pong');
  // Two publications back to back: two messages, each one JSON value (never newline-joined).
  await api('publish', {channel: 'news', data: {n: 1}});
  await api('publish', {channel: 'news', data: {n: 2}});
  for (const n of [1, 2]) {
    const text = await next();
    assert.ok(!text.includes('\n'), `one value per message: ${text}`);
    const push = JSON.parse(text);
    assert.equal(push.channel, 'news');
    assert.deepEqual(push.pub.data, {n});
  }
  // Later messages are ignored: the connection stays and still receives.
  ws.send('{"id":2,"subscribe":{"channel":"other"}}');
  await api('publish', {channel: 'news', data: {n: 3}});
  assert.deepEqual(JSON.parse(await next()).pub.data, {n: 3});
  const closed = new Promise((r) => ws.on('close', (code) => r(code)));
  ws.close(1000);
  assert.equal(await closed, 1000);
}

// Runs in the page (same origin as hermod): EventSource on uni_sse.
async function eventSourcePage(url) {
  const es = new EventSource(url);
  const queue = [];
  const waiting = [];
  es.onmessage = (e) => (waiting.length ? waiting.shift()(e.data) : queue.push(e.data));
  window.nextEvent = () => (queue.length ? Promise.resolve(queue.shift())
                                         : new Promise((r) => waiting.push(r)));
  return JSON.parse(await window.nextEvent());
}

async function eventSource(page) {
  const connect = encodeURIComponent(JSON.stringify({token}));
  const first = await page.evaluate(eventSourcePage, `/connection/uni_sse?cf_connect=${connect}`);
  assert.ok(first.connect.client && first.connect.subs.news, JSON.stringify(first));
  await api('publish', {channel: 'news', data: {text: 'line one\nline two'}});
  const push = JSON.parse(await page.evaluate(() => window.nextEvent()));
  assert.deepEqual(push, {channel: 'news', pub: push.pub});
  assert.equal(push.pub.data.text, 'line one\nline two');
}

// htmx and its extensions as files from npm, served to the page by request interception (as a
// CDN would serve them; inlined, htmx's own "</script>" text would end the tag).
const require = createRequire(import.meta.url);
const scripts = {
  '/js/htmx.min.js': require.resolve('htmx.org/dist/htmx.min.js'),
  '/js/sse.js': require.resolve('htmx-ext-sse/sse.js'),
  '/js/ws.js': require.resolve('htmx-ext-ws/ws.js'),
};

function htmxPage() {
  const url = `/connection/fragments?channel=news&channel=sport&token=${encodeURIComponent(token)}`;
  return `<!doctype html><html><head><script src="/js/htmx.min.js"></script>
<script src="/js/sse.js"></script></head>
<body><div hx-ext="sse" sse-connect="${url}">
<ul id="list" sse-swap="news" hx-swap="beforeend"></ul>
<ul id="sport" sse-swap="sport" hx-swap="beforeend"></ul></div></body></html>`;
}

async function htmxFragments(page) {
  const items = (list = 'list') =>
    page.$$eval(`#${list} li`, (lis) => lis.map((li) => li.textContent.trim()));
  const waitItems = (n, list = 'list') => page.waitForFunction(
      ([count, id]) => document.querySelectorAll(`#${id} li`).length >= count, [n, list],
      {timeout: 20000});
  const opened = page.waitForEvent('response', (r) => r.url().includes('/connection/fragments'));
  await page.goto(`${base}/htmx-test`);
  await opened;
  // The subscription is made once the stream's head is out: publish after it.
  await api('publish', {channel: 'news', data: '<li class="item">first</li>'});
  await waitItems(1);
  assert.deepEqual(await items(), ['first']);
  await api('publish', {channel: 'sport', data: '<li>s1</li>'});
  await waitItems(1, 'sport');
  // Cut the page's stream (every connection of the user), publish while it reconnects.
  const reconnected = page.waitForEvent(
      'request', (r) => r.url().includes('/connection/fragments'));
  await api('disconnect', {user: 'htmx-user'});
  await api('publish', {channel: 'news', data: '<li class="item">second</li>'});
  await api('publish', {channel: 'sport', data: '<li>s2</li>'});
  await api('publish', {channel: 'news', data: '<li class="item">third\n</li>'});
  await api('publish', {channel: 'sport', data: '<li>s3</li>'});
  // Both are published while the page has no stream (the browser retries after the 1 s the
  // stream's `retry:` asked for), so only the replay from Last-Event-ID can bring them (its
  // header is added below what playwright reports; the curl test checks it byte for byte).
  await reconnected;
  // Every channel's, not only the one the last event was of (the id holds both positions).
  await waitItems(3);
  await waitItems(3, 'sport');
  assert.deepEqual(await items(), ['first', 'second', 'third']);
  assert.deepEqual(await items('sport'), ['s1', 's2', 's3']);
  // And live again after the reconnect.
  await api('publish', {channel: 'news', data: '<li class="item">fourth</li>'});
  await waitItems(4);
  assert.deepEqual(await items(), ['first', 'second', 'third', 'fourth']);
  assert.deepEqual(await items('sport'), ['s1', 's2', 's3']);
}

function htmxWsPage() {
  const url = `/connection/fragments/websocket?channel=chat&token=${encodeURIComponent(token)}`;
  return `<!doctype html><html><head><script src="/js/htmx.min.js"></script>
<script src="/js/ws.js"></script></head>
<body><script>document.addEventListener('htmx:wsOpen', () => (window.wsOpen = true));</script>
<div hx-ext="ws" ws-connect="${url}"><ul id="chat"></ul>
<form id="form" ws-send><input name="message" value="from the page">
<input type="hidden" name="channel" value="chat"><button id="send">send</button></form>
</div></body></html>`;
}

async function htmxWebSocket(page) {
  // A listener on "chat" through another transport: the form's publication must reach it.
  const listener = openUni();
  await listener.opened;
  listener.ws.send(JSON.stringify({token: process.argv[7]}));
  assert.ok(JSON.parse(await listener.next()).connect.subs.chat);
  await page.goto(`${base}/htmx-ws-test`);
  // hermod subscribes the page before its 101 leaves: once htmx says the socket is open,
  // a publication reaches it. htmx swaps by id, out of band: the fragment names its list.
  await page.waitForFunction(() => window.wsOpen === true, null, {timeout: 20000});
  const fragment = '<ul id="chat" hx-swap-oob="beforeend"><li>from the api</li></ul>';
  const landed = page.waitForFunction(
      () => document.querySelectorAll('#chat li').length >= 1, null, {timeout: 20000});
  await api('publish', {channel: 'chat', data: fragment});
  await landed;
  assert.equal(await page.$eval('#chat li', (li) => li.textContent), 'from the api');
  await page.click('#send');
  let push = JSON.parse(await listener.next());
  while (push.pub && typeof push.pub.data === 'string') push = JSON.parse(await listener.next());
  assert.equal(push.channel, 'chat');
  assert.equal(push.pub.data.message, 'from the page');
  assert.equal(push.pub.data.HEADERS, undefined);
  listener.ws.close();
}

let failed = false;
const consoleLines = [];
if (mode === 'ws') {
  try {
    await uniWebSocket();
    console.log('PASS');
  } catch (error) {
    console.error('FAIL:', error);
    failed = true;
  }
} else {
  // A page served by interception is not on the loopback: let it reach hermod there.
  const browser = await launchChromium(executablePath,
                                       ['--disable-features=LocalNetworkAccessChecks']);
  try {
    const page = await browser.newPage();
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    // hermod serves no pages: the test page is served at hermod's origin by the browser's
    // own request interception, so EventSource talks to hermod same-origin.
    await page.route(`${base}/htmx-test`, (route) =>
        route.fulfill({status: 200, contentType: 'text/html', body: htmxPage()}));
    await page.route(`${base}/blank`, (route) =>
        route.fulfill({status: 200, contentType: 'text/html', body: '<!doctype html><p>t</p>'}));
    for (const [path, file] of Object.entries(scripts)) {
      await page.route(`${base}${path}`, (route) => route.fulfill(
          {status: 200, contentType: 'text/javascript', body: readFileSync(file, 'utf8')}));
    }
    await page.route(`${base}/htmx-ws-test`, (route) =>
        route.fulfill({status: 200, contentType: 'text/html', body: htmxWsPage()}));
    if (mode === 'htmxws') {
      await htmxWebSocket(page);
    } else if (mode === 'eventsource') {
      await page.goto(`${base}/blank`);
      await eventSource(page);
    } else {
      await htmxFragments(page);
    }
    console.log('PASS');
  } catch (error) {
    console.error('FAIL:', error);
    console.error(`page console:\n${consoleLines.join('\n')}`);
    failed = true;
  } finally {
    await browser.close();
  }
}
process.exit(failed ? 1 : 0);
