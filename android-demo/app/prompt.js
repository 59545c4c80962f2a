// The prompt the model was trained with, built from the model folder's fable_format.json (written by
// `fabulist export`; see fabulist/fable_format.py): nothing about the format is typed in here.
//
//   prompt = bos + the shown fields, one "Label: value" line each, in the format's order + story + beginning

/** @param {object} format fable_format.json  @param {Record<string, string>} labels kind -> label */
export function buildPrompt(format, labels, beginning = '') {
  const lines = format.fields
    .filter((field) => labels[field.kind])
    .map((field) => format.field_template.replace('{label}', () => field.label).replace('{value}', () => labels[field.kind]));
  return format.bos + lines.join(format.line_separator) + format.story + (beginning || '');
}

/** One random choice per field: the "Surprise me" button. */
export function surprise(format, random = Math.random) {
  return Object.fromEntries(format.fields.map((f) => [f.kind, f.choices[Math.floor(random() * f.choices.length)]]));
}

// Free-text elements ("Your own words…"), as fabulist/fable_format.py's free_label and check_element.
const LINE_BREAKS = /[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/; // what Python's str.splitlines() splits on
// Python's whitespace (str.split, str.strip), which differs from JavaScript's \s: \x1c-\x1f and \x85 are
// in, \ufeff is out
const SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const SPACES = new RegExp(`[${SPACE}]+`);
const EDGES = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, 'g');

/** A free-text element as a header value: spaces collapsed, first letter capitalised ("Arctic ice floe"). */
export function freeLabel(text) {
  const t = text.split(SPACES).filter(Boolean).join(' ');
  return t.charAt(0).toUpperCase() + t.slice(1);
}

/** Why the format refuses this free text (empty, too long, a control token, a line break), or null. */
export function checkElement(format, kind, text) {
  const t = text.replace(EDGES, '');
  const max = format.max_element_chars ?? 80;
  const length = [...t].length; // characters, not UTF-16 units, as Python counts
  if (!t) return `the ${kind} must not be empty`;
  if (length > max) return `the ${kind} is ${length} characters long; give at most ${max}`;
  for (const token of [format.eos, format.bos, format.story, format.pad]) {
    if (text.includes(token)) return `the ${kind} must not contain ${token} (a control token of the fable format)`;
  }
  if (LINE_BREAKS.test(text)) return `the ${kind} must be one line (a line break would add a header line)`;
  return null;
}
