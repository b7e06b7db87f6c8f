// The gallery of a generate job's images: one class at a time, a page of images at a time, with
// the quality filter's verdict under each image when the model filtered its samples.

import * as api from './api.js';
import { add, errorBox, h, replace, showError } from './dom.js';
import { fail, loadImage } from './shared.js';

const PAGE = 48;

const VERDICT_TEXT = {
  accepted: 'passed the filter',
  forced: 'kept although the filter doubted it (it ran out of tries; sets made before the filter stage)',
};

/** The filters' scores of one image, as a tooltip. */
function scoreText(filter) {
  const parts = [];
  if (filter.p_real !== undefined && filter.p_real !== null) parts.push(`generative classifier: ${filter.p_real} (how real it looks, 0 to 1)`);
  const scores = filter.scores || {};
  if (scores.confidence) parts.push(`confidence: ${scores.confidence.p_label} (the classifier's probability for its class)`);
  if (scores['near-copy']) parts.push(`near-copy: ${scores['near-copy'].ratio} (nearest / second-nearest training image; low = a copy)`);
  if (scores['generative-classifier']) parts.push(`generative classifier: ${scores['generative-classifier'].p_real} (how real it looks, 0 to 1)`);
  return parts.join('; ');
}

/** A gallery element over `GET galleryPath` (the job's `result.gallery`); loads its first page. */
export function galleryView(galleryPath) {
  const tabs = h('div', { class: 'gallery-tabs', role: 'group', 'aria-label': 'Class', 'data-testid': 'gallery-classes' });
  const grid = h('div', { class: 'gallery-grid', 'data-testid': 'gallery-grid', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading images…'));
  const status = h('p', { class: 'muted gallery-status', 'data-testid': 'gallery-status' });
  const previous = h('button', { type: 'button', class: 'secondary', 'data-testid': 'gallery-previous' }, 'Previous');
  const next = h('button', { type: 'button', class: 'secondary', 'data-testid': 'gallery-next' }, 'Next');
  const error = errorBox('gallery-error');
  const element = h('section', { class: 'gallery', 'data-testid': 'gallery', 'aria-labelledby': 'gallery-title' },
    h('h3', { id: 'gallery-title' }, 'The generated images'), tabs, grid,
    h('div', { class: 'gallery-pager' }, previous, status, next), error);
  let current = { label: null, offset: 0 };

  const show = async (label, offset) => {
    const query = new URLSearchParams({ offset: String(offset), limit: String(PAGE) });
    if (label !== null) query.set('label', label);
    try {
      const page = await api.get(`${galleryPath}?${query}`);
      showError(error, '');
      current = { label: page.label, offset: page.offset };
      renderTabs(page);
      renderGrid(page);
      const last = Math.min(page.offset + page.items.length, page.total);
      status.textContent = page.total ? `${page.label}: images ${page.offset + 1}–${last} of ${page.total}` : 'No images.';
      previous.disabled = page.offset === 0;
      next.disabled = last >= page.total;
    } catch (err) {
      replace(grid);
      fail(error, err);
    }
  };

  const renderTabs = (page) => {
    replace(tabs, page.classes.map((c) => h('button', {
      type: 'button', class: c.label === page.label ? 'tab selected' : 'tab', 'aria-pressed': String(c.label === page.label),
      'data-testid': 'gallery-class', onclick: () => show(c.label, 0),
    }, `${c.label} (${c.count})`)));
  };

  const renderGrid = (page) => {
    replace(grid, page.items.map((item) => {
      const img = h('img', { alt: `Generated image ${item.index + 1} of class ${item.label}`, loading: 'lazy', 'data-testid': 'gallery-image' });
      loadImage(img, item.url);
      const verdict = item.filter ? h('span', { class: `verdict verdict-${item.filter.verdict}`, 'data-testid': 'gallery-verdict',
        title: scoreText(item.filter) },
      VERDICT_TEXT[item.filter.verdict] || item.filter.verdict) : null;
      return h('figure', { class: 'gallery-item' }, img, h('figcaption', {}, `#${item.index + 1}`, verdict ? [' · ', verdict] : null));
    }));
    if (!page.items.length) add(grid, h('p', { class: 'muted' }, 'No images in this class.'));
  };

  previous.addEventListener('click', () => show(current.label, Math.max(0, current.offset - PAGE)));
  next.addEventListener('click', () => show(current.label, current.offset + PAGE));
  show(null, 0);
  return element;
}
