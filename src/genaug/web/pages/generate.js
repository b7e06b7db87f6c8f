// Generate: make images with a trained model.

import * as api from '../api.js';
import { add, code, errorBox, field, h, replace, showError } from '../dom.js';
import { asSchema, schemaForm } from '../forms.js';
import { fail, getKind, loading, messageOf, pageHeading } from '../shared.js';

export async function generatePage(view, { alive }, preselected) {
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
  const seedInput = h('input', { type: 'number', id: 'gen-seed', 'data-testid': 'gen-seed', value: '', step: 1, min: 0, placeholder: 'random' });
  balance.addEventListener('change', () => { nInput.disabled = balance.checked; });
  const balanceNote = h('p', { class: 'help', 'data-testid': 'gen-balance-note', hidden: true });
  const modelInfo = h('div', { class: 'model-info', 'data-testid': 'gen-model-info', 'aria-live': 'polite' });
  const optionsBox = h('div', { id: 'gen-options', 'data-testid': 'gen-options' });
  const confidence = h('input', { type: 'checkbox', id: 'gen-filter-confidence', 'data-testid': 'gen-filter-confidence' });
  const confidenceLevel = h('input', { type: 'number', id: 'gen-confidence', 'data-testid': 'gen-confidence', value: '0.6', min: 0, max: 1, step: 0.05 });
  const nearCopy = h('input', { type: 'checkbox', id: 'gen-filter-near-copy', 'data-testid': 'gen-filter-near-copy' });
  const noiseFilter = h('input', { type: 'checkbox', id: 'gen-filter-generative-classifier', 'data-testid': 'gen-filter-generative-classifier' });
  const filterNote = h('p', { class: 'help', 'data-testid': 'gen-filter-note' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'gen-submit', 'data-testid': 'gen-submit' }, 'Generate');
  const error = errorBox('gen-error');
  add(form,
    field('Model', modelSelect),
    modelInfo,
    field('Images per class', nInput, 'How many new images to make for every class.'),
    field('Balance classes instead', balance, 'Top up every class to the size of the largest class in the training data.'),
    balanceNote,
    field('Seed (optional)', seedInput, 'Same model, settings and seed = the same images. Empty: a new random seed each time (the job page shows which).'),
    h('fieldset', { class: 'options' }, h('legend', {}, 'Sampling options'), optionsBox),
    h('fieldset', { class: 'options', 'data-testid': 'gen-filters' }, h('legend', {}, 'Filters (optional)'),
      field('Keep only images a classifier of your images recognises', confidence,
        'A classifier trained on the model’s training images must name each image’s class; rejected images are redrawn.'),
      field('…with at least this confidence (0 to 1)', confidenceLevel),
      field('Reject copies of training images', nearCopy,
        'Drops images that are (nearly) one of the training images — for models you share.'),
      field('Reject what the model’s own noise detector flags', noiseFilter,
        'A small network trained with the model to tell your data from noise (VAEs trained with the generative classifier; on by default for them).'),
      filterNote),
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
    // Balancing a model's balanced training data would ask for nothing: say so instead of offering it.
    const counts = Object.values((model.data_summary || {}).counts || {});
    const balanced = counts.length > 0 && counts.every((n) => n === counts[0]);
    balance.disabled = balanced;
    if (balanced) {
      balance.checked = false;
      nInput.disabled = false;
    }
    balanceNote.hidden = !balanced;
    // The filters compare with the training images' features the model kept (image models with a quality card).
    for (const input of [confidence, confidenceLevel, nearCopy]) input.disabled = !model.filter_reference;
    if (!model.filter_reference) { confidence.checked = false; nearCopy.checked = false; }
    // The generative classifier exists only when the model trained it; it is the model's default filter.
    noiseFilter.disabled = !model.generative_classifier;
    noiseFilter.checked = Boolean(model.generative_classifier);
    filterNote.textContent = model.filter_reference ? 'Every generated set also gets a quality card (quality.json in the zip).'
      : `${model.name} kept no features of its training images (trained with the quality card off, on a table, or before genaug kept them), so the classifier and copy filters cannot run here${model.generative_classifier ? '; its own noise detector can' : ''}.`;
    balanceNote.textContent = balanced ? `Every class of ${model.name}’s training data has ${counts[0]} images already: there is nothing to balance.` : '';
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
      if (!Number.isInteger(seed) || seed < 0) {
        showError(error, 'The seed must be a whole number ≥ 0 (or empty for a random one).');
        seedInput.focus();
        return;
      }
      params.seed = seed;
    } else {
      params.seed = Math.floor(Math.random() * 2 ** 31);  // "random": a new one, recorded in the job's params
    }
    const filters = [];
    if (confidence.checked) {
      const level = Number(confidenceLevel.value);
      if (!(level >= 0 && level <= 1) || confidenceLevel.value.trim() === '') {
        showError(error, 'The confidence must be a number from 0 to 1.');
        confidenceLevel.focus();
        return;
      }
      filters.push(`confidence:${level}`);
    }
    if (nearCopy.checked) filters.push('near-copy');
    if (noiseFilter.checked) filters.push('generative-classifier');
    params.filters = filters;  // explicit: an unticked box means no filter, even the model's own
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
