// Helpers and state shared by the pages of the web UI.

import * as api from './api.js';
import { add, code, h, showError } from './dom.js';
import { setAcceptedTypes } from './files.js';
import { tokenExplanation } from './token.js';

export { GLOSSARY } from './texts.js';

// The name rule and the accepted file types come from the server (GET /api/limits, read at
// start-up by loadLimits); these are only what a page shows if that request failed.
export let NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export let NAME_RULE = 'letters, digits, “.”, “_” and “-”; 1–64 characters; starts with a letter or digit';
let limits = null;

/** The server's limits (`GET /api/limits`, open to all), read once; sets the name rule and file types. */
export async function loadLimits() {
  if (!limits) {
    limits = await api.get('/api/limits');
    NAME_PATTERN = new RegExp(`^(?:${limits.name_pattern})$`);
    NAME_RULE = limits.name_rule.replace(/'(.)'/g, '“$1”');
    setAcceptedTypes(limits.image_extensions, limits.archive_extensions);
  }
  return limits;
}
export const getLimits = () => limits;
export const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

// ---------------------------------------------------------------------------------------------
// Shared state

/** Upload reports by job id, so the job page can show what was uploaded for it. */
export const uploadReports = new Map();
/** The last upload (signature -> dataset name): a resubmitted form does not upload the same files twice. */
let lastUpload = null;
export const getLastUpload = () => lastUpload;
export function setLastUpload(value) {
  lastUpload = value;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

let kindsCache = null;
export async function getKinds() {
  if (!kindsCache) kindsCache = await api.get('/api/kinds');
  return kindsCache;
}
const kindCache = new Map();
export async function getKind(kind) {
  if (!kindCache.has(kind)) kindCache.set(kind, await api.get(`/api/kinds/${encodeURIComponent(kind)}`));
  return kindCache.get(kind);
}

/** Set an <img> from an API path; through fetch + object URL when reads need the token. */
export async function loadImage(img, path, { onMissing, onLoaded } = {}) {
  img.onerror = () => {
    img.hidden = true;
    if (onMissing) onMissing();
  };
  img.onload = () => {
    img.hidden = false;
    if (onLoaded) onLoaded();
  };
  if (!api.readsNeedToken()) {
    img.src = path;
    return;
  }
  try {
    const url = await api.blobUrl(path);
    const old = img.dataset.blob;
    img.src = url;
    img.dataset.blob = url;
    if (old) URL.revokeObjectURL(old);
  } catch {
    img.hidden = true;
    if (onMissing) onMissing();
  }
}

export const withBust = (path) => `${path}${path.includes('?') ? '&' : '?'}t=${Date.now()}`;

/** A message for an error caught from the API (the server's detail, or the thrown message). */
export const messageOf = (error) => (error && (error.detail || error.message)) || String(error);

/** For a read whose failure the page can do without: an empty list (a 401 is explained by the page's
 * token note, so it is marked as shown and the header does not explain it again). */
export function emptyOnError(error) {
  if (error && error.status === 401) error.shown = true;
  return [];
}

/** For an error that arrives after its page was left (or was overtaken): nobody sees it, so the
 * header must not explain a 401 on the next page. Returns undefined (`return left(error)`). */
export function left(error) {
  if (error && error.status === 401) error.shown = true;
}

/** Show an error in place; a refusal for want of a token explains what a token is, here only. */
export function fail(box, error) {
  if (error && error.status === 401) {
    error.shown = true;
    showError(box, [h('strong', {}, 'This needs an API token. '), ...tokenExplanation()]);
    return;
  }
  showError(box, messageOf(error));
}

/** A "Loading…" line for a page waiting on the server; call the returned function to remove it. */
export function loading(view) {
  const line = h('p', { class: 'muted', 'aria-live': 'polite', 'data-testid': 'loading' }, 'Loading…');
  add(view, line);
  return () => line.remove();
}

export function pageHeading(text, id = 'page-title') {
  return h('h1', { id, tabindex: '-1', 'data-testid': id }, text);
}

export function percentOf(job) {
  if (job.status === 'succeeded') return 100;
  const progress = job.progress || {};
  let fraction = progress.fraction;
  if (typeof fraction !== 'number' && progress.total) fraction = (progress.step || 0) / progress.total;
  if (typeof fraction !== 'number' || !isFinite(fraction)) return 0;
  // Floor, so 100% appears only when the job really succeeded.
  return Math.max(0, Math.min(job.status === 'running' || job.status === 'queued' ? 99 : 100, Math.floor(fraction * 100)));
}

export function statusBadge(status) {
  return h('span', { class: `badge status-${status}`, 'data-status': status }, status);
}

export function describeJob(job) {
  const p = job.params || {};
  if (job.type === 'train') return `${p.kind || '?'} model “${p.name || '?'}” from dataset “${p.dataset || '?'}”`;
  if (job.type === 'generate') return `images from model “${p.model || '?'}”`;
  if (job.type === 'evaluate') return `evaluation on dataset “${p.dataset || '?'}”`;
  return job.type;
}

// ---------------------------------------------------------------------------------------------
// Views shared by pages

export function ignoredList(ignored, id) {
  if (!ignored.length) return null;
  const shown = ignored.slice(0, 50);
  return h('details', { class: 'ignored', 'data-testid': id, id },
    h('summary', {}, `${ignored.length} file${ignored.length === 1 ? '' : 's'} ignored`),
    h('ul', {}, shown.map((x) => h('li', {}, code(x.name), ` — ${x.reason}`)),
      ignored.length > shown.length ? h('li', {}, `… and ${ignored.length - shown.length} more`) : null));
}

export function countsTable(counts, caption, id) {
  const entries = Object.entries(counts || {});
  return h('table', { class: 'counts', 'data-testid': id, id },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Class'), h('th', { scope: 'col' }, 'Images'))),
    h('tbody', {}, entries.map(([cls, n]) => h('tr', {}, h('th', { scope: 'row' }, cls), h('td', {}, String(n))))));
}

/** The ingest report of an upload (accepted per class, rejected files with reasons, notes). */
export function reportView(dataset) {
  const report = dataset.report || {};
  const rejected = report.rejected || [];
  return h('section', { class: 'report', 'data-testid': 'ingest-report', id: 'ingest-report', 'aria-labelledby': 'ingest-report-title' },
    h('h2', { id: 'ingest-report-title' }, `Uploaded dataset “${dataset.name}”`),
    h('p', {}, `${dataset.n ?? report.accepted ?? '?'} images accepted`, dataset.image_size ? `, resized to ${dataset.image_size}×${dataset.image_size}` : '', '.'),
    countsTable(dataset.counts, 'Accepted images per class', 'ingest-counts'),
    rejected.length
      ? h('details', { open: true, 'data-testid': 'ingest-rejected' },
        h('summary', {}, `${rejected.length} file${rejected.length === 1 ? '' : 's'} rejected`),
        h('ul', {}, rejected.slice(0, 100).map((r) => h('li', {}, code(r.file || '?'), ` — ${r.reason || ''}`))))
      : h('p', { class: 'muted' }, 'No file was rejected.'),
    (report.notes || []).length
      ? h('details', { class: 'notes' }, h('summary', {}, 'How the images were read'), h('ul', {}, report.notes.map((n) => h('li', {}, n))))
      : null);
}
