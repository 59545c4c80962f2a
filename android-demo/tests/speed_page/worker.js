// One onnxruntime-web instance with a fixed number of wasm threads, holding every precision under test,
// as the app's worker.js holds one: transformers.js, the app's own vendor/ and model/ folders, no network.
//
// in:  {type: 'load', threads, quants: [{quant, dtype, model_file_name}]}   {type: 'run', quant, tokens}
// out: load -> {threads, seconds}; run -> {tokens, prefill_s, decode_s, total_s} of one greedy generation.
import { AutoModelForCausalLM, AutoTokenizer, env } from '../vendor/transformers.js';

const root = new URL('../', import.meta.url);
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = root.pathname;
env.useBrowserCache = false;
env.useWasmCache = false;
const wasm = env.backends.onnx.wasm;
wasm.wasmPaths = {
  mjs: new URL('vendor/ort-wasm-simd-threaded.mjs', root).href,
  wasm: new URL('vendor/ort-wasm-simd-threaded.wasm', root).href,
};
const PROMPT = '<|prompt|>Character: Fox\nMoral: Kindness is rewarded.<|story|>'; // speed.mjs's prompt

let tokenizer = null;
const models = {};

async function load({ threads, quants }) {
  const t0 = performance.now();
  wasm.numThreads = threads;
  tokenizer = await AutoTokenizer.from_pretrained('model');
  for (const q of quants) {
    models[q.quant] = await AutoModelForCausalLM.from_pretrained('model', { dtype: q.dtype, model_file_name: q.model_file_name, device: 'wasm' });
  }
  return { threads: wasm.numThreads, seconds: (performance.now() - t0) / 1000 };
}

/** One greedy generation of exactly `tokens` new tokens. generate() hands the streamer the prompt once, then
 * each new token: the time to the first new token is the prefill, the rest is decode. */
async function run({ quant, tokens }) {
  const inputs = tokenizer(PROMPT, { add_special_tokens: false });
  const times = [];
  const streamer = { put: () => times.push(performance.now()), end: () => {} };
  const t0 = performance.now();
  await models[quant].generate({ ...inputs, max_new_tokens: tokens, min_new_tokens: tokens, do_sample: false, streamer });
  const made = times.length - 1;
  return { tokens: made, prefill_s: (times[1] - t0) / 1000, decode_s: (times[made] - times[1]) / 1000, total_s: (times[made] - t0) / 1000 };
}

self.onmessage = async ({ data }) => {
  try {
    postMessage(data.type === 'load' ? await load(data) : await run(data));
  } catch (err) {
    postMessage({ error: String(err?.stack ?? err) });
  }
};
