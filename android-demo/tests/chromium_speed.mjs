#!/usr/bin/env node
// Decode speed of every ONNX precision of a model folder in headless Chromium, on the app's own runtime
// (transformers.js on onnxruntime-web's wasm kernels, in a worker of a cross-origin-isolated page):
//
//   node tests/chromium_speed.mjs --model DIR --threads 1,2 --tokens 64 --repeats 3 [--quants int4,fp32]
//
// The app is built from DIR (scripts/build.mjs) with the test page speed_page/ beside it and served on
// this machine. One worker per thread count loads every precision once; then each repeat runs every
// (threads, precision) pair in turn, so a busy machine slows them all alike. Each run is one greedy
// generation of exactly --tokens new tokens from one prompt, after one warm-up run per pair. Prints one
// JSON object: {isolated, tokens, loads: {"1": {threads, seconds}}, threads: {"1": {quant: {decode_tok_s: [...], prefill_s: [...],
// total_tok_s: [...], vs_int4: best decode rate / int4's best}}}}. Decode rate: (tokens - 1) / the
// seconds from the first new token to the last; the prefill (prompt + first token) is reported apart.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { build, QUANTS } from '../scripts/build.mjs';
import { serve } from '../scripts/serve.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// Graphs only benchmarks make: the app does not offer them, but they are measured beside the others.
// int8-dynamic: quantize_dynamic's MatMulInteger graph (export/onnx.py, --method dynamic).
// benchmarks/web_precision.py stages it beside int8's file, named after it.
// int8-fold-optimum: the int8 fold of optimum's graph (int8-fold folds the builder's); int4-builder:
// onnxruntime-genai's builder INT4 graph in one file. Each is loaded by its file name (dtype fp32: no suffix).
const DYNAMIC = QUANTS.int8.file.replace(/\.onnx$/, '_dynamic.onnx');
const FOLD_OPTIMUM = QUANTS['int8-fold'].file.replace(/\.onnx$/, '_optimum.onnx');
const INT4_BUILDER = QUANTS.int4.file.replace(/\.onnx$/, '_builder.onnx');
const named = (file) => ({ dtype: 'fp32', file, model_file_name: path.posix.basename(file, '.onnx') });
export const EXTRA = {
  'int8-dynamic': named(DYNAMIC),
  'int8-fold-optimum': named(FOLD_OPTIMUM),
  'int4-builder': named(INT4_BUILDER),
};
const ALL = { ...QUANTS, ...EXTRA };
const TIMEOUT = 600_000;

function parseArgs(argv) {
  const opts = { model: null, quants: null, threads: [1, 2], tokens: 64, repeats: 3 };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === '--model') opts.model = path.resolve(value);
    else if (key === '--quants') opts.quants = value.split(',');
    else if (key === '--threads') opts.threads = value.split(',').map(Number);
    else if (key === '--tokens') opts.tokens = Number(value);
    else if (key === '--repeats') opts.repeats = Number(value);
    else throw new Error(`unknown argument ${key}`);
  }
  if (!opts.model) throw new Error('--model DIR is required');
  const present = Object.keys(ALL).filter((q) => fs.existsSync(path.join(opts.model, ALL[q].file)));
  opts.quants ??= present;
  const missing = opts.quants.filter((q) => !present.includes(q));
  if (missing.length) throw new Error(`${opts.model} has no ${missing.join(', ')} graph (present: ${present.join(', ')})`);
  return opts;
}

/** The built app with every graph under test and the speed page, in a temporary folder. */
function site(opts) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fabulist-speed-'));
  const app = opts.quants.filter((q) => QUANTS[q]);
  build({ model: opts.model, quant: app.length ? app : null, out: path.join(dir, 'www') });
  for (const q of opts.quants.filter((x) => EXTRA[x])) {
    fs.cpSync(path.join(opts.model, EXTRA[q].file), path.join(dir, 'www', 'model', EXTRA[q].file));
  }
  fs.cpSync(path.join(HERE, 'speed_page'), path.join(dir, 'www', 'speed'), { recursive: true });
  return dir;
}

const best = (xs) => Math.max(...xs);

async function measure(page, opts) {
  const quants = opts.quants.map((q) => ({ quant: q, dtype: ALL[q].dtype, model_file_name: ALL[q].model_file_name }));
  const runs = {};
  const loads = {};
  for (const t of opts.threads) {
    loads[t] = await page.evaluate(([n, qs]) => window.bench.load(n, qs), [t, quants]);
    runs[t] = Object.fromEntries(opts.quants.map((q) => [q, { decode_tok_s: [], prefill_s: [], total_tok_s: [] }]));
  }
  for (let r = 0; r <= opts.repeats; r++) {
    for (const t of opts.threads) {
      for (const q of opts.quants) {
        const run = await page.evaluate(([n, quant, k]) => window.bench.run(n, quant, k), [t, q, opts.tokens]);
        if (run.tokens !== opts.tokens) throw new Error(`${q}: ${run.tokens} tokens, not ${opts.tokens}`);
        if (r === 0) continue; // warm-up
        runs[t][q].decode_tok_s.push((run.tokens - 1) / run.decode_s);
        runs[t][q].prefill_s.push(run.prefill_s);
        runs[t][q].total_tok_s.push(run.tokens / run.total_s);
      }
    }
  }
  for (const byQuant of Object.values(runs)) {
    const base = byQuant.int4 && best(byQuant.int4.decode_tok_s);
    for (const m of Object.values(byQuant)) m.vs_int4 = base ? best(m.decode_tok_s) / base : null;
  }
  return { runs, loads };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const dir = site(opts);
  const server = await serve({ dir: path.join(dir, 'www'), port: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(TIMEOUT);
    await page.goto(`${server.url}speed/index.html`);
    await page.waitForFunction(() => document.body.dataset.ready === '1');
    const isolated = await page.evaluate(() => window.bench.isolated);
    if (!isolated && opts.threads.some((t) => t > 1)) throw new Error('the page is not cross-origin isolated: no wasm threads');
    const { runs, loads } = await measure(page, opts);
    const out = { isolated, tokens: opts.tokens, repeats: opts.repeats, chromium: browser.version(), loads, threads: runs };
    console.log(JSON.stringify(out));
  } finally {
    await browser.close();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`chromium_speed: ${err.stack ?? err}`);
  process.exit(1);
});
