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
