// Train: the wizard. 1. name, 2. generator kind, 3. images (folder, class by class, archive or a
// dataset on the server), 4. settings; submitting uploads the images (once) and starts a train job.

import * as api from '../api.js';
import { add, code, errorBox, field, h, replace, showError } from '../dom.js';
import {
  archiveAccept, archiveTypesText, classifyFolder, droppedFiles, imageAccept, imageTypesText, isArchiveName, isImageName,
} from '../files.js';
import { schemaForm } from '../forms.js';
import { onLeave } from '../lifecycle.js';
import {
  NAME_PATTERN, NAME_RULE, countsTable, emptyOnError, fail, getKind, getKinds, getLastUpload, ignoredList, left, loading,
  messageOf, pageHeading, reportView, setLastUpload, uploadReports,
} from '../shared.js';
import { tokenExplanation, tokenNote } from '../token.js';

export async function trainPage(view, { alive }) {
  add(view, pageHeading('Train a generator'),
    h('p', { class: 'lead' }, 'Upload labelled images, choose a generator kind and start training. Training runs on the server; you can leave this page and come back from ', h('a', { href: '#/jobs' }, 'Jobs'), '.'));
  const done = loading(view);
  const [kinds, datasets] = await Promise.all([getKinds(), api.get('/api/datasets').catch(emptyOnError)]).finally(done);
  if (!alive()) return;

  // Before anything is chosen or uploaded: what a token is, when this browser has none that works.
  const note = tokenNote('train-token-note');
  note.hidden = true;
  add(view, note);
  const checkToken = async () => {
    try {
      note.hidden = await api.tokenIsValid();
    } catch {
      note.hidden = true;  // the server is unreachable: the submit will say so
    }
  };
  window.addEventListener('genaug-token', checkToken);
  onLeave(() => window.removeEventListener('genaug-token', checkToken));
  checkToken();

  const form = h('form', { id: 'train-form', 'data-testid': 'train-form', novalidate: true, class: 'wizard' });
  const name = nameStep();
  const kind = kindStep(kinds);
  const images = imagesStep(kind.selected, datasets);
  const settings = settingsStep(kind.selected, alive);
  const estimate = estimateBox(kind.selected, images, settings, alive);
  kind.fieldset.addEventListener('change', () => {
    settings.loadKindForm();
    images.updatePanels();
  });
  // Anything that changes the training's size asks the server for a new estimate (debounced).
  for (const type of ['change', 'input', 'wizard-change']) form.addEventListener(type, estimate.schedule);
  window.addEventListener('genaug-token', estimate.schedule);
  onLeave(() => {
    window.removeEventListener('genaug-token', estimate.schedule);
    estimate.stop();
  });
  const buttons = submitButtons();
  const trainError = errorBox('train-error');
  const reportBox = h('div', { id: 'report-box' });

  add(form, name.section, kind.section, images.section, settings.section, estimate.element, buttons.element,
    trainError, reportBox);
  add(view, form);
  images.updatePanels();
  settings.loadKindForm();

  const wizard = { name, kind, images, settings, buttons, trainError, reportBox, tokenNote: note };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    await submitTraining(wizard);
  });
}

// ---------------------------------------------------------------------------------------------
// 1. name

function nameStep() {
  const input = h('input', { id: 'train-name', 'data-testid': 'train-name', type: 'text', required: true, maxlength: 64, autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. digits-vae' });
  const row = field('Model name', input, `The name the trained model gets in the shared registry: ${NAME_RULE}.`, { errorId: 'train-name-error' });
  const error = row.querySelector('.field-error');
  const check = () => {
    const value = input.value.trim();
    const bad = value && !NAME_PATTERN.test(value) ? `“${value}” is not a valid name: use ${NAME_RULE}.` : '';
    error.textContent = bad;
    error.hidden = !bad;
    if (bad) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
    return !bad;
  };
  input.addEventListener('input', check);
  const section = h('section', { class: 'step', 'aria-labelledby': 'step-name' }, h('h2', { id: 'step-name' }, '1. Name'), row);
  return { section, input, error, check };
}

// ---------------------------------------------------------------------------------------------
// 2. kind

function kindStep(kinds) {
  const fieldset = h('fieldset', { class: 'kind-choice', 'data-testid': 'kind-choice' }, h('legend', {}, 'Generator kind'));
  kinds.forEach((k, i) => {
    const id = `kind-${k.kind}`;
    const radio = h('input', { type: 'radio', name: 'kind', id, value: k.kind, 'data-testid': id, checked: (k.preselected || []).includes('train') || (i === 0 && !kinds.some((x) => (x.preselected || []).includes('train'))), 'aria-describedby': `${id}-help` });
    add(fieldset, h('div', { class: 'field field-check kind-option' }, radio,
      h('label', { for: id }, h('strong', {}, k.kind), k.data_kind && k.data_kind !== 'images' ? ` (${k.data_kind})` : ''),
      h('p', { class: 'help', id: `${id}-help` }, k.description || k.summary || '')));
  });
  const selected = () => {
    const checked = fieldset.querySelector('input[name=kind]:checked');
    return checked ? kinds.find((k) => k.kind === checked.value) : null;
  };
  const section = h('section', { class: 'step', 'aria-labelledby': 'step-kind' }, h('h2', { id: 'step-kind' }, '2. Generator'), fieldset);
  return { section, fieldset, selected };
}

// ---------------------------------------------------------------------------------------------
// 3. images

function imagesStep(selectedKind, datasets) {
  const sourceFieldset = sourceChoice();
  const source = () => (sourceFieldset.querySelector('input[name=source]:checked') || {}).value;
  const tableNote = h('p', { class: 'note', hidden: true, 'data-testid': 'table-kind-note' },
    'This kind learns from tables, not images: choose a table dataset already on the server (upload tables with ', code('genaug ingest data.csv'), ').');

  const selection = { folder: { images: [], ignored: [] }, archive: { file: null, ignored: [] } };
  const classRows = [];
  const summary = h('div', { class: 'selection-summary', id: 'selection-summary', 'data-testid': 'selection-summary', 'aria-live': 'polite' });
  const updateSummary = () => {
    renderSummary(summary, source(), selection, classRows);
    summary.dispatchEvent(new Event('wizard-change', { bubbles: true }));
  };
  const counts = () => selectedCounts(source(), selection, classRows);

  const setFolder = (items) => {
    selection.folder = classifyFolder(items);
    updateSummary();
  };
  const setArchive = (file) => {
    selection.archive = isArchiveName(file.name)
      ? { file, ignored: [] }
      : { file: null, ignored: [{ name: file.name, reason: `not an archive this server unpacks (${archiveTypesText()})` }] };
    updateSummary();
  };
  const folder = folderPanel(setFolder);
  const classes = classesPanel(classRows, updateSummary);
  const archive = archivePanel(setArchive);
  const dataset = datasetPanel(selectedKind, datasets);
  const panels = [folder.panel, classes, archive.panel, dataset.panel];
  const upload = uploadOptions();

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
    upload.element.hidden = chosen === 'dataset';
    dataset.fill();
    updateSummary();
  };
  sourceFieldset.addEventListener('change', updatePanels);

  // Drops anywhere on the image step: folders -> folder mode, an archive -> archive mode.
  const section = h('section', { class: 'step', 'aria-labelledby': 'step-images', 'data-testid': 'step-images' },
    h('h2', { id: 'step-images' }, '3. Images'), sourceFieldset, tableNote, ...panels, summary, upload.element);
  const dropError = errorBox('drop-error');
  add(section, dropError);
  const dropZone = folder.dropZone;
  section.addEventListener('dragover', (e) => { e.preventDefault(); dropZone.classList.add('dragging'); });
  section.addEventListener('dragleave', () => dropZone.classList.remove('dragging'));
  section.addEventListener('drop', async (e) => {
    e.preventDefault();
    dropZone.classList.remove('dragging');
    showError(dropError, '');
    const items = await droppedFiles(e);
    if (!items.length) return;
    const archives = items.filter((x) => isArchiveName(x.file.name));
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

  return {
    section, source, selection, classRows, updatePanels, counts,
    folderInput: folder.input, archiveInput: archive.input, datasetSelect: dataset.select,
    datasetName: upload.datasetName, imageSize: upload.imageSize,
  };
}

/** The radio buttons choosing where the images come from. */
function sourceChoice() {
  const sources = [
    ['folder', 'A folder with one subfolder per class'],
    ['classes', 'Class by class'],
    ['archive', 'A zip or tar archive'],
    ['dataset', 'A dataset already on the server'],
  ];
  const fieldset = h('fieldset', { class: 'source-choice', 'data-testid': 'source-choice' }, h('legend', {}, 'Where the images come from'));
  for (const [value, text] of sources) {
    const id = `source-${value}`;
    add(fieldset, h('div', { class: 'field field-check inline' },
      h('input', { type: 'radio', name: 'source', id, value, 'data-testid': id, checked: value === 'folder' }),
      h('label', { for: id }, text)));
  }
  return fieldset;
}

/** Images per class chosen so far (folder or class rows); null for an archive or a stored dataset. */
function selectedCounts(chosen, selection, classRows) {
  const counts = {};
  if (chosen === 'folder') selection.folder.images.forEach(({ cls }) => { counts[cls] = (counts[cls] || 0) + 1; });
  else if (chosen === 'classes') classRows.forEach((r) => { if (r.images.length) counts[r.index] = r.images.length; });
  else return null;
  return counts;
}

/** What is chosen so far in the current source: images per class and ignored files, or the archive. */
function renderSummary(summary, chosen, selection, classRows) {
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

// 3a. folder
function folderPanel(setFolder) {
  const input = h('input', { type: 'file', id: 'folder-input', 'data-testid': 'folder-input', webkitdirectory: true, directory: true, multiple: true });
  input.addEventListener('change', () => setFolder([...input.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }))));
  const dropZone = h('div', { class: 'drop-zone', id: 'drop-zone', 'data-testid': 'drop-zone' },
    h('p', {}, 'Drop a folder here (one subfolder per class), or an archive.'),
    field('Choose a folder', input, `Pick the folder that holds one subfolder per class; image files (${imageTypesText()}) are used, anything else is listed as ignored.`));
  const panel = h('div', { class: 'source-panel', 'data-source': 'folder', 'data-testid': 'panel-folder' }, dropZone);
  return { panel, dropZone, input };
}

// 3b. class by class
function classesPanel(classRows, onChange) {
  const rowsBox = h('div', { class: 'class-rows', id: 'class-rows', 'data-testid': 'class-rows' });
  let rowCounter = 0;
  const addClassRow = (name = '') => {
    const row = classRow(rowCounter++, name, classRows, onChange);
    classRows.push(row);
    add(rowsBox, row.el);
    return row;
  };
  addClassRow();
  addClassRow();
  return h('div', { class: 'source-panel', 'data-source': 'classes', 'data-testid': 'panel-classes', hidden: true },
    rowsBox, h('button', { type: 'button', id: 'add-class', 'data-testid': 'add-class', class: 'secondary', onclick: () => addClassRow().nameInput.focus() }, 'Add class'));
}

/** One class row: its name, its images (chosen or dropped) and a remove button. */
function classRow(index, name, classRows, onChange) {
  const row = { index, images: [], ignored: [] };
  row.nameInput = h('input', { type: 'text', id: `class-name-${index}`, 'data-testid': `class-name-${index}`, value: name, spellcheck: 'false', placeholder: 'e.g. cat' });
  row.fileInput = h('input', { type: 'file', id: `class-files-${index}`, 'data-testid': `class-files-${index}`, multiple: true, accept: imageAccept() });
  row.list = h('div', { class: 'row-files', 'aria-live': 'polite', 'data-testid': `class-summary-${index}` });
  row.nameInput.addEventListener('input', () => onChange());
  const addFiles = (files) => {
    for (const file of files) {
      if (isImageName(file.name) && !file.name.startsWith('.')) row.images.push(file);
      else row.ignored.push({ name: file.name, reason: `not an image this server reads (${imageTypesText()})` });
    }
    renderRow();
    onChange();
  };
  const renderRow = () => replace(row.list,
    h('span', {}, `${row.images.length} image${row.images.length === 1 ? '' : 's'}`),
    row.images.length ? h('button', { type: 'button', class: 'link-button', onclick: () => { row.images = []; row.ignored = []; renderRow(); onChange(); } }, 'clear') : null,
    ignoredList(row.ignored, `class-ignored-${index}`));
  row.fileInput.addEventListener('change', () => {
    addFiles([...row.fileInput.files]);
    row.fileInput.value = '';
  });
  const remove = h('button', { type: 'button', class: 'secondary', 'data-testid': `class-remove-${index}`, 'aria-label': `Remove class row ${index + 1}`, onclick: () => {
    classRows.splice(classRows.indexOf(row), 1);
    row.el.remove();
    onChange();
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
  return row;
}

// 3c. archive
function archivePanel(setArchive) {
  const input = h('input', { type: 'file', id: 'archive-input', 'data-testid': 'archive-input', accept: archiveAccept() });
  input.addEventListener('change', () => input.files[0] && setArchive(input.files[0]));
  const panel = h('div', { class: 'source-panel drop-target', 'data-source': 'archive', 'data-testid': 'panel-archive', hidden: true },
    field('Archive', input, `An archive (${archiveTypesText()}) holding one folder per class.`));
  return { panel, input };
}

// 3d. existing dataset
function datasetPanel(selectedKind, datasets) {
  const select = h('select', { id: 'train-dataset', 'data-testid': 'train-dataset' });
  const fill = () => {
    const kind = selectedKind();
    const want = kind && kind.data_kind;
    const usable = datasets.filter((d) => !want || !d.data_kind || d.data_kind === want);
    replace(select, usable.length
      ? usable.map((d) => h('option', { value: d.name }, `${d.name} (${d.n} ${d.data_kind === 'table' ? 'rows' : 'images'}, ${Object.keys(d.counts || {}).length} classes)`))
      : h('option', { value: '' }, 'no dataset on the server'));
  };
  const panel = h('div', { class: 'source-panel', 'data-source': 'dataset', 'data-testid': 'panel-dataset', hidden: true },
    field('Dataset', select, 'Datasets kept on the server from earlier uploads or `genaug ingest`.'));
  return { panel, select, fill };
}

/** Image size and dataset name of an upload (hidden for a dataset already on the server). */
function uploadOptions() {
  const datasetName = h('input', { type: 'text', id: 'dataset-name', 'data-testid': 'dataset-name', spellcheck: 'false', placeholder: 'same as the model name' });
  const imageSize = h('input', { type: 'number', id: 'image-size', 'data-testid': 'image-size', value: '64', min: 8, max: 1024, step: 1 });
  const element = h('div', { class: 'upload-options' },
    field('Image size (pixels)', imageSize, 'Images are resized to this square size. Smaller trains faster.'),
    field('Dataset name (optional)', datasetName, `Name of the uploaded dataset on the server; ${NAME_RULE}.`),
  );
  return { element, datasetName, imageSize };
}

// ---------------------------------------------------------------------------------------------
// 4. settings: augmentation + the advanced form generated from the kind's schema

function settingsStep(selectedKind, alive) {
  const augmentToggle = h('input', { type: 'checkbox', id: 'augment-toggle', 'data-testid': 'augment-toggle' });
  const augmentCopies = h('input', { type: 'number', id: 'augment-copies', 'data-testid': 'augment-copies', value: '4', min: 1, max: 50, step: 1, disabled: true });
  augmentToggle.addEventListener('change', () => { augmentCopies.disabled = !augmentToggle.checked; });
  const keepData = h('input', { type: 'checkbox', id: 'keep-data', 'data-testid': 'keep-data' });
  const presetBox = h('fieldset', { class: 'preset-choice', 'data-testid': 'preset-choice' }, h('legend', {}, 'How good, how long'));
  const advanced = h('details', { class: 'advanced', id: 'advanced', 'data-testid': 'advanced' }, h('summary', { id: 'advanced-summary' }, 'Advanced settings'));
  const advancedBody = h('div', { id: 'advanced-body', 'data-testid': 'advanced-body' });
  const resetButton = h('button', { type: 'button', class: 'secondary', id: 'advanced-reset', 'data-testid': 'advanced-reset' }, 'Reset to the preset');
  add(advanced, h('p', { class: 'help' }, 'Start from a preset above; the settings you change here are sent on top of it.'), advancedBody, resetButton);
  let configForm = null;
  let presets = [];
  let kindToken = 0;
  let detail = null;
  const chosenPreset = () => {
    const checked = presetBox.querySelector('input[name=preset]:checked');
    return checked ? presets.find((p) => p.name === checked.value) || null : null;
  };
  // The advanced form shows the kind's defaults with the chosen preset on top.
  const buildForm = () => {
    if (!detail) return;
    const preset = chosenPreset();
    configForm = schemaForm(detail.schema, { ...(detail.defaults || {}), ...(preset ? preset.config : {}) }, { idPrefix: 'cfg' });
    replace(advancedBody, configForm.element);
    presetBox.dispatchEvent(new Event('wizard-change', { bubbles: true }));
  };
  const renderPresets = () => {
    replace(presetBox, h('legend', {}, 'How good, how long'));
    presetBox.hidden = !presets.length;
    presets.forEach((p, i) => {
      const id = `preset-${p.name}`;
      add(presetBox, h('div', { class: 'field field-check' },
        h('input', { type: 'radio', name: 'preset', id, value: p.name, 'data-testid': id, checked: i === 0, 'aria-describedby': `${id}-help` }),
        h('label', { for: id }, p.label), h('p', { class: 'help', id: `${id}-help` }, p.help)));
    });
  };
  presetBox.addEventListener('change', buildForm);
  const loadKindForm = async () => {
    const kind = selectedKind();
    if (!kind) return;
    const token = ++kindToken;
    replace(advancedBody, h('p', { class: 'muted' }, 'Loading settings…'));
    try {
      const loaded = kind.schema ? kind : await getKind(kind.kind);
      if (token !== kindToken || !alive()) return;
      detail = loaded;
      presets = loaded.presets || [];
      renderPresets();
      buildForm();
    } catch (error) {
      if (token !== kindToken) return;
      configForm = null;
      replace(advancedBody, h('div', { class: 'alert', role: 'alert' }, `Settings of ${kind.kind} could not load: ${messageOf(error)}`));
    }
  };
  resetButton.addEventListener('click', () => buildForm());
  /** The config to send: the preset's fields, then what was changed in the advanced form (may throw). */
  const config = () => ({ ...(chosenPreset() ? chosenPreset().config : {}), ...(configForm ? configForm.values() : {}) });
  const section = h('section', { class: 'step', 'aria-labelledby': 'step-settings' }, h('h2', { id: 'step-settings' }, '4. Settings'),
    presetBox,
    field('Add classic-augmented copies before training', augmentToggle, 'Flipped, cropped and recoloured copies of every image: more to learn from when you have few images.'),
    field('Copies per image', augmentCopies),
    field('Keep the uploaded images on the server', keepData, 'To train other kinds on them or evaluate later; otherwise they are deleted after training.'),
    advanced);
  return { section, augmentToggle, augmentCopies, keepData, advanced, loadKindForm, config, chosenPreset, configForm: () => configForm };
}

// ---------------------------------------------------------------------------------------------
// The estimated training time, measured by the server for the chosen kind, preset and images

const ASSUMED = { classes: 5, perClass: 100 };  // for an archive, whose content is known after the upload

function estimateBox(selectedKind, images, settings, alive) {
  const text = h('p', { id: 'train-estimate', 'data-testid': 'train-estimate', 'aria-live': 'polite' });
  const element = h('section', { class: 'panel estimate', 'aria-labelledby': 'estimate-title', 'data-testid': 'estimate-panel' },
    h('h2', { id: 'estimate-title' }, 'How long it takes'), text);
  let timer = null;
  let asked = 0;
  const request = () => {
    const kind = selectedKind();
    if (!kind || kind.data_kind !== 'images') return null;
    let config;
    try {
      config = settings.config();
    } catch {
      return null;  // the advanced form has an error: it says so itself
    }
    const body = { config };
    const chosen = images.source();
    let note = '';
    if (chosen === 'dataset') {
      if (!images.datasetSelect.value) return null;
      body.dataset = images.datasetSelect.value;
    } else {
      body.image_size = Number(images.imageSize.value) || 64;
      const counts = images.counts();
      if (counts && !Object.keys(counts).length) return { waiting: 'Choose your images to see how long training takes on this server.' };
      body.class_count = counts ? Object.keys(counts).length : ASSUMED.classes;
      body.images_per_class = counts ? Math.max(...Object.values(counts)) : ASSUMED.perClass;
      if (!counts) note = ` (for ${ASSUMED.classes} classes of ${ASSUMED.perClass} colour images; the archive’s own content may differ)`;
    }
    return { kind: kind.kind, body, note };
  };
  const run = async () => {
    const ask = request();
    const mine = ++asked;
    if (!ask) {
      element.hidden = true;
      return;
    }
    element.hidden = false;
    if (ask.waiting) {
      text.textContent = ask.waiting;
      return;
    }
    if (!api.getToken()) {
      text.textContent = 'Save your API token (see above) to see how long this takes on this server.';
      return;
    }
    text.textContent = 'Measuring this server’s speed for these settings (a few seconds)…';
    try {
      const answer = await api.post(`/api/kinds/${encodeURIComponent(ask.kind)}/estimate`, ask.body);
      if (mine !== asked || !alive()) return;
      const preset = settings.chosenPreset();
      text.replaceChildren(h('strong', {}, `Estimated training time: ${answer.text}`),
        `${preset ? ` with “${preset.label}”` : ''}${ask.note}, measured on this server just now. `,
        h('span', { class: 'muted' }, 'It grows with the steps and the image size; other jobs running at the same time slow it down.'));
    } catch (error) {
      if (mine !== asked || !alive()) return left(error);
      if (error.status === 401) {
        error.shown = true;
        text.textContent = 'Save a valid API token (see above) to see how long this takes on this server.';
      } else if (error.status === 429) {
        // The server measures one estimate at a time: ask again shortly.
        text.textContent = 'The server is measuring another estimate; asking again in a few seconds…';
        clearTimeout(timer);
        timer = setTimeout(run, 5000);
      } else text.textContent = `No estimate: ${messageOf(error)}`;
    }
  };
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(run, 400);
  };
  return { element, schedule, stop: () => clearTimeout(timer) };
}

// ---------------------------------------------------------------------------------------------
// 5. submit: upload (once for the same files), then start the train job

function submitButtons() {
  const submit = h('button', { type: 'submit', id: 'train-submit', 'data-testid': 'train-submit', class: 'primary' }, 'Upload and start training');
  const uploadProgress = h('progress', { id: 'upload-progress', 'data-testid': 'upload-progress', max: 100, value: 0, 'aria-labelledby': 'upload-progress-label' });
  const uploadText = h('span', { id: 'upload-progress-text', 'data-testid': 'upload-progress-text', 'aria-live': 'polite' });
  const uploadBox = h('div', { class: 'upload-box', hidden: true, 'data-testid': 'upload-box' },
    h('span', { id: 'upload-progress-label' }, 'Upload'), uploadProgress, uploadText);
  const element = h('div', { class: 'actions' }, submit, uploadBox);
  return { element, submit, uploadBox, uploadProgress, uploadText };
}

async function submitTraining({ name: nameStep, kind: kindStep, images, settings, buttons, trainError, reportBox, tokenNote: note }) {
  showError(trainError, '');
  const name = nameStep.input.value.trim();
  const kind = kindStep.selected();
  const problem = (message, focus) => {
    showError(trainError, message);
    if (focus) focus.focus();
  };
  if (!name) return problem('Please give the model a name.', nameStep.input);
  if (!nameStep.check()) return problem(nameStep.error.textContent, nameStep.input);
  if (!kind) return problem('Please choose a generator kind.', kindStep.fieldset.querySelector('input'));
  let config;
  try {
    config = settings.config();
  } catch (error) {
    settings.advanced.open = true;
    problem(error.message, error.focus);
    return;
  }
  // The token first: nothing is uploaded for a request the server would refuse.
  try {
    if (!(await api.tokenIsValid())) {
      note.hidden = false;
      showError(trainError, [h('strong', {}, 'Nothing was uploaded: this needs an API token. '), ...tokenExplanation()]);
      document.getElementById('token-input')?.focus();
      return;
    }
  } catch (error) {
    fail(trainError, error);
    return;
  }
  const chosen = images.source();
  let dataset = null;
  let uploaded = null;
  if (chosen === 'dataset') {
    dataset = images.datasetSelect.value;
    if (!dataset) return problem('There is no dataset on the server yet: upload images instead.', images.datasetSelect);
  } else {
    const upload = uploadForm(chosen, images, name, problem);
    if (!upload) return;
    const done = await uploadOnce(upload, buttons, trainError);
    if (!done) return;
    ({ dataset, uploaded } = done);
    replace(reportBox, reportView(uploaded));
  }
  buttons.submit.disabled = true;
  const params = { dataset, kind: kind.kind, name, config, augment: settings.augmentToggle.checked ? Number(settings.augmentCopies.value) || 0 : 0 };
  if (settings.keepData.checked || chosen === 'dataset') params.keep_data = true;
  try {
    const job = await api.post('/api/jobs', { type: 'train', params });
    if (uploaded) uploadReports.set(job.id, uploaded);
    // Without keep_data the server deletes the dataset after this training: never reuse it.
    if (!params.keep_data) setLastUpload(null);
    location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
  } catch (error) {
    buttons.submit.disabled = false;
    const configForm = settings.configForm();
    if (configForm && configForm.showServerError(messageOf(error))) settings.advanced.open = true;
    fail(trainError, error);
  }
}

/**
 * The upload's form data and a signature of its files, or undefined (after `problem`) when the
 * dataset name, the image size or the chosen files are not right.
 */
function uploadForm(chosen, images, name, problem) {
  const { datasetName, imageSize } = images;
  const dsName = datasetName.value.trim() || name;
  if (!NAME_PATTERN.test(dsName)) return problem(`Dataset name “${dsName}” is not valid: use ${NAME_RULE}.`, datasetName);
  const size = Number(imageSize.value);
  if (!Number.isInteger(size) || size < 8 || size > 1024) return problem('Image size must be a whole number from 8 to 1024.', imageSize);
  const files = filesToUpload(chosen, images, problem);
  if (!files) return undefined;
  const formData = new FormData();
  formData.append('name', dsName);
  formData.append('image_size', String(size));
  for (const [file, uploadName] of files) formData.append('files', file, uploadName);
  // Resubmitting the same files (say after fixing a setting or the model name) reuses the upload;
  // only a dataset name typed by the user makes it a different dataset.
  const signatureParts = files.map(([file, uploadName]) => `${uploadName}:${file.size}:${file.lastModified}`);
  const signature = [datasetName.value.trim(), size, ...signatureParts.sort()].join('|');
  return { formData, signature };
}

/** The chosen files as [file, name in the upload] pairs, or undefined (after `problem`). */
function filesToUpload(chosen, { selection, classRows, folderInput, archiveInput }, problem) {
  if (chosen === 'folder') {
    if (!selection.folder.images.length) return problem('Choose a folder with one subfolder of images per class.', folderInput);
    return selection.folder.images.map(({ cls, file }) => [file, `${cls}/${file.name}`]);
  }
  if (chosen === 'classes') {
    const files = [];
    const names = new Set();
    for (const row of classRows) {
      if (!row.images.length) continue;
      const cls = row.nameInput.value.trim();
      if (!cls) return problem(`Class ${row.index + 1} has images but no name.`, row.nameInput);
      if (/[\\/]/.test(cls) || cls === '.' || cls === '..') return problem(`Class name “${cls}” may not contain “/” or “\\”.`, row.nameInput);
      if (names.has(cls)) return problem(`Two rows are called “${cls}”: class names must differ.`, row.nameInput);
      names.add(cls);
      for (const file of row.images) files.push([file, `${cls}/${file.name}`]);
    }
    if (!names.size) return problem('Add images to at least one class.', classRows[0] && classRows[0].fileInput);
    return files;
  }
  const file = selection.archive.file;
  if (!file) return problem(`Choose an archive (${archiveTypesText()}).`, archiveInput);
  return [[file, file.name]];
}

/**
 * Upload the dataset with a progress bar, unless the same files were just uploaded: `{ dataset,
 * uploaded }` (its name and the server's report), or null when the upload failed (shown in `trainError`).
 */
async function uploadOnce({ formData, signature }, { submit, uploadBox, uploadProgress, uploadText }, trainError) {
  submit.disabled = true;
  const lastUpload = getLastUpload();
  if (lastUpload && lastUpload.signature === signature) return { dataset: lastUpload.name, uploaded: lastUpload.dataset };
  uploadBox.hidden = false;
  uploadProgress.value = 0;
  uploadText.textContent = '0%';
  let uploaded;
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
    return null;
  }
  uploadProgress.value = 100;
  uploadText.textContent = '100% — done';
  const dataset = uploaded.name;
  setLastUpload({ signature, name: dataset, dataset: uploaded });
  return { dataset, uploaded };
}
