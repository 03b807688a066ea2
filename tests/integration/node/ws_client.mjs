// Node's `ws` against a running hermod: echo text and binary with permessage-deflate on and
// off, fragmented sends, ping/pong, the close handshake. Usage: node ws_client.mjs PORT.
// Exits non-zero on the first failed assertion (run by ws_node_test.py, which starts hermod).
import assert from 'node:assert/strict';
import {randomBytes} from 'node:crypto';
import WebSocket from 'ws';

const port = Number(process.argv[2]);
assert.ok(port > 0, 'usage: node ws_client.mjs PORT');
const url = `ws://127.0.0.1:${port}/connection/echo`;
const watchdog = setTimeout(() => {
  console.error('FAIL: timed out after 60 s');
  process.exit(1);
}, 60000);

// A socket whose incoming messages are queued, so `next()` can await them in order.
function open(options) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {maxPayload: 4 << 20, ...options});
    const queue = [];
    const waiting = [];
    ws.on('message', (data, isBinary) => {
      const item = {data, isBinary};
      if (waiting.length) waiting.shift()(item); else queue.push(item);
    });
    ws.next = () => (queue.length ? Promise.resolve(queue.shift())
                                   : new Promise((r) => waiting.push(r)));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

async function echoes(ws, payload, isBinary) {
  ws.send(payload, {binary: isBinary});
  const got = await ws.next();
  assert.equal(got.isBinary, isBinary);
  assert.ok(Buffer.from(payload).equals(got.data), `echo of ${payload.length} bytes differs`);
}

async function fragmented(ws, parts, isBinary) {
  parts.forEach((part, i) => ws.send(part, {binary: isBinary, fin: i === parts.length - 1}));
  const got = await ws.next();
  assert.equal(got.isBinary, isBinary);
  assert.ok(Buffer.concat(parts.map((p) => Buffer.from(p))).equals(got.data),
            'fragmented message echo differs');
}

async function closes(ws) {
  const closed = new Promise((r) => ws.once('close', (code, reason) => r({code, reason})));
  ws.close(1000, 'bye');
  const {code} = await closed;
  assert.equal(code, 1000);
}

async function variant(perMessageDeflate) {
  const name = perMessageDeflate ? 'deflate' : 'plain';
  const ws = await open({perMessageDeflate});
  if (perMessageDeflate) {
    assert.match(ws.extensions, /permessage-deflate/, `extensions: "${ws.extensions}"`);
  } else {
    assert.equal(ws.extensions, '');
  }
  for (const size of [0, 1, 125, 126, 65535, 65536, 1 << 20]) {
    await echoes(ws, 'h\u00e9rmod\u2713 '.repeat(size / 10 + 1).slice(0, size), false);
    await echoes(ws, randomBytes(size), true);
    await echoes(ws, Buffer.alloc(size, 7), true);
  }
  await fragmented(ws, ['one ', 'two ', 'three'], false);
  await fragmented(ws, [randomBytes(1000), randomBytes(70000), randomBytes(3)], true);
  // A multi-byte character split between fragments stays valid UTF-8 for the server.
  await fragmented(ws, [Buffer.from([0x61, 0xe2, 0x82]), Buffer.from([0xac, 0x62])], false);

  const pong = new Promise((r) => ws.once('pong', r));
  ws.ping(Buffer.from('are you there'));
  assert.equal((await pong).toString(), 'are you there');

  await closes(ws);
  console.log(`ok: ${name}`);
}

try {
  await variant(true);
  await variant(false);
  clearTimeout(watchdog);
  console.log('PASS');
} catch (error) {
  console.error('FAIL:', error);
  process.exit(1);
}
