#!/usr/bin/env node
// Build the web app: app/ + the WebAssembly runtime + an exported model folder -> dist/ (or --out).
//
//   node scripts/build.mjs                                   # the shipped model, runtime/models/fable-5m
//   node scripts/build.mjs --model ../out/demo/run --quant int4,fp32 --out /tmp/www
//
// The model folder is what `fabulist export` writes: config.json, tokenizer.json, the ONNX graphs of
// optimum's layout (QUANTS below: int8-fold, int4, int8, fp32), fable_format.json (the prompt format).
// Every precision present is copied unless --quant names some. The output holds:
//   the app's own files, vendor/ (transformers.js and onnxruntime-web's wasm, the versions it bundles),
//   model/ (the copied folder + app_model.json: name, context, precisions), precache.js (for sw.js).
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_MODEL = path.join(ROOT, '..', 'runtime', 'models', 'fable-5m');
// precision -> transformers.js dtype and the file `fabulist export` writes for it, read from the artifact
// registry the exporters write by (fabulist/artifacts.json: the rows with a `web` dtype). transformers.js
// finds a file by <model_file_name (default 'model')><the dtype's suffix>.onnx; int8-fold has no dtype of
// its own (it runs in fp32), so it names its file. PREFERENCE orders them for the app's default: int8-fold
// (int8 weights on disk, rebuilt as fp32 when the session loads, export/web.py) decodes ~4-5x faster than
// int4 on the wasm kernels, which have no fast 4- or 8-bit MatMul (README, browser table).
const REGISTRY = JSON.parse(fs.readFileSync(path.join(ROOT, '..', 'fabulist', 'artifacts.json'), 'utf8'));
const SUFFIX = { fp32: '', fp16: '_fp16', int8: '_int8', q4: '_q4' }; // transformers.js' dtype suffixes
const PREFERENCE = ['int8-fold', 'int4', 'int8', 'fp32'];
export const QUANTS = Object.fromEntries(
  REGISTRY.artifacts
    .filter((a) => a.web)
    .map((a) => {
      const stem = path.posix.basename(a.path, '.onnx');
      const entry = { dtype: a.web, file: a.path };
      if (stem !== `model${SUFFIX[a.web]}`) entry.model_file_name = stem;
      return [a.method ? `${a.quant}-${a.method}` : a.quant, entry];
    })
    .sort(([a], [b]) => rank(a) - rank(b)),
);
const GRAPH_DIRS = [...new Set(Object.values(QUANTS).map((q) => `model/${path.posix.dirname(q.file)}/`))];

function rank(precision) {
  const i = PREFERENCE.indexOf(precision);
  return i < 0 ? PREFERENCE.length : i;
}
const MODEL_FILES = ['config.json', 'tokenizer.json'];
const OPTIONAL_FILES = ['generation_config.json', 'tokenizer_config.json', 'special_tokens_map.json'];
const FORMAT_FILE = 'fable_format.json';

class BuildError extends Error {}

function parseArgs(argv) {
  const opts = { model: DEFAULT_MODEL, quant: null, out: path.join(ROOT, 'dist') };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new BuildError(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--model') opts.model = path.resolve(value());
    else if (arg === '--quant') opts.quant = value().split(',').map((q) => q.trim()).filter(Boolean);
    else if (arg === '--out') opts.out = path.resolve(value());
    else if (arg === '-h' || arg === '--help') opts.help = true;
    else throw new BuildError(`unknown argument ${arg} (see --help)`);
  }
  return opts;
}

function readJSON(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new BuildError(`${file}: ${err.code === 'ENOENT' ? 'missing' : `not valid JSON (${err.message})`}`);
  }
}

/** The precisions to copy: those asked for (each must exist) or every one present. */
function chooseQuants(model, asked) {
  const present = Object.keys(QUANTS).filter((q) => fs.existsSync(path.join(model, QUANTS[q].file)));
  const hint = `make one with \`fabulist export ${model} --format onnx --quant int4\``;
  const files = Object.values(QUANTS).map((q) => q.file).join(', ');
  if (!present.length) throw new BuildError(`${model} has no ONNX model (${files}): ${hint}`);
  if (!asked) return present;
  for (const q of asked) {
    if (!QUANTS[q]) throw new BuildError(`unknown precision ${q}; choose from ${Object.keys(QUANTS).join(', ')}`);
    if (!present.includes(q)) throw new BuildError(`${model} has no ${q} model (present: ${present.join(', ')})`);
  }
  return Object.keys(QUANTS).filter((q) => asked.includes(q));
}

function checkModel(model) {
  if (!fs.existsSync(model)) {
    const made = model === DEFAULT_MODEL ? ' (the shipped model is not in this checkout; pass --model DIR)' : '';
    throw new BuildError(`no model folder at ${model}${made}`);
  }
  for (const f of MODEL_FILES) {
    if (!fs.existsSync(path.join(model, f))) throw new BuildError(`${model} has no ${f}: pass a folder \`fabulist export\` wrote`);
  }
  const config = readJSON(path.join(model, 'config.json'));
  if (config.model_type !== 'llama') throw new BuildError(`${model}/config.json: model_type ${config.model_type}, expected llama`);
  return config;
}

/** fable_format.json from the folder; an older export has none, so ask the fabulist package for it. */
function promptFormat(model) {
  const file = path.join(model, FORMAT_FILE);
  if (fs.existsSync(file)) return readJSON(file);
  const venv = path.join(ROOT, '..', '.venv', 'bin', 'python');
  const python = process.env.FABULIST_PYTHON || (fs.existsSync(venv) ? venv : 'python3');
  const code = 'import json; from fabulist import fable_format as ff; print(json.dumps(ff.describe()))';
  const run = spawnSync(python, ['-c', code], { encoding: 'utf8' });
  if (run.status !== 0) {
    throw new BuildError(`${model} has no ${FORMAT_FILE} and ${python} could not describe the format; re-export the model`);
  }
  console.log(`note: ${model} has no ${FORMAT_FILE} (exported before it existed); written from the fabulist package`);
  return JSON.parse(run.stdout);
}

/** transformers.js bundles onnxruntime-web's JavaScript; the wasm copied beside it must be the same build. */
function runtimeFiles() {
  const modules = path.join(ROOT, 'node_modules');
  const tjs = path.join(modules, '@huggingface', 'transformers');
  const ort = path.join(modules, 'onnxruntime-web');
  if (!fs.existsSync(tjs) || !fs.existsSync(ort)) {
    throw new BuildError('node_modules is missing: run `ONNXRUNTIME_NODE_INSTALL=skip npm ci` in android-demo/');
  }
  const wanted = readJSON(path.join(tjs, 'package.json')).dependencies['onnxruntime-web'];
  const have = readJSON(path.join(ort, 'package.json')).version;
  if (wanted !== have) throw new BuildError(`transformers.js wants onnxruntime-web ${wanted} but ${have} is installed: run npm ci`);
  const files = [
    [path.join(tjs, 'dist', 'transformers.min.js'), 'vendor/transformers.js'],
    [path.join(ort, 'dist', 'ort-wasm-simd-threaded.mjs'), 'vendor/ort-wasm-simd-threaded.mjs'],
    [path.join(ort, 'dist', 'ort-wasm-simd-threaded.wasm'), 'vendor/ort-wasm-simd-threaded.wasm'],
  ];
  const notice = [tjs, ort]
    .map((dir) => readJSON(path.join(dir, 'package.json')))
    .map((p) => `${p.name} ${p.version}, ${p.license} license (${p.homepage ?? p.repository?.url ?? ''})`);
  return { files, notice: `${notice.join('\n')}\n` };
}

function walk(dir, base = dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? walk(full, base) : [path.relative(base, full).split(path.sep).join('/')];
  });
}

function sha256(file) {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function write(file, text) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

export function build(opts) {
  const model = opts.model;
  const config = checkModel(model);
  const quants = chooseQuants(model, opts.quant);
  const format = promptFormat(model);
  const runtime = runtimeFiles();
  const out = opts.out;
  const tmp = `${out}.tmp-${process.pid}`; // build beside, then swap: a failed build leaves the old one
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.cpSync(path.join(ROOT, 'app'), tmp, { recursive: true });
  for (const [src, rel] of runtime.files) fs.cpSync(src, path.join(tmp, rel));
  write(path.join(tmp, 'vendor', 'NOTICE.txt'), runtime.notice);
  for (const f of [...MODEL_FILES, ...OPTIONAL_FILES]) {
    if (fs.existsSync(path.join(model, f))) fs.cpSync(path.join(model, f), path.join(tmp, 'model', f));
  }
  write(path.join(tmp, 'model', FORMAT_FILE), `${JSON.stringify(format, null, 1)}\n`);
  const entries = quants.map((q) => {
    const src = path.join(model, QUANTS[q].file);
    fs.cpSync(src, path.join(tmp, 'model', QUANTS[q].file));
    return { quant: q, ...QUANTS[q], bytes: fs.statSync(src).size, sha256: sha256(src) };
  });
  const info = {
    name: path.basename(model),
    context: config.max_position_embeddings,
    default: quants[0], // the first present in QUANTS' order of preference: int8-fold, else int4
    quants: entries,
  };
  write(path.join(tmp, 'model', 'app_model.json'), `${JSON.stringify(info, null, 1)}\n`);
  // precache: everything but the model graphs (sw.js keeps the one the user loads) and the worker itself
  const files = walk(tmp).filter((f) => !GRAPH_DIRS.some((d) => f.startsWith(d)) && f !== 'sw.js').sort();
  const hash = createHash('sha256');
  for (const f of walk(tmp).sort()) hash.update(f).update(sha256(path.join(tmp, f)));
  const version = hash.digest('hex').slice(0, 16);
  const precache = { version, files: ['./', ...files] };
  write(path.join(tmp, 'precache.js'), `self.PRECACHE = ${JSON.stringify(precache, null, 1)};\n`);
  fs.rmSync(out, { recursive: true, force: true });
  fs.renameSync(tmp, out);
  return { out, info, version, bytes: walk(out).reduce((n, f) => n + fs.statSync(path.join(out, f)).size, 0) };
}

const USAGE = `usage: node scripts/build.mjs [--model DIR] [--quant int8-fold,int4,int8,fp32] [--out DIR]
  --model  exported model folder (default: runtime/models/fable-5m)
  --quant  precisions to ship (default: every one in the folder)
  --out    output folder (default: android-demo/dist)`;

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const opts = parseArgs(process.argv.slice(2));
    if (opts.help) {
      console.log(USAGE);
    } else {
      const { out, info, version, bytes } = build(opts);
      const qs = info.quants.map((q) => `${q.quant} ${(q.bytes / 1e6).toFixed(1)} MB`).join(', ');
      console.log(`built ${out} (${(bytes / 1e6).toFixed(1)} MB, version ${version}): ${info.name} [${qs}]`);
    }
  } catch (err) {
    if (!(err instanceof BuildError)) throw err;
    console.error(`build: ${err.message}`);
    process.exit(1);
  }
}
