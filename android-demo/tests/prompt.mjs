#!/usr/bin/env node
// The app's free-text rules (app/prompt.js) on given cases, for tests/android/test_free_text.py to compare
// with fabulist/fable_format.py's free_label, check_element and prompt:
//
//   node tests/prompt.mjs --format fable_format.json --cases '[["character", "industrious beaver"], ...]' \
//     --labels '{"character": "Industrious beaver"}'
//
// Prints one JSON object: {labels: [freeLabel(text)], problems: [checkElement(...) or null], prompt}.
import fs from 'node:fs';
import { buildPrompt, checkElement, freeLabel } from '../app/prompt.js';

const opts = { format: null, cases: [], labels: {} };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const [key, value] = [argv[i], argv[i + 1]];
  if (key === '--format') opts.format = JSON.parse(fs.readFileSync(value, 'utf8'));
  else if (key === '--cases') opts.cases = JSON.parse(value);
  else if (key === '--labels') opts.labels = JSON.parse(value);
  else {
    console.error(`prompt: unknown argument ${key}`);
    process.exit(1);
  }
}
const out = JSON.stringify({
  labels: opts.cases.map(([, text]) => freeLabel(text)),
  problems: opts.cases.map(([kind, text]) => checkElement(opts.format, kind, text)),
  prompt: buildPrompt(opts.format, opts.labels),
});
// ASCII only: a raw U+2028 or U+0085 in the output would split the caller's last line
console.log(out.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
