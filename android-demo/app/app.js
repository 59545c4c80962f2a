// The page: element pickers (each with "Your own words…" for free text), sampling settings, Generate/Stop,
// the streamed fable and its timings. The model runs in worker.js; model/app_model.json (what the build
// copied) and model/fable_format.json (the prompt format the model was trained with, from `fabulist export`)
// say what to show.
import { buildPrompt, checkElement, freeLabel, surprise } from './prompt.js';

const $ = (id) => document.getElementById(id);
const IN_APK = location.hostname === 'appassets.androidplatform.net'; // the Android WebView's asset origin
const QUANT_LABELS = { 'int8-fold': 'INT8 (runs as FP32)', int4: 'INT4', int8: 'INT8', fp32: 'FP32' };
const OWN = '<own>'; // the picker value that shows the free-text field (no list label looks like it)
const LIST_ONLY_NOTE = 'this model was trained on list values only; your own words may be ignored';

let format = null;
let info = null;
let worker = null;
let modelReady = false;
let busy = false;
let note = ''; // what the status adds while and after a fable is written in the user's own words

function setState(state) {
  document.body.dataset.state = state; // loading | ready | generating | error (the tests wait on it)
  busy = state === 'generating' || state === 'loading';
  $('generate').disabled = busy || !modelReady;
  $('stop').disabled = state !== 'generating';
  $('quant').disabled = busy;
  $('copy').disabled = busy || !$('story').textContent;
}

function status(text) {
  $('status').textContent = text;
}

async function getJSON(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} (run the build: npm run build)`);
  return response.json();
}

function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function buildPickers() {
  const box = $('elements');
  for (const field of format.fields) {
    const label = document.createElement('label');
    label.textContent = field.label;
    const select = document.createElement('select');
    select.id = `pick-${field.kind}`;
    select.dataset.kind = field.kind;
    select.add(new Option('— any —', ''));
    for (const choice of field.choices) select.add(new Option(choice, choice));
    select.add(new Option('Your own words…', OWN));
    const own = document.createElement('input');
    Object.assign(own, { type: 'text', id: `own-${field.kind}`, hidden: true, autocomplete: 'off' });
    own.maxLength = format.max_element_chars ?? 80;
    own.placeholder = `Any ${field.label.toLowerCase()}`;
    own.setAttribute('aria-label', `Your own ${field.label.toLowerCase()}`);
    select.addEventListener('change', () => {
      own.hidden = select.value !== OWN;
      if (!own.hidden) own.focus();
    });
    label.append(select, own);
    box.insertBefore(label, $('surprise'));
  }
  $('surprise').addEventListener('click', () => pick(surprise(format)));
}

function pick(labels) {
  for (const field of format.fields) {
    $(`pick-${field.kind}`).value = labels[field.kind] ?? '';
    $(`own-${field.kind}`).hidden = true;
  }
}

/** The chosen labels and the kinds given in the user's own words; throws with the format's reason when
 * free text would be refused (empty, too long, a control token, a line break). */
function picked() {
  const labels = {};
  const own = [];
  for (const field of format.fields) {
    const value = $(`pick-${field.kind}`).value;
    if (value === OWN) {
      const text = $(`own-${field.kind}`).value;
      const problem = checkElement(format, field.kind, text);
      if (problem) throw new Error(problem);
      labels[field.kind] = freeLabel(text);
      own.push(field.kind);
    } else if (value) labels[field.kind] = value;
  }
  return { labels, own };
}

function buildQuantPicker() {
  const select = $('quant');
  for (const q of info.quants) select.add(new Option(`${QUANT_LABELS[q.quant] ?? q.quant} · ${megabytes(q.bytes)}`, q.quant));
  select.value = info.default;
  select.addEventListener('change', () => load(select.value));
  $('max-tokens').max = String(info.context);
}

function load(quant) {
  const q = info.quants.find((x) => x.quant === quant);
  modelReady = false;
  delete document.body.dataset.offline; // set again once this model is kept for offline use
  setState('loading');
  status(`Loading ${info.name} ${QUANT_LABELS[quant]} (${megabytes(q.bytes)})…`);
  worker.postMessage({ type: 'load', quant, dtype: q.dtype, model_file_name: q.model_file_name });
}

function stats({ load, ttft, speed, tokens }) {
  if (load !== undefined) $('stat-load').textContent = `${load.toFixed(2)} s`;
  if (ttft !== undefined) $('stat-ttft').textContent = ttft === null ? '–' : `${Math.round(ttft * 1000)} ms`;
  if (speed !== undefined) $('stat-speed').textContent = `${speed.toFixed(1)} tok/s`;
  if (tokens !== undefined) $('stat-tokens').textContent = String(tokens);
}

function generate(event) {
  event.preventDefault();
  if (busy || !modelReady) return;
  let chosen;
  try {
    chosen = picked();
  } catch (err) {
    status(`Error: ${err.message}`);
    return;
  }
  note = chosen.own.length && format.elements !== 'free-text' ? ` Note: ${LIST_ONLY_NOTE}.` : '';
  const temperature = Number($('temperature').value);
  const params = {
    temperature,
    top_k: Math.max(0, Math.floor(Number($('top-k').value) || 0)),
    max_new_tokens: Math.max(1, Math.min(info.context, Math.floor(Number($('max-tokens').value) || 1))),
  };
  const story = $('story');
  story.textContent = '';
  delete story.dataset.reason;
  delete story.dataset.tokens;
  stats({ ttft: null, tokens: 0 });
  $('stat-speed').textContent = '–';
  setState('generating');
  status((temperature > 0 ? `Writing (temperature ${temperature})…` : 'Writing (greedy)…') + note);
  worker.postMessage({ type: 'generate', prompt: buildPrompt(format, chosen.labels), params });
}

const REASONS = { eos: 'The end.', stop: 'Stopped.', length: 'Reached the token limit.' };

function onWorker({ data }) {
  if (data.type === 'progress' && data.total) {
    $('progress').hidden = false;
    $('progress').value = data.loaded / data.total;
  } else if (data.type === 'loaded') {
    $('progress').hidden = true;
    modelReady = true;
    stats({ load: data.seconds });
    setState('ready');
    status(`Ready: ${info.name} ${QUANT_LABELS[data.quant]}, loaded in ${data.seconds.toFixed(2)} s`);
    $('footer').textContent =
      `Runs on this device: transformers.js + ONNX Runtime Web (WebAssembly, ${data.threads} thread${data.threads > 1 ? 's' : ''}).`;
    keepOffline(data.quant);
  } else if (data.type === 'text') {
    $('story').append(data.text);
  } else if (data.type === 'tick') {
    stats({ tokens: data.tokens, speed: data.seconds > 0 ? data.tokens / data.seconds : 0 });
  } else if (data.type === 'done') {
    const story = $('story');
    story.dataset.reason = data.reason;
    story.dataset.tokens = JSON.stringify(data.tokens);
    stats({ ttft: data.ttft, speed: data.tokensPerSecond, tokens: data.tokens.length });
    setState('ready');
    status((REASONS[data.reason] ?? 'Done.') + note);
  } else if (data.type === 'error') {
    $('progress').hidden = true;
    setState(modelReady ? 'ready' : 'error');
    status(`Error: ${data.message}`);
  }
}

async function copy() {
  const text = $('story').textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // no clipboard permission (some WebViews): select the text the old way
    const range = document.createRange();
    range.selectNodeContents($('story'));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.execCommand('copy');
  }
  status('Copied.');
}

// The service worker precaches the app; once a model is loaded, ask it to keep that model file too.
async function registerServiceWorker() {
  if (IN_APK || !('serviceWorker' in navigator)) return; // the APK serves everything from its own assets
  try {
    await navigator.serviceWorker.register('sw.js');
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve) => {
        navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true });
        setTimeout(resolve, 10000);
      });
    }
  } catch (err) {
    console.warn('service worker:', err);
  }
}

async function keepOffline(quant) {
  const controller = navigator.serviceWorker?.controller;
  if (IN_APK || !controller) return;
  const q = info.quants.find((x) => x.quant === quant);
  const channel = new MessageChannel();
  const answer = new Promise((resolve) => (channel.port1.onmessage = ({ data }) => resolve(data)));
  controller.postMessage({ type: 'cache', urls: [new URL(`model/${q.file}`, location.href).href] }, [channel.port2]);
  const { cached } = await answer;
  document.body.dataset.offline = cached ? quant : '';
  if (cached) $('footer').append(` ${QUANT_LABELS[quant]} is saved on this device: works offline.`);
}

async function main() {
  setState('loading');
  try {
    [info, format] = await Promise.all([getJSON('model/app_model.json'), getJSON('model/fable_format.json')]);
  } catch (err) {
    setState('error');
    status(`Error: ${err.message}`);
    return;
  }
  document.title = `Fabulist · ${info.name}`;
  buildPickers();
  buildQuantPicker();
  pick(surprise(format));
  $('temperature').addEventListener('input', () => ($('temperature-out').value = $('temperature').value));
  $('form').addEventListener('submit', generate);
  $('stop').addEventListener('click', () => worker.postMessage({ type: 'stop' }));
  $('copy').addEventListener('click', copy);
  await registerServiceWorker();
  worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = onWorker;
  worker.onerror = (event) => {
    setState('error');
    status(`Error: ${event.message || 'the model worker failed to start'}`);
  };
  load(info.default);
}

main();
