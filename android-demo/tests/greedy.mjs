#!/usr/bin/env node
// Greedy fables from an exported model folder with transformers.js on onnxruntime-web's WebAssembly
// backend, the runtime the app uses on a phone, here in Node:
//
//   node tests/greedy.mjs --model DIR --labels '[{"character": "Fox"}, {}]' --quants int4,int8,fp32 --max 40
//
// Prompts are built by the app's own prompt.js from the folder's fable_format.json. Prints one JSON object:
// {prompts: [...], results: {int4: [{prompt_ids, tokens, logits}, ...], ...}} for tests/android/test_web.py
// to compare with the Python runtime: tokens one for one, and `logits`, the prompt's last-position logits
// (one forward pass), within a tolerance where integer kernels differ by CPU.
import fs from 'node:fs';
import path from 'node:path';
import { buildPrompt } from '../app/prompt.js';
import { QUANTS } from '../scripts/build.mjs';
import { AutoModelForCausalLM, AutoTokenizer, env, modelOptions } from './wasm.mjs';

function parseArgs(argv) {
  const opts = { model: null, labels: [{}], quants: Object.keys(QUANTS), max: 40 };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === '--model') opts.model = path.resolve(value);
    else if (key === '--labels') opts.labels = JSON.parse(value);
    else if (key === '--quants') opts.quants = value.split(',');
    else if (key === '--max') opts.max = Number(value);
    else throw new Error(`unknown argument ${key}`);
  }
  if (!opts.model) throw new Error('--model DIR is required');
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  env.localModelPath = path.dirname(opts.model);
  const id = path.basename(opts.model);
  const format = JSON.parse(fs.readFileSync(path.join(opts.model, 'fable_format.json'), 'utf8'));
  const prompts = opts.labels.map((labels) => buildPrompt(format, labels));
  const tokenizer = await AutoTokenizer.from_pretrained(id);
  const results = {};
  for (const quant of opts.quants) {
    const model = await AutoModelForCausalLM.from_pretrained(id, modelOptions(QUANTS[quant]));
    const eos = new Set([model.generation_config.eos_token_id].flat().map(Number));
    results[quant] = [];
    for (const prompt of prompts) {
      const inputs = tokenizer(prompt, { add_special_tokens: false });
      const out = await model.generate({ ...inputs, max_new_tokens: opts.max, do_sample: false });
      const ids = Array.from(out.data, Number);
      const n = inputs.input_ids.dims.at(-1);
      const { logits } = await model(inputs);
      const vocab = logits.dims.at(-1);
      const last = Array.from(logits.data.slice((n - 1) * vocab, n * vocab), Number);
      results[quant].push({ prompt_ids: ids.slice(0, n), tokens: ids.slice(n).filter((t) => !eos.has(t)), logits: last });
    }
    await model.dispose();
  }
  console.log(JSON.stringify({ prompts, results }));
}

main().catch((err) => {
  console.error(`greedy: ${err.stack ?? err}`);
  process.exit(1);
});
