// Debian's Chromium, headless, driven by playwright-core: one launch for every browser test.
// The flags keep it off the network (this machine's closed network refuses Chromium's
// background connections, many at a time) and off /dev/shm (small in containers).
import {chromium} from 'playwright-core';

export function launchChromium(executablePath, extraArgs = []) {
  return chromium.launch({
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--disable-dev-shm-usage', ...extraArgs],
    timeout: 60000,
  });
}
