#!/usr/bin/env node
// Greedy tokens from any exported model folder (a SmolLM2, a Qwen, a Gemma: no fable format needed) with
// transformers.js on onnxruntime-web's WebAssembly kernels, the browser's runtime, here in Node:
//
//   node tests/plain.mjs --model DIR --ids '[12, 7, 301]' --quants fp32,int8 --max 16 --probes '["Café"]'
//
// The prompt is given as token ids so that the model is compared alone; the tokenizer is compared apart, by
// encoding each probe text without special tokens. Prints one JSON object for
// tests/export/test_architectures_web.py:
// {results: {fp32: {tokens} | {error}, ...}, probes: [{text, ids} | {text, error}, ...]}.
// A precision transformers.js cannot load or run reports its one-line error instead of tokens, so the
// test can hold it to an expected refusal; end-of-text tokens are dropped, as PyTorch's generate stops.
import path from 'node:path';
import { QUANTS } from '../scripts/build.mjs';
import { AutoModelForCausalLM, AutoTokenizer, env, modelOptions } from './wasm.mjs';

const { Tensor } = await import('@huggingface/transformers'); // after wasm.mjs has chosen onnxruntime-web

function parseArgs(argv) {
  const opts = { model: null, ids: null, quants: ['fp32'], max: 16, probes: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === '--model') opts.model = path.resolve(value);
    else if (key === '--ids') opts.ids = JSON.parse(value);
    else if (key === '--quants') opts.quants = value.split(',');
    else if (key === '--max') opts.max = Number(value);
    else if (key === '--probes') opts.probes = JSON.parse(value);
    else throw new Error(`unknown argument ${key}`);
  }
  if (!opts.model || !Array.isArray(opts.ids)) throw new Error('--model DIR and --ids JSON list are required');
  return opts;
}

function oneLine(err) {
  return String(err?.message ?? err).split('\n')[0].slice(0, 300);
}

async function greedy(id, quant, ids, max) {
  const model = await AutoModelForCausalLM.from_pretrained(id, modelOptions(QUANTS[quant]));
  try {
    const eos = new Set([model.generation_config.eos_token_id].flat().filter((t) => t != null).map(Number));
    const input_ids = new Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]);
    const attention_mask = new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]);
    const out = await model.generate({ input_ids, attention_mask, max_new_tokens: max, do_sample: false });
    return { tokens: Array.from(out.data, Number).slice(ids.length).filter((t) => !eos.has(t)) };
  } finally {
    await model.dispose();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  env.localModelPath = path.dirname(opts.model);
  const id = path.basename(opts.model);
  const results = {};
  for (const quant of opts.quants) {
    try {
      results[quant] = await greedy(id, quant, opts.ids, opts.max);
    } catch (err) {
      results[quant] = { error: oneLine(err) };
    }
  }
  const probes = [];
  if (opts.probes.length) {
    const tokenizer = await AutoTokenizer.from_pretrained(id);
    for (const text of opts.probes) {
      try {
        probes.push({ text, ids: tokenizer.encode(text, { add_special_tokens: false }) });
      } catch (err) {
        probes.push({ text, error: oneLine(err) });
      }
    }
  }
  console.log(JSON.stringify({ results, probes }));
}

main().catch((err) => {
  console.error(`plain: ${err.stack ?? err}`);
  process.exit(1);
});
