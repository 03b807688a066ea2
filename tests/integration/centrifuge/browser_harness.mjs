// What the browser tests (browser_test.mjs: the SDK's JSON bundle; browser_protobuf_test.mjs:
// its Protobuf bundle) share: hermod started with the test's config behind the harness's TCP
// proxy, Debian's headless Chromium (playwright-core from ../node) with one blank page that
// has loaded the SDK bundle and a few in-page helpers, the server API, HS256 tokens, and the
// page's console shown when a test fails (Chromium explains WebSocket failures only there).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { launchChromium } from '../node/chromium.mjs';
import { startHermod, startProxy } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name, fallback) =>
  process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback;

// The command line's --hermod and --chromium.
export function browserArgs() {
  const binary = arg('--hermod');
  assert.ok(binary, 'usage: --hermod PATH [--chromium PATH]');
  return { binary, executablePath: arg('--chromium', '/usr/bin/chromium') };
}

// An HS256 JWT, as an application backend would make one.
export function jwt(claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${crypto.createHmac('sha256', 'hmac-secret').update(body).digest('base64url')}`;
}
export const now = () => Math.floor(Date.now() / 1000);

// Starts hermod (config; api_key 'test-key', token_hmac_secret_key 'hmac-secret' expected),
// the proxy, Chromium and its page with the SDK bundle (a file in the SDK's dist/).
export async function startBrowserHarness(config, bundle) {
  const { binary, executablePath } = browserArgs();
  const h = { consoleLines: [] };
  h.hermod = await startHermod(binary, config);
  h.proxy = await startProxy(h.hermod.port);
  h.browser = await launchChromium(executablePath);
  h.page = await h.browser.newPage();
  h.page.on('console', (m) => h.consoleLines.push(`${m.type()}: ${m.text()}`));
  await h.page.addScriptTag({ path: path.join(here, 'node_modules/centrifuge/dist', bundle) });
  // In-page helpers: the SDK's events as promises with a deadline, clients remembered.
  await h.page.evaluate(() => {
    window.clients = [];
    window.nextEvent = (emitter, event, pred = () => true, timeoutMs = 10000) =>
      new Promise((resolve, reject) => {
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
    window.connectClient = async (url, options = {}) => {
      const c = new Centrifuge(url, { minReconnectDelay: 50, maxReconnectDelay: 300, ...options });
      window.clients.push(c);
      const connected = window.nextEvent(c, 'connected');
      c.connect();
      await connected;
      return c;
    };
    window.subscribeTo = async (c, channel, options = {}) => {
      const sub = c.newSubscription(channel, options);
      const subscribed = window.nextEvent(sub, 'subscribed');
      sub.subscribe();
      await subscribed;
      return sub;
    };
    window.text = (bytes) => new TextDecoder().decode(bytes);
  });
  // The server API, answered 200.
  h.api = async (method, body) => {
    const response = await fetch(`http://127.0.0.1:${h.hermod.port}/api/${method}`, {
      method: 'POST',
      headers: { Authorization: 'apikey test-key' },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 200);
    return response.json();
  };
  // Runs fn in the page; the page's console is printed if test t fails.
  h.inPage = (t, fn, fnArg) => {
    t.after(() => {
      if (t.signal.aborted) console.error(`page console:\n${h.consoleLines.join('\n')}`);
    });
    return h.page.evaluate(fn, fnArg);
  };
  // Closes the browser, the proxy and hermod (which must exit 0).
  h.stop = async () => {
    if (h.browser) await h.browser.close();
    if (h.proxy) h.proxy.close();
    if (h.hermod) {
      const status = await h.hermod.stop();
      assert.equal(status.code, 0, h.hermod.log.join(''));
    }
  };
  return h;
}
