// Models: a card per trained model in the shared registry.

import * as api from '../api.js';
import { add, errorBox, formatDate, formatNumber, formatSeconds, h, replace, showError } from '../dom.js';
import { qualityCard } from '../quality.js';
import { fail, left, loadImage, pageHeading, statusBadge } from '../shared.js';

export async function modelsPage(view, { alive }) {
  const box = h('div', { class: 'cards', id: 'model-cards', 'data-testid': 'model-cards' }, h('p', { class: 'muted' }, 'Loading…'));
  const error = errorBox('models-error');
  add(view, pageHeading('Models'), h('p', { class: 'lead' }, 'Trained generators in the shared registry. Anyone can generate images from them, without images of their own.'), error, box);
  let models;
  try {
    models = (await api.get('/api/models')) || [];
  } catch (err) {
    if (!alive()) return left(err);
    replace(box);  // no "Loading…" left behind
    fail(error, err);
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
    qualityCard(metrics.quality, 'model-quality'),
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

