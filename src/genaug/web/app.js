// genaug web UI: a hash-routed single page app over the REST API (docs/service-api.md).
// Plain ES modules, no framework, nothing fetched from outside this server.

import * as api from './api.js';
import { NOT_A_LOSS, drawLossChart, seriesFromHistory } from './chart.js';
import { add, code, errorBox, field, formatDate, formatNumber, formatSeconds, h, replace, showError } from './dom.js';
import { asSchema, schemaForm } from './forms.js';
import { renderMarkdown } from './markdown.js';

const main = document.getElementById('main');
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const NAME_RULE = 'letters, digits, “.”, “_” and “-”; 1–64 characters; starts with a letter or digit';
const IMAGE_FILE = /\.(png|jpe?g)$/i;
const ARCHIVE_FILE = /\.(zip|tar|tar\.gz|tgz)$/i;
const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

/** A hand-written line per known kind, next to the server's own summary. */
const KIND_HINTS = {
  classic: 'Flips, crops, rotations and colour changes of your own images. No training, always safe: the baseline every other generator has to beat.',
  vae: 'Fast to train; images come out a little blurry. Good for digits and simple shapes, and when you have only a few images per class.',
  dcgan: 'Sharper images than a VAE, but it needs a few hundred images per class and longer training.',
  ddim: 'Diffusion: the best quality and the slowest. In img2img mode the strength setting makes variations of your own images.',
  ddpm: 'Diffusion like ddim, sampled over the full (slower) noise chain; img2img strength works the same way.',
  dafusion: 'Stable Diffusion taught your classes (textual inversion) plus img2img: strong on photos; needs local Stable Diffusion weights, best with a GPU.',
  tabular_vae: 'For tables (rows of a CSV), not images: one VAE per class over numeric and categorical columns.',
  tabular: 'For tables (rows of a CSV), not images.',
};

/** What the parameters mean, for the tutorial. */
const GLOSSARY = [
  ['Steps', 'Training steps: how many batches the generator learns from. More steps = better images and longer training. For diffusion, “sampling steps” is how many denoising steps make one image (more = cleaner, slower).'],
  ['Guidance scale', 'Diffusion with class conditioning: how strongly each image is pushed towards its class. 1 = no guidance; 2–5 gives more typical, less varied images.'],
  ['Strength', 'img2img: how far a generated image may move away from the real image it starts from. Small (0.2–0.4) = subtle variations; 1 = a completely new image.'],
  ['Images per class', 'How many new images to make for every class. “Balance classes” instead tops up the smaller classes to the size of the largest.'],
  ['Seed', 'A number that fixes the randomness: the same model, settings and seed give the same images again.'],
  ['Image size', 'Uploaded images are resized to this square size (pixels) before training. Small sizes (28–64) train much faster.'],
  ['Augmentation copies', 'Adds that many flipped/cropped/recoloured copies of each image before training: helps generators when you have few images.'],
];

// ---------------------------------------------------------------------------------------------
// Shared state and small helpers

/** Upload reports by job id, so the job page can show what was uploaded for it. */
const uploadReports = new Map();
/** The last upload (signature -> dataset name): a resubmitted form does not upload the same files twice. */
let lastUpload = null;

let kindsCache = null;
async function getKinds() {
  if (!kindsCache) kindsCache = await api.get('/api/kinds');
  return kindsCache;
}
const kindCache = new Map();
async function getKind(kind) {
  if (!kindCache.has(kind)) kindCache.set(kind, await api.get(`/api/kinds/${encodeURIComponent(kind)}`));
  return kindCache.get(kind);
}

/** Set an <img> from an API path; through fetch + object URL when reads need the token. */
async function loadImage(img, path, { onMissing } = {}) {
  img.onerror = () => {
    img.hidden = true;
    if (onMissing) onMissing();
  };
  img.onload = () => {
    img.hidden = false;
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

const withBust = (path) => `${path}${path.includes('?') ? '&' : '?'}t=${Date.now()}`;

/** A message for an error caught from the API (the server's detail, or the thrown message). */
const messageOf = (error) => (error && (error.detail || error.message)) || String(error);

/** Show an error in place; for 401 focus the token field too (the listener does that). */
function fail(box, error) {
  showError(box, messageOf(error));
}

/** A "Loading…" line for a page waiting on the server; call the returned function to remove it. */
function loading(view) {
  const line = h('p', { class: 'muted', 'aria-live': 'polite', 'data-testid': 'loading' }, 'Loading…');
  add(view, line);
  return () => line.remove();
}

function pageHeading(text, id = 'page-title') {
  return h('h1', { id, tabindex: '-1', 'data-testid': id }, text);
}

function percentOf(job) {
  if (job.status === 'succeeded') return 100;
  const progress = job.progress || {};
  let fraction = progress.fraction;
  if (typeof fraction !== 'number' && progress.total) fraction = (progress.step || 0) / progress.total;
  if (typeof fraction !== 'number' || !isFinite(fraction)) return 0;
  // Floor, so 100% appears only when the job really succeeded.
  return Math.max(0, Math.min(job.status === 'running' || job.status === 'queued' ? 99 : 100, Math.floor(fraction * 100)));
}

function statusBadge(status) {
  return h('span', { class: `badge status-${status}`, 'data-status': status }, status);
}

function describeJob(job) {
  const p = job.params || {};
  if (job.type === 'train') return `${p.kind || '?'} model “${p.name || '?'}” from dataset “${p.dataset || '?'}”`;
  if (job.type === 'generate') return `images from model “${p.model || '?'}”`;
  if (job.type === 'evaluate') return `evaluation on dataset “${p.dataset || '?'}”`;
  return job.type;
}

// ---------------------------------------------------------------------------------------------
// Router

let cleanups = [];
let renderId = 0;
let firstRender = true;

/** Register a function to run when the user leaves the current page (timers, event streams). */
function onLeave(fn) {
  cleanups.push(fn);
}

const routes = [
  [/^$|^\/$/, 'home', homePage],
  [/^\/train$/, 'train', trainPage],
  [/^\/jobs$/, 'jobs', jobsPage],
  [/^\/jobs\/([^/]+)$/, 'jobs', jobPage],
  [/^\/models$/, 'models', modelsPage],
  [/^\/generate(?:\/([^/]+))?$/, 'generate', generatePage],
  [/^\/evaluate(?:\/model\/([^/]+))?$/, 'evaluate', evaluatePage],
];

async function render() {
  cleanups.forEach((fn) => {
    try {
      fn();
    } catch {
      /* ignore */
    }
  });
  cleanups = [];
  const id = ++renderId;
  const alive = () => id === renderId;
  const path = decodeURIComponent(location.hash.replace(/^#/, '').split('?')[0]);
  let matched = null;
  for (const [pattern, name, page] of routes) {
    const m = pattern.exec(path);
    if (m) {
      matched = { name, page, params: m.slice(1) };
      break;
    }
  }
  document.querySelectorAll('#nav a').forEach((a) => {
    if (matched && a.dataset.route === matched.name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
  const view = h('div', { class: 'view', 'data-testid': `view-${matched ? matched.name : 'missing'}` });
  replace(main, view);
  if (!matched) {
    add(view, pageHeading('Page not found'), h('p', {}, 'There is no page at ', code(location.hash), '. ', h('a', { href: '#/' }, 'Go to the start page.')));
  } else {
    document.title = `genaug · ${matched.name}`;
    try {
      await matched.page(view, { alive }, ...matched.params);
    } catch (error) {
      if (alive()) add(view, h('div', { class: 'alert', role: 'alert', 'data-testid': 'page-error' }, `This page could not load: ${messageOf(error)}`));
    }
  }
  if (!firstRender && alive()) {
    const heading = view.querySelector('h1');
    if (heading) heading.focus({ preventScroll: false });
  }
  firstRender = false;
}

// ---------------------------------------------------------------------------------------------
// Home: the tutorial

async function homePage(view, { alive }) {
  const kindsList = h('dl', { class: 'kinds', id: 'kinds-list', 'data-testid': 'kinds-list' });
  const examples = h('div', { class: 'grid-examples', id: 'example-grids', 'data-testid': 'example-grids' },
    h('p', { class: 'muted' }, 'Loading examples…'));
  add(view, 
    pageHeading('More training data from a few labelled images'),
    h('section', { class: 'tutorial', 'aria-labelledby': 'how-title', 'data-testid': 'tutorial' },
      h('p', { class: 'lead' }, 'genaug learns what your images look like and makes new ones for every class, so a classifier has more to learn from. You do not need to know how GANs or diffusion work: pick a generator, upload images, download results.'),
      h('h2', { id: 'how-title' }, 'How it works, in 4 steps'),
      h('ol', { class: 'steps' },
        h('li', {}, h('strong', {}, 'Upload images. '), 'One folder per class (for example ', code('cats/'), ' and ', code('dogs/'), '), or a zip of such folders. PNG and JPEG are accepted.'),
        h('li', {}, h('strong', {}, 'Train a generator. '), 'Choose a kind (see below) and start training on the ', h('a', { href: '#/train' }, 'Train'), ' page. You can watch its progress and sample images live.'),
        h('li', {}, h('strong', {}, 'Generate images. '), 'On the ', h('a', { href: '#/generate' }, 'Generate'), ' page, pick a trained model, say how many images per class, and download them as a zip (with a manifest of where each image came from).'),
        h('li', {}, h('strong', {}, 'Evaluate (optional). '), 'The ', h('a', { href: '#/evaluate' }, 'Evaluate'), ' page trains a classifier with and without the synthetic images, over several seeds, and tells you whether they help and by how much.'))),
    h('section', { 'aria-labelledby': 'kinds-title' },
      h('h2', { id: 'kinds-title' }, 'Which generator?'),
      kindsList),
    h('section', { 'aria-labelledby': 'params-title' },
      h('h2', { id: 'params-title' }, 'What the settings mean'),
      h('dl', { class: 'glossary', 'data-testid': 'glossary' }, GLOSSARY.map(([term, text]) => [h('dt', {}, term), h('dd', {}, text)]))),
    h('section', { 'aria-labelledby': 'examples-title' },
      h('h2', { id: 'examples-title' }, 'Examples from trained models'),
      examples),
  );

  try {
    const kinds = await getKinds();
    if (!alive()) return;
    replace(kindsList, kinds.map((k) => [
      h('dt', {}, code(k.kind), k.data_kind && k.data_kind !== 'images' ? h('span', { class: 'muted' }, ` (${k.data_kind})`) : null),
      h('dd', {}, KIND_HINTS[k.kind] ? h('p', {}, KIND_HINTS[k.kind]) : null, h('p', { class: 'muted' }, k.summary || '')),
    ]));
  } catch (error) {
    if (!alive()) return;
    replace(kindsList, Object.entries(KIND_HINTS).map(([kind, text]) => [h('dt', {}, code(kind)), h('dd', {}, text)]));
    kindsList.after(h('p', { class: 'muted' }, `(The server's list of kinds could not load: ${messageOf(error)})`));
  }

  try {
    const models = (await api.get('/api/models')) || [];
    if (!alive()) return;
    const ready = models.filter((m) => !m.status || m.status === 'ready').slice(0, 3);
    if (!ready.length) {
      replace(examples, h('p', {}, 'No trained models yet. ', h('a', { href: '#/train' }, 'Train the first one'), ' and its sample images will appear here.'));
      return;
    }
    replace(examples, ready.map((m) => {
      const img = h('img', { alt: `Sample images from model ${m.name} (${m.kind})`, loading: 'lazy', 'data-testid': 'example-grid' });
      const fig = h('figure', { class: 'example' }, img,
        h('figcaption', {}, h('a', { href: `#/generate/${encodeURIComponent(m.name)}` }, m.name), ` · ${m.kind}`,
          m.class_names ? ` · ${m.class_names.length} classes` : ''));
      loadImage(img, `/api/models/${encodeURIComponent(m.name)}/grid.png`, {
        onMissing: () => img.replaceWith(h('p', { class: 'muted' }, 'No sample grid')),
      });
      return fig;
    }));
  } catch (error) {
    if (alive()) replace(examples, h('p', { class: 'muted' }, `Examples could not load: ${messageOf(error)}`));
  }
}

// ---------------------------------------------------------------------------------------------
// Train: the wizard

/** Read all files of a dropped directory entry: [{file, path}] with path relative to the drop. */
async function readEntry(entry) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, path: entry.fullPath.replace(/^\//, '') }];
  }
  if (!entry.isDirectory) return [];
  const reader = entry.createReader();
  const children = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    children.push(...batch);
  }
  const nested = await Promise.all(children.map(readEntry));
  return nested.flat();
}

/** Files of a drop event: [{file, path}] (path from folders when the browser gives entries). */
async function droppedFiles(event) {
  const items = [...(event.dataTransfer.items || [])];
  const entries = items.map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null)).filter(Boolean);
  if (entries.length) return (await Promise.all(entries.map(readEntry))).flat();
  return [...(event.dataTransfer.files || [])].map((file) => ({ file, path: file.name }));
}

/** Split folder files into per-class images and ignored files: class = first-level subfolder. */
function classifyFolder(items) {
  let list = items.map(({ file, path }) => ({ file, parts: (path || file.webkitRelativePath || file.name).split('/').filter(Boolean) }));
  // A drop of class folders themselves (no common root): give them one.
  if (list.length && !list.some((x) => x.parts.length >= 3)) list = list.map((x) => ({ ...x, parts: ['dropped', ...x.parts] }));
  const images = [];
  const ignored = [];
  for (const { file, parts } of list) {
    const shown = parts.join('/');
    if (parts.some((p) => p.startsWith('.'))) ignored.push({ name: shown, reason: 'hidden file' });
    else if (!IMAGE_FILE.test(file.name)) ignored.push({ name: shown, reason: 'not a .png/.jpg/.jpeg image' });
    else if (parts.length < 3) ignored.push({ name: shown, reason: 'not inside a class subfolder' });
    else images.push({ cls: parts[1], file });
  }
  return { images, ignored };
}

function ignoredList(ignored, id) {
  if (!ignored.length) return null;
  const shown = ignored.slice(0, 50);
  return h('details', { class: 'ignored', 'data-testid': id, id },
    h('summary', {}, `${ignored.length} file${ignored.length === 1 ? '' : 's'} ignored`),
    h('ul', {}, shown.map((x) => h('li', {}, code(x.name), ` — ${x.reason}`)),
      ignored.length > shown.length ? h('li', {}, `… and ${ignored.length - shown.length} more`) : null));
}

function countsTable(counts, caption, id) {
  const entries = Object.entries(counts || {});
  return h('table', { class: 'counts', 'data-testid': id, id },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Class'), h('th', { scope: 'col' }, 'Images'))),
    h('tbody', {}, entries.map(([cls, n]) => h('tr', {}, h('th', { scope: 'row' }, cls), h('td', {}, String(n))))));
}

/** The ingest report of an upload (accepted per class, rejected files with reasons, notes). */
function reportView(dataset) {
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

async function trainPage(view, { alive }) {
  add(view, pageHeading('Train a generator'),
    h('p', { class: 'lead' }, 'Upload labelled images, choose a generator kind and start training. Training runs on the server; you can leave this page and come back from ', h('a', { href: '#/jobs' }, 'Jobs'), '.'));
  const done = loading(view);
  const [kinds, datasets] = await Promise.all([getKinds(), api.get('/api/datasets').catch(() => [])]).finally(done);
  if (!alive()) return;

  const form = h('form', { id: 'train-form', 'data-testid': 'train-form', novalidate: true, class: 'wizard' });

  // 1. name
  const nameInput = h('input', { id: 'train-name', 'data-testid': 'train-name', type: 'text', required: true, maxlength: 64, autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. digits-vae' });
  const nameRow = field('Model name', nameInput, `The name the trained model gets in the shared registry: ${NAME_RULE}.`, { errorId: 'train-name-error' });
  const nameError = nameRow.querySelector('.field-error');
  const checkName = () => {
    const value = nameInput.value.trim();
    const bad = value && !NAME_PATTERN.test(value) ? `“${value}” is not a valid name: use ${NAME_RULE}.` : '';
    nameError.textContent = bad;
    nameError.hidden = !bad;
    if (bad) nameInput.setAttribute('aria-invalid', 'true');
    else nameInput.removeAttribute('aria-invalid');
    return !bad;
  };
  nameInput.addEventListener('input', checkName);

  // 2. kind
  const kindFieldset = h('fieldset', { class: 'kind-choice', 'data-testid': 'kind-choice' }, h('legend', {}, 'Generator kind'));
  kinds.forEach((k, i) => {
    const id = `kind-${k.kind}`;
    const radio = h('input', { type: 'radio', name: 'kind', id, value: k.kind, 'data-testid': id, checked: k.kind === 'vae' || (i === 0 && !kinds.some((x) => x.kind === 'vae')), 'aria-describedby': `${id}-help` });
    add(kindFieldset, h('div', { class: 'field field-check kind-option' }, radio,
      h('label', { for: id }, h('strong', {}, k.kind), k.data_kind && k.data_kind !== 'images' ? ` (${k.data_kind})` : ''),
      h('p', { class: 'help', id: `${id}-help` }, KIND_HINTS[k.kind] || k.summary || '')));
  });
  const selectedKind = () => {
    const checked = kindFieldset.querySelector('input[name=kind]:checked');
    return checked ? kinds.find((k) => k.kind === checked.value) : null;
  };

  // 3. images
  const sources = [
    ['folder', 'A folder with one subfolder per class'],
    ['classes', 'Class by class'],
    ['archive', 'A zip or tar archive'],
    ['dataset', 'A dataset already on the server'],
  ];
  const sourceFieldset = h('fieldset', { class: 'source-choice', 'data-testid': 'source-choice' }, h('legend', {}, 'Where the images come from'));
  for (const [value, text] of sources) {
    const id = `source-${value}`;
    add(sourceFieldset, h('div', { class: 'field field-check inline' },
      h('input', { type: 'radio', name: 'source', id, value, 'data-testid': id, checked: value === 'folder' }),
      h('label', { for: id }, text)));
  }
  const source = () => (sourceFieldset.querySelector('input[name=source]:checked') || {}).value;
  const tableNote = h('p', { class: 'note', hidden: true, 'data-testid': 'table-kind-note' },
    'This kind learns from tables, not images: choose a table dataset already on the server (upload tables with ', code('genaug ingest data.csv'), ').');

  const selection = { folder: { images: [], ignored: [] }, archive: { file: null, ignored: [] } };
  const summary = h('div', { class: 'selection-summary', id: 'selection-summary', 'data-testid': 'selection-summary', 'aria-live': 'polite' });

  // 3a. folder
  const folderInput = h('input', { type: 'file', id: 'folder-input', 'data-testid': 'folder-input', webkitdirectory: true, directory: true, multiple: true });
  const setFolder = (items) => {
    selection.folder = classifyFolder(items);
    updateSummary();
  };
  folderInput.addEventListener('change', () => setFolder([...folderInput.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }))));
  const dropZone = h('div', { class: 'drop-zone', id: 'drop-zone', 'data-testid': 'drop-zone' },
    h('p', {}, 'Drop a folder here (one subfolder per class), or an archive.'),
    field('Choose a folder', folderInput, 'Pick the folder that holds one subfolder per class; only .png, .jpg and .jpeg files are used.'));
  const folderPanel = h('div', { class: 'source-panel', 'data-source': 'folder', 'data-testid': 'panel-folder' }, dropZone);

  // 3b. class by class
  const rowsBox = h('div', { class: 'class-rows', id: 'class-rows', 'data-testid': 'class-rows' });
  const classRows = [];
  let rowCounter = 0;
  const addClassRow = (name = '') => {
    const index = rowCounter++;
    const row = { index, images: [], ignored: [] };
    row.nameInput = h('input', { type: 'text', id: `class-name-${index}`, 'data-testid': `class-name-${index}`, value: name, spellcheck: 'false', placeholder: 'e.g. cat' });
    row.fileInput = h('input', { type: 'file', id: `class-files-${index}`, 'data-testid': `class-files-${index}`, multiple: true, accept: '.png,.jpg,.jpeg,image/png,image/jpeg' });
    row.list = h('div', { class: 'row-files', 'aria-live': 'polite', 'data-testid': `class-summary-${index}` });
    row.nameInput.addEventListener('input', () => updateSummary());
    const addFiles = (files) => {
      for (const file of files) {
        if (IMAGE_FILE.test(file.name) && !file.name.startsWith('.')) row.images.push(file);
        else row.ignored.push({ name: file.name, reason: 'not a .png/.jpg/.jpeg image' });
      }
      renderRow();
      updateSummary();
    };
    const renderRow = () => replace(row.list,
      h('span', {}, `${row.images.length} image${row.images.length === 1 ? '' : 's'}`),
      row.images.length ? h('button', { type: 'button', class: 'link-button', onclick: () => { row.images = []; row.ignored = []; renderRow(); updateSummary(); } }, 'clear') : null,
      ignoredList(row.ignored, `class-ignored-${index}`));
    row.fileInput.addEventListener('change', () => {
      addFiles([...row.fileInput.files]);
      row.fileInput.value = '';
    });
    const remove = h('button', { type: 'button', class: 'secondary', 'data-testid': `class-remove-${index}`, 'aria-label': `Remove class row ${index + 1}`, onclick: () => {
      classRows.splice(classRows.indexOf(row), 1);
      row.el.remove();
      updateSummary();
    } }, 'Remove');
    row.el = h('div', { class: 'class-row drop-target', 'data-testid': `class-row-${index}` },
      field(`Class ${index + 1} name`, row.nameInput),
      field(`Class ${index + 1} images`, row.fileInput, 'Choose or drop images of this class here.'),
      row.list, remove);
    row.el.addEventListener('dragover', (e) => { e.preventDefault(); e.stopPropagation(); row.el.classList.add('dragging'); });
    row.el.addEventListener('dragleave', () => row.el.classList.remove('dragging'));
    row.el.addEventListener('drop', async (e) => {
      e.preventDefault();
      e.stopPropagation();
      row.el.classList.remove('dragging');
      addFiles((await droppedFiles(e)).map((x) => x.file));
    });
    renderRow();
    classRows.push(row);
    add(rowsBox, row.el);
    return row;
  };
  addClassRow();
  addClassRow();
  const classesPanel = h('div', { class: 'source-panel', 'data-source': 'classes', 'data-testid': 'panel-classes', hidden: true },
    rowsBox, h('button', { type: 'button', id: 'add-class', 'data-testid': 'add-class', class: 'secondary', onclick: () => addClassRow().nameInput.focus() }, 'Add class'));

  // 3c. archive
  const archiveInput = h('input', { type: 'file', id: 'archive-input', 'data-testid': 'archive-input', accept: '.zip,.tar,.tgz,.gz,application/zip,application/x-tar,application/gzip' });
  const setArchive = (file) => {
    selection.archive = ARCHIVE_FILE.test(file.name)
      ? { file, ignored: [] }
      : { file: null, ignored: [{ name: file.name, reason: 'not a .zip, .tar, .tar.gz or .tgz archive' }] };
    updateSummary();
  };
  archiveInput.addEventListener('change', () => archiveInput.files[0] && setArchive(archiveInput.files[0]));
  const archivePanel = h('div', { class: 'source-panel drop-target', 'data-source': 'archive', 'data-testid': 'panel-archive', hidden: true },
    field('Archive', archiveInput, 'A .zip, .tar, .tar.gz or .tgz holding one folder per class.'));

  // 3d. existing dataset
  const datasetSelect = h('select', { id: 'train-dataset', 'data-testid': 'train-dataset' });
  const fillDatasets = () => {
    const kind = selectedKind();
    const want = kind && kind.data_kind;
    const usable = datasets.filter((d) => !want || !d.data_kind || d.data_kind === want);
    replace(datasetSelect, usable.length
      ? usable.map((d) => h('option', { value: d.name }, `${d.name} (${d.n} ${d.data_kind === 'table' ? 'rows' : 'images'}, ${Object.keys(d.counts || {}).length} classes)`))
      : h('option', { value: '' }, 'no dataset on the server'));
  };
  const datasetPanel = h('div', { class: 'source-panel', 'data-source': 'dataset', 'data-testid': 'panel-dataset', hidden: true },
    field('Dataset', datasetSelect, 'Datasets kept on the server from earlier uploads or `genaug ingest`.'));

  const panels = [folderPanel, classesPanel, archivePanel, datasetPanel];
  const datasetName = h('input', { type: 'text', id: 'dataset-name', 'data-testid': 'dataset-name', spellcheck: 'false', placeholder: 'same as the model name' });
  const imageSize = h('input', { type: 'number', id: 'image-size', 'data-testid': 'image-size', value: '64', min: 8, max: 1024, step: 1 });
  const uploadOptions = h('div', { class: 'upload-options' },
    field('Image size (pixels)', imageSize, 'Images are resized to this square size. Smaller trains faster.'),
    field('Dataset name (optional)', datasetName, `Name of the uploaded dataset on the server; ${NAME_RULE}.`),
  );
  const keepData = h('input', { type: 'checkbox', id: 'keep-data', 'data-testid': 'keep-data' });

  const updatePanels = () => {
    const kind = selectedKind();
    const tableKind = kind && kind.data_kind === 'table';
    sourceFieldset.querySelectorAll('input[name=source]').forEach((radio) => {
      radio.disabled = tableKind && radio.value !== 'dataset';
      if (tableKind && radio.value === 'dataset') radio.checked = true;
    });
    tableNote.hidden = !tableKind;
    const chosen = source();
    panels.forEach((panel) => { panel.hidden = panel.dataset.source !== chosen; });
    uploadOptions.hidden = chosen === 'dataset';
    fillDatasets();
    updateSummary();
  };
  sourceFieldset.addEventListener('change', updatePanels);

  function updateSummary() {
    const chosen = source();
    if (chosen === 'folder') {
      const counts = {};
      selection.folder.images.forEach(({ cls }) => { counts[cls] = (counts[cls] || 0) + 1; });
      replace(summary, selection.folder.images.length
        ? countsTable(counts, `${selection.folder.images.length} images in ${Object.keys(counts).length} classes`, 'selection-counts')
        : h('p', { class: 'muted' }, 'No images chosen yet.'),
      ignoredList(selection.folder.ignored, 'ignored-files'));
    } else if (chosen === 'classes') {
      const counts = {};
      classRows.forEach((r) => { if (r.images.length) counts[r.nameInput.value.trim() || `(class ${r.index + 1} has no name)`] = r.images.length; });
      replace(summary, Object.keys(counts).length ? countsTable(counts, 'Images per class', 'selection-counts') : h('p', { class: 'muted' }, 'No images chosen yet.'));
    } else if (chosen === 'archive') {
      replace(summary, selection.archive.file ? h('p', {}, 'Archive: ', code(selection.archive.file.name), ` (${(selection.archive.file.size / 1e6).toFixed(1)} MB)`) : h('p', { class: 'muted' }, 'No archive chosen yet.'),
        ignoredList(selection.archive.ignored, 'ignored-files'));
    } else replace(summary);
  }

  // Drops anywhere on the image step: folders -> folder mode, an archive -> archive mode.
  const imagesStep = h('section', { class: 'step', 'aria-labelledby': 'step-images', 'data-testid': 'step-images' },
    h('h2', { id: 'step-images' }, '3. Images'), sourceFieldset, tableNote, ...panels, summary, uploadOptions);
  const dropError = errorBox('drop-error');
  add(imagesStep, dropError);
  imagesStep.addEventListener('dragover', (e) => { e.preventDefault(); dropZone.classList.add('dragging'); });
  imagesStep.addEventListener('dragleave', () => dropZone.classList.remove('dragging'));
  imagesStep.addEventListener('drop', async (e) => {
    e.preventDefault();
    dropZone.classList.remove('dragging');
    showError(dropError, '');
    const items = await droppedFiles(e);
    if (!items.length) return;
    const archives = items.filter((x) => ARCHIVE_FILE.test(x.file.name));
    if (items.length === 1 && archives.length === 1) {
      sourceFieldset.querySelector('#source-archive').checked = true;
      setArchive(archives[0].file);
      updatePanels();
    } else if (items.some((x) => x.path.includes('/'))) {
      sourceFieldset.querySelector('#source-folder').checked = true;
      setFolder(items);
      updatePanels();
    } else {
      showError(dropError, 'Loose files need a class: drop them onto a class row (“Class by class”), or drop a folder that holds one subfolder per class.');
    }
  });

  // 4. settings: augmentation + the advanced form generated from the kind's schema
  const augmentToggle = h('input', { type: 'checkbox', id: 'augment-toggle', 'data-testid': 'augment-toggle' });
  const augmentCopies = h('input', { type: 'number', id: 'augment-copies', 'data-testid': 'augment-copies', value: '4', min: 1, max: 50, step: 1, disabled: true });
  augmentToggle.addEventListener('change', () => { augmentCopies.disabled = !augmentToggle.checked; });
  const advanced = h('details', { class: 'advanced', id: 'advanced', 'data-testid': 'advanced' }, h('summary', { id: 'advanced-summary' }, 'Advanced settings'));
  const advancedBody = h('div', { id: 'advanced-body', 'data-testid': 'advanced-body' });
  const resetButton = h('button', { type: 'button', class: 'secondary', id: 'advanced-reset', 'data-testid': 'advanced-reset' }, 'Reset to defaults');
  add(advanced, h('p', { class: 'help' }, 'Only the settings you change are sent; everything else keeps the kind’s defaults.'), advancedBody, resetButton);
  let configForm = null;
  let kindToken = 0;
  const loadKindForm = async () => {
    const kind = selectedKind();
    if (!kind) return;
    const token = ++kindToken;
    replace(advancedBody, h('p', { class: 'muted' }, 'Loading settings…'));
    try {
      const detail = kind.schema ? kind : await getKind(kind.kind);
      if (token !== kindToken || !alive()) return;
      configForm = schemaForm(detail.schema, detail.defaults || {}, { idPrefix: 'cfg' });
      replace(advancedBody, h('p', { class: 'muted' }, detail.summary || ''), configForm.element);
    } catch (error) {
      if (token !== kindToken) return;
      configForm = null;
      replace(advancedBody, h('div', { class: 'alert', role: 'alert' }, `Settings of ${kind.kind} could not load: ${messageOf(error)}`));
    }
  };
  resetButton.addEventListener('click', () => configForm && configForm.reset());
  kindFieldset.addEventListener('change', () => {
    loadKindForm();
    updatePanels();
  });

  // 5. submit
  const submit = h('button', { type: 'submit', id: 'train-submit', 'data-testid': 'train-submit', class: 'primary' }, 'Upload and start training');
  const uploadProgress = h('progress', { id: 'upload-progress', 'data-testid': 'upload-progress', max: 100, value: 0, 'aria-labelledby': 'upload-progress-label' });
  const uploadText = h('span', { id: 'upload-progress-text', 'data-testid': 'upload-progress-text', 'aria-live': 'polite' });
  const uploadBox = h('div', { class: 'upload-box', hidden: true, 'data-testid': 'upload-box' },
    h('span', { id: 'upload-progress-label' }, 'Upload'), uploadProgress, uploadText);
  const trainError = errorBox('train-error');
  const reportBox = h('div', { id: 'report-box' });

  add(form, 
    h('section', { class: 'step', 'aria-labelledby': 'step-name' }, h('h2', { id: 'step-name' }, '1. Name'), nameRow),
    h('section', { class: 'step', 'aria-labelledby': 'step-kind' }, h('h2', { id: 'step-kind' }, '2. Generator'), kindFieldset),
    imagesStep,
    h('section', { class: 'step', 'aria-labelledby': 'step-settings' }, h('h2', { id: 'step-settings' }, '4. Settings'),
      field('Add classic-augmented copies before training', augmentToggle, 'Flipped, cropped and recoloured copies of every image: more to learn from when you have few images.'),
      field('Copies per image', augmentCopies),
      field('Keep the uploaded images on the server', keepData, 'To train other kinds on them or evaluate later; otherwise they are deleted after training.'),
      advanced),
    h('div', { class: 'actions' }, submit, uploadBox),
    trainError,
    reportBox,
  );
  add(view, form);
  updatePanels();
  loadKindForm();

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError(trainError, '');
    const name = nameInput.value.trim();
    const kind = selectedKind();
    const problem = (message, focus) => {
      showError(trainError, message);
      if (focus) focus.focus();
    };
    if (!name) return problem('Please give the model a name.', nameInput);
    if (!checkName()) return problem(nameError.textContent, nameInput);
    if (!kind) return problem('Please choose a generator kind.', kindFieldset.querySelector('input'));
    let config = {};
    if (configForm) {
      try {
        config = configForm.values();
      } catch (error) {
        advanced.open = true;
        problem(error.message, error.focus);
        return;
      }
    }
    const chosen = source();
    let dataset = null;
    let uploaded = null;
    if (chosen === 'dataset') {
      dataset = datasetSelect.value;
      if (!dataset) return problem('There is no dataset on the server yet: upload images instead.', datasetSelect);
    } else {
      const dsName = datasetName.value.trim() || name;
      if (!NAME_PATTERN.test(dsName)) return problem(`Dataset name “${dsName}” is not valid: use ${NAME_RULE}.`, datasetName);
      const size = Number(imageSize.value);
      if (!Number.isInteger(size) || size < 8 || size > 1024) return problem('Image size must be a whole number from 8 to 1024.', imageSize);
      const formData = new FormData();
      formData.append('name', dsName);
      formData.append('image_size', String(size));
      let signatureParts = [];
      if (chosen === 'folder') {
        if (!selection.folder.images.length) return problem('Choose a folder with one subfolder of images per class.', folderInput);
        for (const { cls, file } of selection.folder.images) {
          formData.append('files', file, `${cls}/${file.name}`);
          signatureParts.push(`${cls}/${file.name}:${file.size}:${file.lastModified}`);
        }
      } else if (chosen === 'classes') {
        const names = new Set();
        for (const row of classRows) {
          if (!row.images.length) continue;
          const cls = row.nameInput.value.trim();
          if (!cls) return problem(`Class ${row.index + 1} has images but no name.`, row.nameInput);
          if (/[\\/]/.test(cls) || cls === '.' || cls === '..') return problem(`Class name “${cls}” may not contain “/” or “\\”.`, row.nameInput);
          if (names.has(cls)) return problem(`Two rows are called “${cls}”: class names must differ.`, row.nameInput);
          names.add(cls);
          for (const file of row.images) {
            formData.append('files', file, `${cls}/${file.name}`);
            signatureParts.push(`${cls}/${file.name}:${file.size}:${file.lastModified}`);
          }
        }
        if (!names.size) return problem('Add images to at least one class.', classRows[0] && classRows[0].fileInput);
      } else {
        const file = selection.archive.file;
        if (!file) return problem('Choose a .zip, .tar, .tar.gz or .tgz archive.', archiveInput);
        formData.append('files', file, file.name);
        signatureParts.push(`${file.name}:${file.size}:${file.lastModified}`);
      }
      // Resubmitting the same files (say after fixing a setting or the model name) reuses the upload;
      // only a dataset name typed by the user makes it a different dataset.
      const signature = [datasetName.value.trim(), size, ...signatureParts.sort()].join('|');
      submit.disabled = true;
      if (lastUpload && lastUpload.signature === signature) {
        dataset = lastUpload.name;
        uploaded = lastUpload.dataset;
      } else {
        uploadBox.hidden = false;
        uploadProgress.value = 0;
        uploadText.textContent = '0%';
        try {
          uploaded = await api.upload('/api/datasets', formData, (loaded, total) => {
            const pct = total ? Math.floor((loaded / total) * 100) : 0;
            uploadProgress.value = pct;
            uploadText.textContent = pct >= 100 ? '100% — checking images…' : `${pct}%`;
          });
        } catch (error) {
          submit.disabled = false;
          uploadText.textContent = 'failed';
          fail(trainError, error);
          return;
        }
        uploadProgress.value = 100;
        uploadText.textContent = '100% — done';
        dataset = uploaded.name;
        lastUpload = { signature, name: dataset, dataset: uploaded };
      }
      replace(reportBox, reportView(uploaded));
    }
    submit.disabled = true;
    const params = { dataset, kind: kind.kind, name, config, augment: augmentToggle.checked ? Number(augmentCopies.value) || 0 : 0 };
    if (keepData.checked || chosen === 'dataset') params.keep_data = true;
    try {
      const job = await api.post('/api/jobs', { type: 'train', params });
      if (uploaded) uploadReports.set(job.id, uploaded);
      // Without keep_data the server deletes the dataset after this training: never reuse it.
      if (!params.keep_data) lastUpload = null;
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (error) {
      submit.disabled = false;
      if (configForm && configForm.showServerError(messageOf(error))) advanced.open = true;
      fail(trainError, error);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Jobs: the list and one job's live page

async function jobsPage(view, { alive }) {
  const typeSelect = h('select', { id: 'jobs-type', 'data-testid': 'jobs-type' },
    ['', 'train', 'generate', 'evaluate'].map((t) => h('option', { value: t }, t || 'all types')));
  const statusSelect = h('select', { id: 'jobs-status', 'data-testid': 'jobs-status' },
    ['', 'queued', 'running', 'succeeded', 'failed', 'cancelled'].map((s) => h('option', { value: s }, s || 'all statuses')));
  const tableBox = h('div', { id: 'jobs-table', 'data-testid': 'jobs-table', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  const error = errorBox('jobs-error');
  add(view, pageHeading('Jobs'),
    h('form', { class: 'filters', novalidate: true, onsubmit: (e) => e.preventDefault() },
      field('Type', typeSelect), field('Status', statusSelect)),
    error, tableBox);
  let timer = null;
  onLeave(() => clearTimeout(timer));
  const load = async () => {
    clearTimeout(timer);
    const query = new URLSearchParams({ limit: '100' });
    if (typeSelect.value) query.set('type', typeSelect.value);
    if (statusSelect.value) query.set('status', statusSelect.value);
    try {
      const jobs = (await api.get(`/api/jobs?${query}`)) || [];
      if (!alive()) return;
      showError(error, '');
      replace(tableBox, jobs.length ? h('table', { class: 'jobs' },
        h('caption', { class: 'visually-hidden' }, 'Jobs, newest first'),
        h('thead', {}, h('tr', {}, ['Job', 'Type', 'What', 'Status', 'Progress', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, jobs.map((job) => h('tr', { 'data-testid': 'job-row', 'data-job-id': job.id },
          h('td', {}, h('a', { href: `#/jobs/${encodeURIComponent(job.id)}` }, String(job.id).slice(0, 8))),
          h('td', {}, job.type),
          h('td', {}, describeJob(job)),
          h('td', {}, statusBadge(job.status)),
          h('td', {}, `${percentOf(job)}%`),
          h('td', {}, formatDate(job.created_at)))))) : h('p', {}, 'No jobs yet. ', h('a', { href: '#/train' }, 'Train a model'), ' to start one.'));
      if (jobs.some((j) => !FINISHED.has(j.status))) timer = setTimeout(load, 3000);
    } catch (err) {
      if (alive()) fail(error, err);
    }
  };
  typeSelect.addEventListener('change', load);
  statusSelect.addEventListener('change', load);
  await load();
}

async function jobPage(view, { alive }, jobId) {
  const path = `/api/jobs/${encodeURIComponent(jobId)}`;
  const statusText = h('p', { id: 'job-status', 'data-testid': 'job-status', class: 'job-status', 'aria-live': 'polite' }, 'Loading…');
  const progress = h('progress', { id: 'job-progress', 'data-testid': 'job-progress', max: 100, value: 0, 'aria-labelledby': 'job-progress-label' });
  const percent = h('span', { id: 'job-percent', 'data-testid': 'job-percent', class: 'percent', 'aria-live': 'polite' }, '0%');
  const facts = h('dl', { class: 'facts', id: 'job-facts', 'data-testid': 'job-facts' });
  const canvas = h('canvas', { id: 'loss-chart', 'data-testid': 'loss-chart', class: 'chart', role: 'img', 'aria-label': 'Loss chart: no values yet', width: 640, height: 260 });
  const chartSection = h('section', { 'aria-labelledby': 'chart-title', class: 'panel', hidden: true, 'data-testid': 'chart-section' }, h('h2', { id: 'chart-title' }, 'Losses'), canvas);
  const grid = h('img', { id: 'job-grid', 'data-testid': 'job-grid', alt: 'Latest sample images of this training', hidden: true });
  const gridNote = h('p', { class: 'muted', 'data-testid': 'job-grid-note' }, 'No sample images yet.');
  const gridSection = h('section', { 'aria-labelledby': 'grid-title', class: 'panel', hidden: true, 'data-testid': 'grid-section' }, h('h2', { id: 'grid-title' }, 'Latest samples'), grid, gridNote);
  const log = h('pre', { id: 'job-log', 'data-testid': 'job-log', class: 'log', tabindex: '0', 'aria-label': 'Job log' });
  const cancel = h('button', { type: 'button', id: 'job-cancel', 'data-testid': 'job-cancel', class: 'danger', hidden: true }, 'Cancel job');
  const cancelError = errorBox('job-cancel-error');
  const result = h('section', { id: 'job-result', 'data-testid': 'job-result', 'aria-labelledby': 'result-title', hidden: true, class: 'panel' });
  const watchNote = h('p', { class: 'muted small', id: 'job-watch-mode', 'data-testid': 'job-watch-mode' });
  const loadError = errorBox('job-error-box');
  const heading = pageHeading('Job');
  const upload = uploadReports.get(jobId);

  add(view, heading, h('p', { id: 'job-what', 'data-testid': 'job-what', class: 'lead' }),
    loadError,
    h('div', { class: 'job-layout' },
      h('div', { class: 'job-main' },
        h('section', { class: 'panel progress-panel', 'aria-labelledby': 'job-progress-label' },
          h('h2', { id: 'job-progress-label' }, 'Progress'),
          statusText,
          h('div', { class: 'progress-row' }, progress, percent),
          facts,
          h('div', { class: 'actions' }, cancel), cancelError, watchNote),
        result),
      h('div', { class: 'job-side' }, chartSection, gridSection)),
    h('section', { class: 'panel', 'aria-labelledby': 'log-title' }, h('h2', { id: 'log-title' }, 'Log'), log),
    upload ? reportView(upload) : null,
    h('p', {}, h('a', { href: '#/jobs' }, '← All jobs')));

  let job = null;
  let lastHistoryKey = '';
  let gridTimer = null;
  let pollTimer = null;
  let source = null;
  let renderedResult = false;
  let gridLoadedFinal = false;
  onLeave(() => {
    clearInterval(gridTimer);
    clearTimeout(pollTimer);
    if (source) source.close();
  });

  const refreshGrid = () => {
    if (!job) return;
    const url = job.grid_url || (job.type === 'train' ? `${path}/grid.png` : null);
    if (!url) return;
    gridSection.hidden = false;
    loadImage(grid, withBust(url), { onMissing: () => { gridNote.hidden = false; } });
    grid.addEventListener('load', () => { gridNote.hidden = true; }, { once: true });
  };

  const update = (next) => {
    if (!alive() || !next) return;
    job = next;
    heading.textContent = `${job.type ? job.type[0].toUpperCase() + job.type.slice(1) : 'Job'} job ${String(job.id).slice(0, 8)}`;
    view.querySelector('#job-what').textContent = describeJob(job);
    // Only train jobs have a chart and samples beside the progress: the others use the full width.
    view.querySelector('.job-layout').classList.toggle('single', job.type !== 'train');
    const p = job.progress || {};
    const pct = percentOf(job);
    progress.value = pct;
    percent.textContent = `${pct}%`;
    replace(statusText, 'Status: ', statusBadge(job.status), job.status === 'queued' ? ' — waiting for a worker' : '');
    const reported = Object.entries(p.losses || {});
    const lossText = reported.filter(([k]) => !NOT_A_LOSS.test(k)).map(([k, v]) => `${k} ${formatNumber(v)}`).join(', ') || '–';
    const otherText = reported.filter(([k]) => NOT_A_LOSS.test(k)).map(([k, v]) => (/_per_s$/.test(k) ? `${formatNumber(v)} ${k.replace(/_per_s$/, '').replace(/_/g, ' ')}/s` : `${k.replace(/_/g, ' ')} ${formatNumber(v)}`)).join(', ');
    const rows = [
      ['Stage', p.stage || '–'],
      ['Step', p.total ? `${p.step ?? 0} / ${p.total}` : (p.step ?? '–')],
      ['Time left', job.status === 'running' ? formatSeconds(p.eta_seconds) : '–'],
      ['Current losses', lossText],
      ...(otherText ? [['Speed', otherText]] : []),
      ['Created', formatDate(job.created_at)],
      ['Finished', formatDate(job.finished_at) || '–'],
    ];
    if (job.attempts > 1) rows.push(['Attempts', String(job.attempts)]);
    replace(facts, rows.map(([k, v]) => [h('dt', {}, k), h('dd', { 'data-testid': `job-${k.toLowerCase().replace(/\s+/g, '-')}` }, String(v))]));
    cancel.hidden = FINISHED.has(job.status);
    cancel.disabled = false;

    const history = p.history || [];
    const historyKey = `${history.length}:${JSON.stringify(history[history.length - 1] || null)}`;
    if (history.length && historyKey !== lastHistoryKey) {
      lastHistoryKey = historyKey;
      chartSection.hidden = false;
      const names = drawLossChart(canvas, history);
      const series = seriesFromHistory(history);
      canvas.setAttribute('aria-label', `Loss chart over ${history.length} points: ${names.map((n) => {
        const pts = series.get(n);
        return `${n} from ${formatNumber(pts[0][1])} to ${formatNumber(pts[pts.length - 1][1])}`;
      }).join('; ')}`);
    }
    const lines = Array.isArray(job.log) ? job.log : job.log ? String(job.log).split('\n') : [];
    const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = lines.length ? lines.join('\n') : '(no log lines yet)';
    if (stick) log.scrollTop = log.scrollHeight;

    if (job.type === 'train' || job.grid_url) {
      if (job.status === 'running' && !gridTimer) {
        refreshGrid();
        gridTimer = setInterval(refreshGrid, 4000);
      }
      if (FINISHED.has(job.status)) {
        clearInterval(gridTimer);
        gridTimer = null;
        if (!gridLoadedFinal) {
          gridLoadedFinal = true;
          refreshGrid();
        }
      }
    }
    if (FINISHED.has(job.status) && !renderedResult) {
      renderedResult = true;
      renderResult();
    }
  };

  function renderResult() {
    result.hidden = false;
    const r = job.result || {};
    const title = h('h2', { id: 'result-title' }, 'Result');
    if (job.status === 'failed') {
      replace(result, title, h('div', { class: 'alert', role: 'alert', id: 'job-error', 'data-testid': 'job-error' }, `The job failed: ${job.error || 'no reason given'}`));
      return;
    }
    if (job.status === 'cancelled') {
      replace(result, title, h('p', { 'data-testid': 'job-cancelled' }, 'The job was cancelled.'));
      return;
    }
    if (job.type === 'train') {
      const model = r.model || (job.params || {}).name;
      replace(result, title,
        h('p', {}, 'Model ', h('strong', {}, model), ' is trained and in the registry.'),
        h('p', { class: 'actions' },
          h('a', { class: 'button primary', href: `#/generate/${encodeURIComponent(model)}`, id: 'generate-from-model', 'data-testid': 'generate-from-model' }, `Generate images with ${model}`),
          h('a', { class: 'button secondary', href: '#/models' }, 'See all models')));
    } else if (job.type === 'generate') {
      const download = r.download || `${path}/samples.zip`;
      const link = h('a', { class: 'button primary', href: download, download: `${(job.params || {}).model || 'samples'}-samples.zip`, id: 'download-link', 'data-testid': 'download-link' },
        `Download zip${r.total !== undefined ? ` (${r.total} images)` : ''}`);
      const downloadError = errorBox('download-error');
      if (api.readsNeedToken()) {
        link.addEventListener('click', async (e) => {
          if (link.dataset.ready) return;
          e.preventDefault();
          try {
            link.href = await api.blobUrl(download);
            link.dataset.ready = '1';
            link.click();
          } catch (error) {
            fail(downloadError, error);
          }
        });
      }
      replace(result, title, r.counts ? countsTable(r.counts, 'Generated images per class', 'generated-counts') : null,
        h('p', { class: 'actions' }, link), downloadError);
    } else if (job.type === 'evaluate') {
      const recommendation = r.recommendation || (Array.isArray(r.verdict) ? r.verdict : r.verdict ? [r.verdict] : []);
      const warnings = r.warnings || [];
      const figures = (r.files || []).filter((f) => /\.png$/i.test(f));
      const figureBox = h('div', { class: 'figures', 'data-testid': 'report-figures' });
      for (const file of figures) {
        const img = h('img', { alt: `Evaluation plot ${file}`, loading: 'lazy', 'data-testid': 'report-figure' });
        const url = `${path}/files/${encodeURIComponent(file)}`;
        loadImage(img, url);
        add(figureBox, h('figure', {}, api.readsNeedToken() ? img : h('a', { href: url, target: '_blank', rel: 'noopener', title: `${file} at full size` }, img),
          h('figcaption', {}, file)));
      }
      const others = (r.files || []).filter((f) => !/\.png$/i.test(f));
      replace(result, title,
        h('h3', {}, 'Recommendation'),
        recommendation.length ? h('ul', { id: 'recommendation', 'data-testid': 'recommendation', class: 'verdict' }, recommendation.map((line) => h('li', {}, line))) : h('p', { class: 'muted' }, 'No recommendation.'),
        warnings.length ? [h('h3', {}, 'Warnings'), h('ul', { class: 'warnings', 'data-testid': 'eval-warnings' }, warnings.map((line) => h('li', {}, line)))] : null,
        Array.isArray(r.rows) && r.rows.length ? resultsTable(r.rows, r.classifier) : (r.table ? h('div', { 'data-testid': 'verdict-table', id: 'verdict-table' }, renderMarkdown(r.table, 4)) : null),
        (r.explanations || []).length ? h('details', { 'data-testid': 'how-to-read', open: true }, h('summary', {}, 'How to read these numbers'), h('ul', {}, r.explanations.map((line) => h('li', {}, line)))) : null,
        figures.length ? [h('h3', {}, 'Plots'), figureBox] : null,
        r.report ? h('details', { 'data-testid': 'report' }, h('summary', {}, 'Full report'), renderMarkdown(r.report, 4)) : null,
        others.length ? h('p', { 'data-testid': 'report-files' }, 'Files: ', others.map((f, i) => [i ? ', ' : '',
          h('a', { href: `${path}/files/${encodeURIComponent(f)}`, download: f }, f)])) : null);
    } else {
      replace(result, title, h('pre', {}, JSON.stringify(r, null, 2)));
    }
  }

  cancel.addEventListener('click', async () => {
    showError(cancelError, '');
    cancel.disabled = true;
    try {
      update(await api.post(`${path}/cancel`));
    } catch (error) {
      cancel.disabled = false;
      fail(cancelError, error);
    }
  });

  // Live updates: server-sent events where they need no token, else (and on any stream error) polling.
  let pollFailures = 0;
  const poll = async () => {
    try {
      const next = await api.get(path);
      pollFailures = 0;
      showError(loadError, '');
      update(next);
      if (alive() && !FINISHED.has(next.status)) pollTimer = setTimeout(poll, 1000);
    } catch (error) {
      if (!alive()) return;
      pollFailures++;
      fail(loadError, error);
      if (error.status !== 404) pollTimer = setTimeout(poll, Math.min(10000, 1000 * 2 ** pollFailures));
    }
  };
  const startPolling = () => {
    watchNote.textContent = 'Updating every second.';
    clearTimeout(pollTimer);
    poll();
  };

  // The first state, so the page is never empty while the stream connects.
  try {
    update(await api.get(path));
  } catch (error) {
    if (!alive()) return;
    fail(loadError, error);
    if (error.status === 404) {
      heading.textContent = 'Job not found';
      return;
    }
  }
  if (!alive() || (job && FINISHED.has(job.status))) return;
  const useStream = typeof EventSource !== 'undefined' && !api.readsNeedToken();
  if (!useStream) {
    startPolling();
    return;
  }
  watchNote.textContent = 'Live updates from the server.';
  source = new EventSource(`${path}/events`);
  const onJob = (event) => {
    try {
      update(JSON.parse(event.data));
    } catch {
      /* a malformed event: the next one or the final fetch fixes the page */
    }
  };
  source.addEventListener('job', onJob);
  source.onmessage = onJob;
  source.addEventListener('end', async () => {
    source.close();
    source = null;
    try {
      update(await api.get(path));
    } catch (error) {
      if (alive()) fail(loadError, error);
    }
  });
  source.onerror = () => {
    if (!source) return;
    source.close();
    source = null;
    if (alive() && !(job && FINISHED.has(job.status))) startPolling();
  };
}

// ---------------------------------------------------------------------------------------------
// Models

async function modelsPage(view, { alive }) {
  const box = h('div', { class: 'cards', id: 'model-cards', 'data-testid': 'model-cards' }, h('p', { class: 'muted' }, 'Loading…'));
  const error = errorBox('models-error');
  add(view, pageHeading('Models'), h('p', { class: 'lead' }, 'Trained generators in the shared registry. Anyone can generate images from them, without images of their own.'), error, box);
  let models;
  try {
    models = (await api.get('/api/models')) || [];
  } catch (err) {
    if (alive()) fail(error, err);
    return;
  }
  if (!alive()) return;
  if (!models.length) {
    replace(box, h('p', { 'data-testid': 'no-models' }, 'No trained models yet. ', h('a', { href: '#/train' }, 'Train one'), '.'));
    return;
  }
  replace(box, models.map((m) => modelCard(m)));
}

function modelCard(m) {
  const metrics = m.metrics || {};
  const seconds = metrics.training_seconds ?? metrics.train_seconds;
  const diversity = metrics.diversity;
  const classes = m.class_names || [];
  const img = h('img', { alt: `Sample images from ${m.name}`, loading: 'lazy', 'data-testid': 'model-grid' });
  const cardError = errorBox(`model-error-${m.name}`);
  const titleId = `model-title-${m.name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const card = h('article', { class: 'card', 'data-testid': 'model-card', 'data-model': m.name, 'aria-labelledby': titleId },
    h('div', { class: 'card-image' }, img),
    h('h2', { id: titleId }, m.name),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Kind'), h('dd', { 'data-testid': 'model-kind' }, m.kind),
      h('dt', {}, 'Classes'), h('dd', { 'data-testid': 'model-classes' }, classes.length ? `${classes.length}: ${classes.slice(0, 8).join(', ')}${classes.length > 8 ? ', …' : ''}` : '–'),
      h('dt', {}, 'Created'), h('dd', {}, formatDate(m.created_at)),
      m.status && m.status !== 'ready' ? [h('dt', {}, 'Status'), h('dd', {}, statusBadge(m.status))] : null,
      seconds !== undefined ? [h('dt', {}, 'Training time'), h('dd', { 'data-testid': 'model-training-seconds' }, formatSeconds(seconds))] : null,
      diversity !== undefined ? [h('dt', {}, 'Diversity'), h('dd', {}, formatNumber(diversity))] : null),
    m.training_data_note ? h('p', { class: 'muted training-data-note', 'data-testid': 'model-training-data' }, m.training_data_note) : null,
    h('div', { class: 'actions' },
      h('a', { class: 'button primary', href: `#/generate/${encodeURIComponent(m.name)}`, 'data-testid': 'model-generate' }, 'Generate', h('span', { class: 'visually-hidden' }, ` images with ${m.name}`)),
      h('a', { class: 'button secondary', href: `#/evaluate/model/${encodeURIComponent(m.name)}`, 'data-testid': 'model-evaluate' }, 'Does this model help?', h('span', { class: 'visually-hidden' }, ` (${m.name})`)),
      h('button', { type: 'button', class: 'danger', 'data-testid': 'model-delete', onclick: async (event) => {
        if (!window.confirm(`Delete model “${m.name}”? Its weights are removed for everyone.`)) return;
        const button = event.currentTarget;
        button.disabled = true;
        showError(cardError, '');
        try {
          await api.del(`/api/models/${encodeURIComponent(m.name)}`);
          const parent = card.parentElement;
          card.remove();
          if (parent && !parent.querySelector('[data-testid=model-card]')) replace(parent, h('p', { 'data-testid': 'no-models' }, 'No trained models left. ', h('a', { href: '#/train' }, 'Train one'), '.'));
          else if (parent) parent.closest('.view').querySelector('h1').focus();
        } catch (error) {
          button.disabled = false;
          fail(cardError, error);
        }
      } }, 'Delete', h('span', { class: 'visually-hidden' }, ` model ${m.name}`))),
    cardError);
  loadImage(img, m.grid_url || `/api/models/${encodeURIComponent(m.name)}/grid.png`, {
    onMissing: () => img.replaceWith(h('p', { class: 'muted no-grid' }, 'No sample grid')),
  });
  return card;
}

// ---------------------------------------------------------------------------------------------
// Generate

async function generatePage(view, { alive }, preselected) {
  add(view, pageHeading('Generate images'),
    h('p', { class: 'lead' }, 'Make new images with a trained model and download them as a zip: one folder per class plus ', code('manifest.jsonl'), ' saying how each image was made.'));
  const done = loading(view);
  const models = (await api.get('/api/models').finally(done)) || [];
  if (!alive()) return;
  if (!models.length) {
    add(view, h('p', { 'data-testid': 'no-models' }, 'There is no trained model yet. ', h('a', { href: '#/train' }, 'Train one first'), '.'));
    return;
  }
  const form = h('form', { id: 'generate-form', 'data-testid': 'generate-form', novalidate: true });
  const modelSelect = h('select', { id: 'gen-model', 'data-testid': 'gen-model' },
    models.map((m) => h('option', { value: m.name }, `${m.name} (${m.kind}${m.class_names ? `, ${m.class_names.length} classes` : ''})`)));
  if (preselected && models.some((m) => m.name === preselected)) modelSelect.value = preselected;
  const nInput = h('input', { type: 'number', id: 'gen-n', 'data-testid': 'gen-n', value: '10', min: 1, step: 1 });
  const balance = h('input', { type: 'checkbox', id: 'gen-balance', 'data-testid': 'gen-balance' });
  const seedInput = h('input', { type: 'number', id: 'gen-seed', 'data-testid': 'gen-seed', value: '0', step: 1, min: 0 });
  balance.addEventListener('change', () => { nInput.disabled = balance.checked; });
  const modelInfo = h('div', { class: 'model-info', 'data-testid': 'gen-model-info', 'aria-live': 'polite' });
  const optionsBox = h('div', { id: 'gen-options', 'data-testid': 'gen-options' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'gen-submit', 'data-testid': 'gen-submit' }, 'Generate');
  const error = errorBox('gen-error');
  add(form, 
    field('Model', modelSelect),
    modelInfo,
    field('Images per class', nInput, 'How many new images to make for every class.'),
    field('Balance classes instead', balance, 'Top up every class to the size of the largest class in the training data.'),
    field('Seed', seedInput, 'Same model, settings and seed = the same images. Leave empty for a random seed.'),
    h('fieldset', { class: 'options' }, h('legend', {}, 'Sampling options'), optionsBox),
    h('div', { class: 'actions' }, submit), error);
  add(view, form);

  let optionsForm = null;
  let token = 0;
  const loadModel = async () => {
    const model = models.find((m) => m.name === modelSelect.value);
    const mine = ++token;
    optionsForm = null;
    replace(modelInfo, model ? h('p', { class: 'muted' }, `Kind ${model.kind}; classes: ${(model.class_names || []).join(', ') || '?'}`) : null);
    if (!model) return;
    if (!location.hash.endsWith(`/${encodeURIComponent(model.name)}`)) history.replaceState(null, '', `#/generate/${encodeURIComponent(model.name)}`);
    replace(optionsBox, h('p', { class: 'muted' }, 'Loading options…'));
    try {
      const kind = await getKind(model.kind);
      if (mine !== token || !alive()) return;
      optionsForm = schemaForm(asSchema(kind.sample_options), {}, { idPrefix: 'opt' });
      replace(optionsBox, optionsForm.isEmpty ? h('p', { class: 'muted' }, `${model.kind} has no sampling options.`) : optionsForm.element);
    } catch (err) {
      if (mine === token) replace(optionsBox, h('div', { class: 'alert', role: 'alert' }, `Options could not load: ${messageOf(err)}`));
    }
  };
  modelSelect.addEventListener('change', loadModel);
  loadModel();

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError(error, '');
    const params = { model: modelSelect.value };
    if (balance.checked) params.balance = true;
    else {
      const n = Number(nInput.value);
      if (!Number.isInteger(n) || n < 1) {
        showError(error, 'Images per class must be a whole number of at least 1.');
        nInput.focus();
        return;
      }
      params.n_per_class = n;
    }
    if (seedInput.value.trim() !== '') {
      const seed = Number(seedInput.value);
      if (!Number.isInteger(seed)) {
        showError(error, 'The seed must be a whole number (or empty for a random one).');
        seedInput.focus();
        return;
      }
      params.seed = seed;
    }
    if (optionsForm) {
      try {
        params.options = optionsForm.values();
      } catch (err) {
        showError(error, err.message);
        if (err.focus) err.focus.focus();
        return;
      }
    }
    submit.disabled = true;
    try {
      const job = await api.post('/api/jobs', { type: 'generate', params });
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (err) {
      submit.disabled = false;
      if (optionsForm) optionsForm.showServerError(messageOf(err));
      fail(error, err);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Evaluate

/** A signed difference with its interval, and whether it is within noise. */
function deltaText(d) {
  if (!d) return '–';
  const f = (v) => `${v >= 0 ? '+' : ''}${v.toFixed(3)}`;
  return `${f(d.mean)} (${f(d.low)} to ${f(d.high)})${d.within_noise ? ', within noise' : ''}`;
}

/** The compact results table: plain arm names, the score with its interval, the differences. */
function resultsTable(rows, classifier) {
  const metric = rows[0].metric || 'score';
  return h('table', { class: 'results', 'data-testid': 'results-table', id: 'results-table' },
    h('caption', {}, `Test ${metric.replace('_', ' ')} per training set${classifier ? ` (classifier: ${classifier})` : ''}`),
    h('thead', {}, h('tr', {}, ['Images per class', 'Training data', `${metric.replace('_', ' ')} (95% interval)`, 'vs your images', 'vs + classic augmentation', 'Seeds']
      .map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.map((row) => h('tr', { 'data-arm': row.arm },
      h('td', {}, row.n === null || row.n === undefined ? 'all' : String(row.n)),
      h('th', { scope: 'row', title: row.arm }, row.plain_name || row.arm),
      h('td', {}, `${row.mean.toFixed(3)} (${row.low.toFixed(3)} to ${row.high.toFixed(3)})`),
      h('td', {}, deltaText(row.delta_vs_real)),
      h('td', {}, deltaText(row.delta_vs_classic)),
      h('td', {}, String(row.seeds))))));
}

function parseIntList(text, { min = -Infinity } = {}) {
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  const values = parts.map(Number);
  if (!parts.length || values.some((v) => !Number.isInteger(v) || v < min)) return null;
  return values;
}

const CLASSIFIERS = {
  images: [
    ['cnn', 'Small CNN from scratch (fast; the theses’ setting)'],
    ['lite0-linear', 'Pretrained EfficientNet-Lite0, linear head (what most people with few images deploy)'],
    ['lite0-finetune', 'Pretrained EfficientNet-Lite0, fine-tuned end to end (slowest)'],
  ],
  table: [['mlp', 'MLP'], ['gbm', 'Gradient-boosted trees']],
};

/** The classifier choice for a dataset's kind of data. */
function classifierField(select, dataKind) {
  select.replaceChildren(...(CLASSIFIERS[dataKind] || CLASSIFIERS.images).map(([value, text]) => h('option', { value }, text)));
}

async function evaluatePage(view, { alive }, modelName) {
  const forModel = modelName ? decodeURIComponent(modelName) : null;
  add(view, pageHeading(forModel ? `Does ${forModel} help?` : 'Evaluate: does synthetic data help?'),
    h('p', { class: 'lead' }, forModel
      ? `Trains the same classifier on a dataset’s images alone, with classic augmentation, and with images generated by ${forModel}; scored on test images the model has never seen.`
      : 'Trains the same classifier, with the same budget, on your images alone, with classic augmentation, and with generated images, over several seeds. The answer comes first, in one sentence.'));
  const done = loading(view);
  const [allDatasets, kinds, models] = await Promise.all([api.get('/api/datasets').catch(() => []), getKinds(),
    forModel ? api.get('/api/models').catch(() => []) : Promise.resolve([])]).finally(done);
  if (!alive()) return;
  const model = forModel ? (models || []).find((m) => m.name === forModel) : null;
  if (forModel && !model) {
    add(view, h('div', { class: 'alert', role: 'alert', 'data-testid': 'eval-error' }, `There is no model “${forModel}”. `, h('a', { href: '#/models' }, 'See the models.')));
    return;
  }
  const sameClasses = (d) => JSON.stringify(Object.keys(d.counts || {}).sort()) === JSON.stringify([...(model.class_names || [])].sort());
  const datasets = model ? (allDatasets || []).filter(sameClasses) : allDatasets;
  if (!datasets || !datasets.length) {
    add(view, h('p', { 'data-testid': 'no-datasets' }, model
      ? `There is no dataset on the server with ${model.name}’s classes (${(model.class_names || []).join(', ')}). Upload images it has never seen on the `
      : 'There is no dataset on the server. Upload one on the ', h('a', { href: '#/train' }, 'Train'), ' page with “Keep the uploaded images on the server” ticked, or run ', code('genaug ingest PATH'), '.'));
    return;
  }
  const form = h('form', { id: 'evaluate-form', 'data-testid': 'evaluate-form', novalidate: true });
  const datasetSelect = h('select', { id: 'eval-dataset', 'data-testid': 'eval-dataset' },
    datasets.map((d) => h('option', { value: d.name }, `${d.name} (${d.n} ${d.data_kind === 'table' ? 'rows' : 'images'}, ${Object.keys(d.counts || {}).length} classes)`)));
  const classifier = h('select', { id: 'eval-classifier', 'data-testid': 'eval-classifier' });
  const modeBox = h('fieldset', { class: 'kinds-box', 'data-testid': 'eval-mode' }, h('legend', {}, 'What to try'));
  const modes = [
    ['quick', 'Quick first answer', 'A few minutes: 10 images per class, 3 seeds, your images alone, with classic augmentation and with a small VAE’s images.'],
    ['select', 'Let genaug choose', 'Tries generator kinds, their key options and amounts on validation folds of your training images, then scores the best recipe once on the test images. Takes long on a CPU.'],
    ['pick', 'Compare generators I pick', 'Choose the generators, the numbers of images per class and the seeds yourself.'],
  ];
  for (const [value, text, help] of modes) {
    const id = `eval-mode-${value}`;
    add(modeBox, h('div', { class: 'field field-check' },
      h('input', { type: 'radio', name: 'eval-mode', id, value, 'data-testid': id, checked: value === 'quick', 'aria-describedby': `${id}-help` }),
      h('label', { for: id }, text), h('p', { class: 'help', id: `${id}-help` }, help)));
  }
  const kindsBox = h('fieldset', { class: 'kinds-box', 'data-testid': 'eval-kinds' }, h('legend', {}, 'Generators to compare'));
  const fillKinds = () => {
    const ds = datasets.find((d) => d.name === datasetSelect.value);
    const want = ds && ds.data_kind;
    classifierField(classifier, want || 'images');
    kindsBox.replaceChildren(h('legend', {}, 'Generators to compare'));
    kinds.filter((k) => !want || !k.data_kind || k.data_kind === want).forEach((k) => {
      const id = `eval-kind-${k.kind}`;
      add(kindsBox, h('div', { class: 'field field-check' },
        h('input', { type: 'checkbox', id, value: k.kind, 'data-testid': id, checked: k.kind === 'classic' || k.kind === 'vae', 'aria-describedby': `${id}-help` }),
        h('label', { for: id }, k.kind),
        h('p', { class: 'help', id: `${id}-help` }, KIND_HINTS[k.kind] || k.summary || '')));
    });
  };
  datasetSelect.addEventListener('change', fillKinds);
  fillKinds();
  const shots = h('input', { type: 'text', id: 'eval-shots', 'data-testid': 'eval-shots', value: forModel ? '' : '5, 10', inputmode: 'numeric', placeholder: forModel ? 'all training images' : '' });
  const seeds = h('input', { type: 'text', id: 'eval-seeds', 'data-testid': 'eval-seeds', value: '0, 1, 2', inputmode: 'numeric' });
  const steps = h('input', { type: 'number', id: 'eval-classifier-steps', 'data-testid': 'eval-classifier-steps', min: 1, step: 1, placeholder: 'server default' });
  const genSteps = h('input', { type: 'number', id: 'eval-generator-steps', 'data-testid': 'eval-generator-steps', min: 1, step: 1, placeholder: 'each kind’s default' });
  const perClass = h('input', { type: 'number', id: 'eval-per-class', 'data-testid': 'eval-per-class', min: 1, step: 1, placeholder: 'as many as the real ones' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'eval-submit', 'data-testid': 'eval-submit' }, forModel ? `Does ${forModel} help?` : 'Start evaluation');
  const error = errorBox('eval-error');
  const pickFields = h('div', { 'data-testid': 'eval-pick-fields' },
    kindsBox,
    field('Shots (images per class)', shots, 'Comma-separated few-shot sizes, e.g. 5, 10, 20: each run uses only that many real training images per class.'),
    field('Generator training steps (optional)', genSteps, 'Training steps of every generator that has them (a generator is trained for each shot and seed); empty = each kind’s default, which can take long on a CPU. A few hundred gives a quick first answer.'));
  const seedsField = field('Seeds', seeds, 'Comma-separated seeds; 3 or more for intervals that mean something. More seeds = tighter intervals, longer run.');
  const stepsField = field('Classifier steps (optional)', steps, 'Training steps of every classifier; empty = the default.');
  if (forModel) {
    add(form, field('Dataset (images the model has never seen)', datasetSelect, `Its test images must not be among ${forModel}’s training images; the job is refused if they are.`),
      field('Classifier', classifier, 'The same classifier and budget for every arm.'),
      field('Shots (optional)', shots, 'Images per class, e.g. 5, 10; empty = every training image.'),
      field(`Images from ${forModel} per class (optional)`, perClass, 'Empty = as many as the real ones.'),
      seedsField, stepsField, h('div', { class: 'actions' }, submit), error);
  } else {
    add(form, field('Dataset', datasetSelect), modeBox,
      field('Classifier', classifier, 'The same classifier and budget for every arm.'),
      pickFields, seedsField, stepsField, h('div', { class: 'actions' }, submit), error);
    const showMode = () => {
      const mode = form.querySelector('input[name=eval-mode]:checked').value;
      pickFields.hidden = mode !== 'pick';
    };
    modeBox.addEventListener('change', showMode);
    showMode();
  }
  add(view, form);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError(error, '');
    const mode = forModel ? 'model' : form.querySelector('input[name=eval-mode]:checked').value;
    const params = { dataset: datasetSelect.value, classifier: classifier.value };
    const seedList = parseIntList(seeds.value, { min: 0 });
    if (!seedList) {
      showError(error, 'Seeds must be a comma-separated list of whole numbers ≥ 0, e.g. 0, 1, 2.');
      seeds.focus();
      return;
    }
    params.seeds = seedList;
    if (steps.value.trim()) {
      const n = Number(steps.value);
      if (!Number.isInteger(n) || n < 1) {
        showError(error, 'Classifier steps must be a whole number ≥ 1.');
        steps.focus();
        return;
      }
      params.classifier_steps = n;
    }
    if (mode === 'quick') params.quick = true;
    if (mode === 'select') params.select = true;
    if (mode === 'model') {
      params.model = forModel;
      if (shots.value.trim()) {
        const shotList = parseIntList(shots.value, { min: 1 });
        if (!shotList) {
          showError(error, 'Shots must be a comma-separated list of whole numbers ≥ 1, e.g. 5, 10 (or empty).');
          shots.focus();
          return;
        }
        params.shots = shotList;
      }
      if (perClass.value.trim()) {
        const n = Number(perClass.value);
        if (!Number.isInteger(n) || n < 1) {
          showError(error, 'Images per class must be a whole number ≥ 1 (or empty).');
          perClass.focus();
          return;
        }
        params.per_class = n;
      }
    }
    if (mode === 'pick') {
      let generatorSteps = null;
      if (genSteps.value.trim()) {
        generatorSteps = Number(genSteps.value);
        if (!Number.isInteger(generatorSteps) || generatorSteps < 1) {
          showError(error, 'Generator training steps must be a whole number ≥ 1.');
          genSteps.focus();
          return;
        }
      }
      const hasSteps = (kind) => Boolean(kinds.find((k) => k.kind === kind)?.schema?.properties?.steps);
      const chosen = [...kindsBox.querySelectorAll('input:checked')].map((c) => (
        generatorSteps && hasSteps(c.value) ? { kind: c.value, config: { steps: generatorSteps } } : { kind: c.value }));
      if (!chosen.length) {
        showError(error, 'Choose at least one generator.');
        kindsBox.querySelector('input')?.focus();
        return;
      }
      const shotList = parseIntList(shots.value, { min: 1 });
      if (!shotList) {
        showError(error, 'Shots must be a comma-separated list of whole numbers ≥ 1, e.g. 5, 10.');
        shots.focus();
        return;
      }
      params.generators = chosen;
      params.shots = shotList;
    }
    submit.disabled = true;
    try {
      const job = await api.post('/api/jobs', { type: 'evaluate', params });
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (err) {
      submit.disabled = false;
      fail(error, err);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Header: the token field, the 401 message, start-up

function setupToken() {
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const status = document.getElementById('token-status');
  const clear = document.getElementById('token-clear');
  const alertBox = document.getElementById('auth-alert');
  const showStatus = () => {
    status.textContent = api.getToken() ? 'token set' : 'no token';
  };
  input.value = api.getToken();
  showStatus();
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    api.setToken(input.value.trim());
    showStatus();
    status.textContent = api.getToken() ? 'token saved' : 'token removed';
    alertBox.hidden = true;
  });
  clear.addEventListener('click', () => {
    input.value = '';
    api.setToken('');
    status.textContent = 'token removed';
  });
  // Typing a token is enough: a form submitted without pressing Save still uses it.
  input.addEventListener('change', () => {
    api.setToken(input.value.trim());
    showStatus();
  });
  api.onUnauthorized(() => {
    replace(alertBox, 'This action needs an API token (create one with ', code('genaug token create NAME'), '). Paste it into the “API token” field above.');
    alertBox.hidden = false;
    input.focus();
  });
}

async function start() {
  setupToken();
  const version = document.getElementById('server-version');
  try {
    const health = await api.getHealth();
    version.textContent = `genaug ${health.version || ''}`.trim();
  } catch (error) {
    version.textContent = `server not reachable: ${messageOf(error)}`;
  }
  window.addEventListener('hashchange', render);
  await render();
}

start();
