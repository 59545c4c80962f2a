#!/usr/bin/env node
// Decode speed of each ONNX precision with transformers.js on onnxruntime-web's WebAssembly kernels (the
// app's runtime on a phone), in Node:
//
//   node tests/speed.mjs --model DIR --quants int4,int8,fp32 --threads 1 --tokens 64 --repeats 3
//
// Greedy from one fixed prompt; prints one JSON object {quant: {tok_s: [...], tokens, load_s}}: the decode
// rate of each repeat after one warm-up run (new tokens / wall seconds of generate, prefill included).
import path from 'node:path';
import { QUANTS } from '../scripts/build.mjs';
import { AutoModelForCausalLM, AutoTokenizer, env, modelOptions, ort } from './wasm.mjs';

function parseArgs(argv) {
  const opts = { model: null, quants: Object.keys(QUANTS), threads: 1, tokens: 64, repeats: 3 };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === '--model') opts.model = path.resolve(value);
    else if (key === '--quants') opts.quants = value.split(',');
    else if (key === '--threads') opts.threads = Number(value);
    else if (key === '--tokens') opts.tokens = Number(value);
    else if (key === '--repeats') opts.repeats = Number(value);
    else throw new Error(`unknown argument ${key}`);
  }
  if (!opts.model) throw new Error('--model DIR is required');
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  ort.env.wasm.numThreads = opts.threads;
  env.localModelPath = path.dirname(opts.model);
  const id = path.basename(opts.model);
  const tokenizer = await AutoTokenizer.from_pretrained(id);
  const inputs = tokenizer('<|prompt|>Character: Fox\nMoral: Kindness is rewarded.<|story|>', { add_special_tokens: false });
  const results = {};
  for (const quant of opts.quants) {
    const t0 = performance.now();
    const model = await AutoModelForCausalLM.from_pretrained(id, modelOptions(QUANTS[quant]));
    const load = (performance.now() - t0) / 1000;
    const rates = [];
    for (let r = 0; r <= opts.repeats; r++) {
      const start = performance.now();
      const out = await model.generate({ ...inputs, max_new_tokens: opts.tokens, min_new_tokens: opts.tokens, do_sample: false });
      const seconds = (performance.now() - start) / 1000;
      const made = out.dims.at(-1) - inputs.input_ids.dims.at(-1);
      if (r > 0) rates.push(made / seconds);  // the first run warms up
    }
    results[quant] = { tok_s: rates, tokens: opts.tokens, load_s: load };
    await model.dispose();
  }
  console.log(JSON.stringify(results));
}

main().catch((err) => {
  console.error(`speed: ${err.stack ?? err}`);
  process.exit(1);
});
