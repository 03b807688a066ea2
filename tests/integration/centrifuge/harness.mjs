// Starts the real hermod binary for the centrifuge SDK tests and puts a TCP proxy between
// clients and it, so a test can cut a client's connection the way a network does (no close
// frame): the SDK then reconnects by itself, and recovers what it missed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const START_TIMEOUT_MS = 30000;

// nats-server on 127.0.0.1, port chosen by the server (-p -1), read from its log. With
// jetstream: `-js` on a temporary store dir, removed by stop(); kill() is SIGKILL.
export async function startNats(binary = 'nats-server', { jetstream = false } = {}) {
  const args = ['-a', '127.0.0.1', '-p', '-1'];
  const dir = jetstream ? fs.mkdtempSync(path.join(os.tmpdir(), 'hermod-js-')) : null;
  if (dir) args.push('-js', '-sd', dir);
  const proc = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const log = [];
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('nats-server did not listen:\n' + log.join(''))),
                             START_TIMEOUT_MS);
    proc.on('error', (e) => reject(e));
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      log.push(chunk);
      const m = /Listening for client connections on [^\s]+:(\d+)/.exec(log.join(''));
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.on('exit', (code) => reject(new Error(`nats-server exited with ${code}:\n${log.join('')}`)));
  });
  return {
    port,
    async stop() {
      proc.kill('SIGTERM');
      await exited;
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startHermod(binary, config) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hermod-centrifuge-'));
  const configPath = path.join(dir, 'hermod.json');
  fs.writeFileSync(configPath, JSON.stringify(config));
  const proc = spawn(binary, ['serve', '--bind', '127.0.0.1', '--port', '0', '--workers', '2',
                              '--config', configPath],
                     { stdio: ['ignore', 'ignore', 'pipe'] });
  const log = [];
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('hermod did not start:\n' + log.join(''))),
                             START_TIMEOUT_MS);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      log.push(chunk);
      const m = /listening on http:\/\/[^\s:]+:(\d+)/.exec(log.join(''));
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.on('exit', (code) => reject(new Error(`hermod exited with ${code}:\n${log.join('')}`)));
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    port,
    log,
    // SIGTERM, then the exit status (0 expected).
    async stop() {
      proc.kill('SIGTERM');
      const status = await exited;
      fs.rmSync(dir, { recursive: true, force: true });
      // What the server said is the only clue to an unclean exit: show it with the status.
      if (status.code !== 0) console.error(`hermod exited with ${JSON.stringify(status)}:\n${log.join('')}`);
      return status;
    },
    // SIGKILL; resolves once the process is gone.
    kill() {
      proc.kill('SIGKILL');
      return exited;
    },
  };
}

// A TCP proxy to 127.0.0.1:target; cutAll() destroys every proxied connection; pauseAll()
// stops reading what the server sends (a client that stalls: the server's queue for it
// grows) until resumeAll(); counts.down is the bytes sent to clients; retarget(port) sends new connections to another port (a
// restarted server).
export async function startProxy(target) {
  const pairs = new Set();
  const counts = { down: 0 };  // bytes the server sent through the proxy
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    upstream.on('data', (chunk) => { counts.down += chunk.length; });
    const drop = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    counts,
    pauseAll() {
      for (const { client, upstream } of pairs) {
        upstream.unpipe(client);
        upstream.pause();
      }
    },
    resumeAll() {
      for (const { client, upstream } of pairs) upstream.pipe(client);
    },
    cutAll() {
      for (const { client, upstream } of pairs) {
        client.resetAndDestroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    close() {
      server.close();
    },
    retarget(port) {
      target = port;
    },
  };
}

// The value after `name` on the command line, or fallback.
// A port nothing listens on: where a test sends a client it wants cut off (a blocked
// WebSocket endpoint, a server that is away).
export async function closedPort() {
  const s = net.createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}

export function argValue(name, fallback = undefined) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

// Polls predicate (sync or async) until it is truthy; fails with `what` after timeoutMs.
export async function waitFor(what, predicate, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));  // poll interval of a condition
  }
  throw new Error(`timed out waiting for ${what}`);
}

// Resolves with the first `event` from emitter whose argument satisfies pred.
export function nextEvent(emitter, event, pred = () => true, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`timed out waiting for ${event}`));
    }, timeoutMs);
    function handler(ctx) {
      if (!pred(ctx)) return;
      clearTimeout(timer);
      emitter.off(event, handler);
      resolve(ctx);
    }
    emitter.on(event, handler);
  });
}

// A centrifuge client for ws://127.0.0.1:port (Node's `ws` as its WebSocket, quick
// reconnects), remembered in `into` so the test can disconnect every client at the end.
export function sdkClient(port, into) {
  const c = new Centrifuge(`ws://127.0.0.1:${port}/connection/websocket`, {
    websocket: WebSocket,
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
  });
  into.push(c);
  return c;
}

// Connects c and resolves with the 'connected' event's context.
export async function connected(c) {
  const ctx = nextEvent(c, 'connected');
  c.connect();
  return ctx;
}

// Subscribes c to channel and resolves with the subscription once 'subscribed' fired.
export async function subscribed(c, channel, options = {}) {
  const sub = c.newSubscription(channel, options);
  const ctx = nextEvent(sub, 'subscribed');
  sub.subscribe();
  await ctx;
  return sub;
}
