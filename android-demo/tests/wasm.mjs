// transformers.js on onnxruntime-web's WebAssembly kernels, in Node: the runtime the app uses on a phone,
// shared by the Node scripts here (greedy.mjs, speed.mjs).
//
// transformers.js in Node picks onnxruntime-node; handing it onnxruntime-web instead runs the same wasm
// kernels as the browser (the hook transformers.js reads: globalThis[Symbol.for('onnxruntime')]). Local
// model folders only, no cache; one thread unless the caller sets ort.env.wasm.numThreads.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-web';

globalThis[Symbol.for('onnxruntime')] = ort;
const { AutoModelForCausalLM, AutoTokenizer, env } = await import('@huggingface/transformers');

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(ROOT, 'node_modules', 'onnxruntime-web', 'dist');
ort.env.wasm.wasmPaths = {
  mjs: new URL(`file://${dist}/ort-wasm-simd-threaded.mjs`).href,
  wasm: new URL(`file://${dist}/ort-wasm-simd-threaded.wasm`).href,
};
ort.env.wasm.numThreads = 1;
env.useWasmCache = false;
env.allowRemoteModels = false;

export { ort, AutoModelForCausalLM, AutoTokenizer, env };

/** from_pretrained's options for one precision of build.mjs's QUANTS (its dtype, and its file name where the
 * dtype alone does not name it, as for int8-fold) on the wasm kernels. */
export function modelOptions(entry) {
  return { dtype: entry.dtype, model_file_name: entry.model_file_name, device: 'auto', session_options: { executionProviders: ['wasm'] } };
}
