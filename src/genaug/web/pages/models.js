// Models: a card per trained model in the shared registry.

import * as api from '../api.js';
import { add, errorBox, formatDate, formatNumber, formatSeconds, h, replace, showError } from '../dom.js';
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
    qualityCard(metrics.quality),
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

/** The model's quality card (made when its training finished): each number with its one plain line. */
function qualityCard(card) {
  if (!card) return null;
  if (card.error) return h('p', { class: 'muted', 'data-testid': 'model-quality' }, card.error);
  const overall = card.overall || {};
  const explain = card.explanations || {};
  const pct = (v) => `${(v * 100).toFixed(1)}%`;
  const rows = [];
  if (overall.kid) rows.push(['KID', `${(overall.kid.mean * 1000).toFixed(2)} × 10⁻³`, explain.kid]);
  for (const key of ['precision', 'recall', 'coverage']) {
    if (overall[key] !== undefined) rows.push([key[0].toUpperCase() + key.slice(1), overall[key].toFixed(2), explain[key]]);
  }
  const share = overall.near_copy_share;
  if (share) rows.push(['Near-copies', `${pct(share.value)} (95%: ${pct(share.low)}–${pct(share.high)})`, explain.near_copy_share]);
  return h('details', { class: 'quality-card', 'data-testid': 'model-quality' },
    h('summary', {}, `Quality of its images (${card.samples_per_class} per class against ${card.reference})`),
    h('dl', { class: 'facts' }, rows.map(([name, value, line]) => [
      h('dt', {}, name), h('dd', {}, value, line ? h('span', { class: 'help' }, ` — ${line}`) : null)])),
    (card.warnings || []).length ? h('p', { class: 'muted' }, `${card.warnings.length} warning(s): ${card.warnings[0]}`) : null);
}
