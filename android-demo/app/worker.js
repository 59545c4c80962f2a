// The model, off the main thread: transformers.js over onnxruntime-web's WebAssembly backend, every file
// from this app's own origin (the model folder under model/, the wasm under vendor/; no hub, no CDN).
//
// in:  {type: 'load', quant, dtype, model_file_name}   {type: 'generate', prompt, params}   {type: 'stop'}
//      (model_file_name: the graph's name where the dtype's suffix does not give it: int8-fold)
// out: {type: 'progress', file, loaded, total}   {type: 'loaded', quant, seconds, threads}
//      {type: 'text', text}   {type: 'tick', tokens, seconds} (after every token)
//      {type: 'done', tokens, ttft, seconds, tokensPerSecond, reason}   {type: 'error', message}
import {
  AutoModelForCausalLM,
  AutoTokenizer,
  InterruptableStoppingCriteria,
  TextStreamer,
  env,
} from './vendor/transformers.js';

const base = new URL('./', import.meta.url);
env.allowRemoteModels = false; // nothing from the Hugging Face hub
env.allowLocalModels = true;
// a path, not a URL: transformers.js only looks for local files at paths ('model' -> <app>/model/)
env.localModelPath = base.pathname;
env.useBrowserCache = false; // the service worker keeps the files
env.useWasmCache = false;
const wasm = env.backends.onnx.wasm;
wasm.wasmPaths = {
  // the build copies these from onnxruntime-web (the version transformers.js bundles)
  mjs: new URL('vendor/ort-wasm-simd-threaded.mjs', base).href,
  wasm: new URL('vendor/ort-wasm-simd-threaded.wasm', base).href,
};
// Threads need SharedArrayBuffer, which a page has only when cross-origin isolated (COOP + COEP headers).
wasm.numThreads = self.crossOriginIsolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1;

const MODEL_ID = 'model';
let tokenizer = null;
let model = null;
let loadedQuant = null;
let stopping = null;

// transformers.js runs the whole decoding loop on promises (microtasks), so a 'stop' message would wait
// for the end of the fable. Yield one task between forward passes so that it is seen within a token.
function nextTask() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

async function load({ quant, dtype, model_file_name }) {
  const t0 = performance.now();
  if (loadedQuant === quant) {
    postMessage({ type: 'loaded', quant, seconds: 0, threads: wasm.numThreads });
    return;
  }
  const progress_callback = (p) => {
    if (p.status === 'progress') postMessage({ type: 'progress', file: p.file, loaded: p.loaded, total: p.total });
  };
  tokenizer ??= await AutoTokenizer.from_pretrained(MODEL_ID, { progress_callback });
  if (model) await model.dispose();
  model = null;
  loadedQuant = null;
  model = await AutoModelForCausalLM.from_pretrained(MODEL_ID, { dtype, model_file_name, device: 'wasm', progress_callback });
  const forward = model.forward.bind(model);
  model.forward = async (inputs) => {
    await nextTask();
    return forward(inputs);
  };
  loadedQuant = quant;
  postMessage({ type: 'loaded', quant, seconds: (performance.now() - t0) / 1000, threads: wasm.numThreads });
}

async function generate({ prompt, params }) {
  if (!model) throw new Error('no model is loaded');
  const inputs = tokenizer(prompt, { add_special_tokens: false }); // the prompt carries its own markers
  const eos = new Set([model.generation_config.eos_token_id ?? []].flat().map(Number));
  const tokens = [];
  let first = null;
  stopping = new InterruptableStoppingCriteria();
  const t0 = performance.now();
  const streamer = new TextStreamer(tokenizer, {
    skip_prompt: true,
    skip_special_tokens: true,
    callback_function: (text) => postMessage({ type: 'text', text }),
    token_callback_function: (ids) => {
      first ??= performance.now();
      for (const id of ids) if (!eos.has(Number(id))) tokens.push(Number(id));
      postMessage({ type: 'tick', tokens: tokens.length, seconds: (performance.now() - t0) / 1000 });
    },
  });
  const greedy = !(params.temperature > 0);
  const out = await model.generate({
    ...inputs,
    max_new_tokens: params.max_new_tokens,
    // end-of-text is held back for the first token, so a sampled fable is never empty (the app samples
    // unseeded: on a tiny model end-of-text can be the first draw); greedy output is unchanged unless the
    // model's most likely first token is end-of-text
    min_new_tokens: 1,
    do_sample: !greedy,
    ...(greedy ? {} : { temperature: params.temperature, top_k: params.top_k }),
    streamer,
    stopping_criteria: stopping,
  });
  const seconds = (performance.now() - t0) / 1000;
  const last = Number(out.data[out.data.length - 1]);
  const reason = stopping.interrupted ? 'stop' : eos.has(last) ? 'eos' : 'length';
  stopping = null;
  postMessage({
    type: 'done',
    tokens,
    reason,
    seconds,
    ttft: first === null ? null : (first - t0) / 1000,
    tokensPerSecond: seconds > 0 ? tokens.length / seconds : 0,
  });
}

self.onmessage = async ({ data }) => {
  if (data.type === 'stop') {
    stopping?.interrupt();
    return;
  }
  try {
    if (data.type === 'load') await load(data);
    else if (data.type === 'generate') await generate(data);
  } catch (err) {
    postMessage({ type: 'error', message: String(err?.message ?? err) });
  }
};
