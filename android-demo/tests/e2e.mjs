#!/usr/bin/env node
// The built app in headless Chromium on a phone-sized screen, as a person would use it:
//
//   node tests/e2e.mjs --dir dist --labels '{"character": "Fox"}' --greedy 24 --stop-at 180 --sample 120 \
//     --screenshot s.png
//
// 1. open it from a local server; the model loads; Chrome finds it installable (Page.getInstallabilityErrors)
// 2. pick the elements, greedy, --greedy tokens: the text streams in, tokens/s shows; Copy copies it
// 3. a long run, Stop after a few tokens: it stops and nothing more arrives; the other precisions
// 4. stop the server, reload (everything now comes from the service worker), generate again, greedy: the
//    same fable; then once more with the app's sampling settings (temperature 0.8), and take the screenshot
// With --apk-origin (and --dir the APK's assets/www): the app at the origin the APK's WebView serves,
// where it registers no service worker; greedy generation only. --own '{"character": "industrious beaver"}'
// picks "Your own words…" for those kinds and types the text into their fields.
// Every request the browser makes is recorded; anything not to this machine also goes to a proxy that
// refuses it and writes it down. Prints one JSON object for the caller (tests/android/test_web.py) to check.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../scripts/serve.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TIMEOUT = 180_000;

function parseArgs(argv) {
  const opts = { dir: path.join(ROOT, 'dist'), labels: {}, own: {}, greedy: 24, stopAt: 180, sample: 120, screenshot: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === '--apk-origin') {
      opts.apkOrigin = true;
      i -= 1;
    } else if (key === '--dir') opts.dir = path.resolve(value);
    else if (key === '--labels') opts.labels = JSON.parse(value);
    else if (key === '--own') opts.own = JSON.parse(value);
    else if (key === '--greedy') opts.greedy = Number(value);
    else if (key === '--stop-at') opts.stopAt = Number(value);
    else if (key === '--sample') opts.sample = Number(value);
    else if (key === '--screenshot') opts.screenshot = path.resolve(value);
    else throw new Error(`unknown argument ${key}`);
  }
  return opts;
}

/** A proxy that refuses everything and records what was asked of it (plain HTTP and CONNECT tunnels). */
function refusingProxy() {
  const asked = [];
  const server = http.createServer((req, res) => {
    asked.push(req.url);
    res.writeHead(403).end();
  });
  server.on('connect', (req, socket) => {
    asked.push(`CONNECT ${req.url}`);
    socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({ server, asked, port: server.address().port })));
}

const state = (page) => page.evaluate(() => document.body.dataset.state);

async function waitIdle(page) {
  await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout: TIMEOUT });
  if ((await state(page)) === 'error') throw new Error(`the app failed: ${await page.textContent('#status')}`);
}

async function settings(page, { temperature, maxTokens }) {
  if (!(await page.$eval('#settings', (d) => d.open))) await page.click('#settings summary');
  await page.$eval('#temperature', (el, t) => {
    el.value = String(t);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, temperature);
  await page.fill('#max-tokens', String(maxTokens));
}

async function pick(page, labels, own = {}) {
  await page.click('#surprise'); // every picker gets a value; then exactly the asked ones stay, the rest 'any'
  for (const kind of await page.$$eval('#elements select', (ss) => ss.map((s) => s.dataset.kind))) {
    if (own[kind] !== undefined) {
      await page.selectOption(`#pick-${kind}`, { label: 'Your own words…' });
      await page.fill(`#own-${kind}`, own[kind]); // the field shows once its picker asks for it
    } else if (labels[kind]) await page.selectOption(`#pick-${kind}`, { label: labels[kind] });
    else await page.selectOption(`#pick-${kind}`, '');
  }
}

/** Generate and watch: the story's updates (text, speed shown) while it streams, then the final numbers. */
async function generate(page, { stopAfter = null } = {}) {
  await page.evaluate(() => {
    window.__updates = [];
    new MutationObserver(() => {
      if (document.body.dataset.state === 'generating') {
        window.__updates.push({ chars: document.getElementById('story').textContent.length, speed: document.getElementById('stat-speed').textContent });
      }
    }).observe(document.getElementById('story'), { childList: true, characterData: true, subtree: true });
  });
  if (stopAfter !== null) {
    // Stop is clicked from the page itself as soon as the count shows stopAfter tokens: a click sent from
    // here lands a round trip later (the poll, then the click's checks), by which time a fast precision
    // has decoded tens of tokens more, and the test would measure this harness rather than the app's stop
    await page.evaluate((n) => {
      const count = document.getElementById('stat-tokens');
      const observer = new MutationObserver(() => {
        if (Number(count.textContent) >= n) {
          observer.disconnect();
          document.getElementById('stop').click();
        }
      });
      observer.observe(count, { childList: true, characterData: true, subtree: true });
    }, stopAfter);
  }
  await page.click('#generate');
  let textAtStop = null;
  if (stopAfter !== null) {
    await page.waitForFunction((n) => Number(document.getElementById('stat-tokens').textContent) >= n, stopAfter, { timeout: TIMEOUT });
  }
  await waitIdle(page);
  const result = await page.evaluate(() => {
    const story = document.getElementById('story');
    return {
      text: story.textContent,
      tokens: JSON.parse(story.dataset.tokens ?? '[]'),
      reason: story.dataset.reason,
      updates: window.__updates,
      stats: Object.fromEntries(['load', 'ttft', 'speed', 'tokens'].map((k) => [k, document.getElementById(`stat-${k}`).textContent])),
    };
  });
  if (stopAfter !== null) {
    textAtStop = result.text;
    await page.waitForTimeout(500);
    result.grewAfterStop = (await page.textContent('#story')) !== textAtStop;
  }
  return result;
}

// The APK's WebView serves the app at this origin (android/smali/.../AssetClient.smali); --apk-origin maps
// the name to the local server so that the app runs as it does there (no service worker) in Chromium.
const APK_HOST = 'appassets.androidplatform.net';

async function launch(proxyPort, extraArgs) {
  // a profile of its own, not an incognito context: Chrome never offers to install from incognito
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'fabulist-e2e-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    // loopback never goes through a proxy: everything else would, and is refused and recorded
    args: [...CHROMIUM_ARGS, `--proxy-server=http://127.0.0.1:${proxyPort}`, ...extraArgs],
    viewport: { width: 412, height: 915 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const close = async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { context, page, requests, errors, close };
}

/** The whole story on a local server: install, generate, stop, offline. */
async function webRun(opts, site, { context, page, requests }, out) {
  await page.goto(site.url);
  await waitIdle(page);
  out.status = await page.textContent('#status');
  out.precisions = await page.$$eval('#quant option', (os) => os.map((o) => o.value));
  const cdp = await context.newCDPSession(page);
  out.installabilityErrors = (await cdp.send('Page.getInstallabilityErrors')).installabilityErrors;
  out.manifestErrors = (await cdp.send('Page.getAppManifest')).errors;

  await pick(page, opts.labels);
  out.picked = await page.$$eval('#elements select', (ss) => Object.fromEntries(ss.map((s) => [s.dataset.kind, s.value])));
  await settings(page, { temperature: 0, maxTokens: opts.greedy });
  out.greedy = await generate(page);
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: site.url });
  await page.click('#copy');
  out.copied = await page.evaluate(() => navigator.clipboard.readText());

  await settings(page, { temperature: 0, maxTokens: opts.stopAt });
  out.stopped = await generate(page, { stopAfter: 5 });

  // every other precision the picker offers: load it, greedy again; then back to the default
  const first = out.precisions[0];
  out.otherPrecisions = {};
  for (const quant of out.precisions.slice(1)) {
    await page.selectOption('#quant', quant);
    await waitIdle(page);
    await settings(page, { temperature: 0, maxTokens: opts.greedy });
    out.otherPrecisions[quant] = (await generate(page)).tokens;
  }
  if (out.precisions.length > 1) {
    await page.selectOption('#quant', first);
    await waitIdle(page);
  }

  await page.waitForFunction(() => document.body.dataset.offline, null, { timeout: TIMEOUT });
  out.offlineQuant = await page.evaluate(() => document.body.dataset.offline);
  await site.close();
  out.serverDown = await fetch(site.url).then(() => false, () => true);
  const before = requests.length;
  await page.reload();
  await waitIdle(page);
  await pick(page, opts.labels);
  await settings(page, { temperature: 0, maxTokens: opts.greedy });
  out.offline = await generate(page);
  out.offlineRequests = requests.length - before;
  await settings(page, { temperature: 0.8, maxTokens: opts.sample });
  out.sampled = await generate(page);
}

/** The app at the APK's origin: it must not register a service worker, and must generate all the same. */
async function apkRun(opts, site, { page }, out) {
  out.url = `http://${APK_HOST}:${new URL(site.url).port}/index.html`;
  await page.goto(out.url);
  await waitIdle(page);
  out.status = await page.textContent('#status');
  out.precisions = await page.$$eval('#quant option', (os) => os.map((o) => o.value));
  await pick(page, opts.labels, opts.own);
  out.picked = await page.$$eval('#elements select', (ss) => Object.fromEntries(ss.map((s) => [s.dataset.kind, s.value])));
  await settings(page, { temperature: 0, maxTokens: opts.greedy });
  out.greedy = await generate(page);
  out.statusAfter = await page.textContent('#status');
  out.serviceWorkers = await page.evaluate(async () => (await navigator.serviceWorker.getRegistrations()).length);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const proxy = await refusingProxy();
  const site = await serve({ dir: opts.dir, port: 0 });
  const origin = `http://${APK_HOST}:${new URL(site.url).port}`;
  const extra = opts.apkOrigin
    ? [`--host-resolver-rules=MAP ${APK_HOST} 127.0.0.1`, `--proxy-bypass-list=${APK_HOST}`,
      `--unsafely-treat-insecure-origin-as-secure=${origin}`] // the APK's origin is https
    : [];
  const browser = await launch(proxy.port, extra);
  const out = { url: site.url };
  try {
    await (opts.apkOrigin ? apkRun : webRun)(opts, site, browser, out);
    await browser.page.$eval('#settings', (d) => (d.open = false));
    if (opts.screenshot) {
      await browser.page.screenshot({ path: opts.screenshot, fullPage: true });
      out.screenshot = opts.screenshot;
    }
    out.pageErrors = browser.errors;
  } finally {
    await browser.close();
    await site.close();
    proxy.server.close();
  }
  const hosts = ['127.0.0.1', 'localhost', '[::1]', ...(opts.apkOrigin ? [APK_HOST] : [])];
  const local = (u) => /^(blob|data):/.test(u) || hosts.includes(new URL(u).hostname);
  out.requests = browser.requests.length;
  out.nonLocalRequests = browser.requests.filter((u) => !local(u));
  out.proxyAsked = proxy.asked;
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error(`e2e: ${err.stack ?? err}`);
  process.exit(1);
});
