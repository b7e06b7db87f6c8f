// Small DOM helpers: build elements without innerHTML (every text from the server is text, never markup).

/**
 * Create an element. `attrs` keys: `class`, `text`, `dataset` (object), `on<event>` (listener),
 * boolean attributes (true sets, false/null/undefined omits), anything else via setAttribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'value') el.value = value;
    else if (key === 'checked' || key === 'disabled' || key === 'hidden' || key === 'open' || key === 'selected' || key === 'multiple') el[key] = Boolean(value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Append children to `el`, skipping null/undefined/false (native append would write "null"). */
export function add(el, ...children) {
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace every child of `el` with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A `<code>` element. */
export const code = (text) => h('code', {}, text);

/** An in-place error area next to a form or button (role="alert", empty and hidden until used). */
export function errorBox(id) {
  return h('div', { id, 'data-testid': id, class: 'alert', role: 'alert', hidden: true });
}

/** Show `message` (string or nodes) in an error box; an empty message hides it. */
export function showError(box, message) {
  if (!box) return;
  if (!message) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  replace(box, message);
  box.hidden = false;
}

/** A labelled form row: label, control, optional help text (linked with aria-describedby). */
export function field(labelText, control, help, { errorId } = {}) {
  const describedBy = [];
  let helpEl = null;
  if (help) {
    helpEl = h('p', { class: 'help', id: `${control.id}-help` }, help);
    describedBy.push(helpEl.id);
  }
  let errEl = null;
  if (errorId) {
    errEl = h('p', { class: 'field-error', id: errorId, 'data-testid': errorId, hidden: true });
    describedBy.push(errorId);
  }
  if (describedBy.length) control.setAttribute('aria-describedby', describedBy.join(' '));
  const label = h('label', { for: control.id }, labelText);
  const isCheck = control.type === 'checkbox' || control.type === 'radio';
  return h('div', { class: isCheck ? 'field field-check' : 'field' },
    isCheck ? [control, label] : [label, control], helpEl, errEl);
}

/** Format a duration in seconds as "1 h 2 min", "3 min 4 s" or "5 s". */
export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${s} s`;
}

/** A short local date-time for an ISO timestamp ('' when missing). */
export function formatDate(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (isNaN(date)) return String(iso);
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** A number with at most 4 significant digits (losses, metrics). */
export function formatNumber(value) {
  if (typeof value !== 'number' || !isFinite(value)) return String(value);
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return value.toExponential(2);
  return String(Number(value.toPrecision(4)));
}
