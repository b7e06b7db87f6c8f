// The result of a finished job, shown on its job page: a model, a zip of images or an evaluation.

import * as api from '../api.js';
import { add, errorBox, h, replace } from '../dom.js';
import { qualityCard } from '../quality.js';
import { galleryView } from '../gallery.js';
import { renderMarkdown } from '../markdown.js';
import { countsTable, fail, loadImage } from '../shared.js';

/** Fill the (hidden) `result` section with what the finished `job` (at API `path`) produced. */
export function renderResult(result, job, path) {
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
  if (job.type === 'train') replace(result, title, trainResult(job, r));
  else if (job.type === 'generate') replace(result, title, generateResult(job, r, path));
  else if (job.type === 'evaluate') replace(result, title, evaluateResult(r, path));
  else replace(result, title, h('pre', {}, JSON.stringify(r, null, 2)));
}

/** A trained model: links to generate with it and to all models. */
function trainResult(job, r) {
  const model = r.model || (job.params || {}).name;
  return [
    h('p', {}, 'Model ', h('strong', {}, model), ' is trained and in the registry.'),
    h('p', { class: 'actions' },
      h('a', { class: 'button primary', href: `#/generate/${encodeURIComponent(model)}`, id: 'generate-from-model', 'data-testid': 'generate-from-model' }, `Generate images with ${model}`),
      h('a', { class: 'button secondary', href: '#/models' }, 'See all models')),
  ];
}

/** Generated images: counts per class and the zip's download link (fetched with the token when reads need one). */
function generateResult(job, r, path) {
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
  const f = r.filters;
  const filterLine = f ? h('p', { 'data-testid': 'generated-filters' },
    `Filters ${f.filters.join(' + ')}: ${f.drawn} drawn, ${f.rejected} rejected (${(f.rejection_rate * 100).toFixed(0)}%: `
    + `${Object.entries(f.rejected_by).map(([name, n]) => `${name} ${n}`).join(', ')}), ${f.accepted} kept.`,
    Object.keys(f.short || {}).length ? h('strong', {}, ` Short: ${Object.entries(f.short).map(([c, n]) => `${c} ${n}`).join(', ')} — the filters rejected too many; lower a threshold.`) : null) : null;
  return [r.counts ? countsTable(r.counts, 'Generated images per class', 'generated-counts') : null,
    filterLine,
    qualityCard(r.quality, 'generated-quality', r.quality && r.quality.overall ? `Quality of these images (against ${r.quality.reference})` : null),
    h('p', { class: 'actions' }, link), downloadError,
    r.gallery ? galleryView(r.gallery) : null];
}

/** An evaluation: the recommendation first, warnings, the results table, plots, the full report and files. */
function evaluateResult(r, path) {
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
  return [
    h('h3', {}, 'Recommendation'),
    recommendation.length ? h('ul', { id: 'recommendation', 'data-testid': 'recommendation', class: 'verdict' }, recommendation.map((line) => h('li', {}, line))) : h('p', { class: 'muted' }, 'No recommendation.'),
    warnings.length ? [h('h3', {}, 'Warnings'), h('ul', { class: 'warnings', 'data-testid': 'eval-warnings' }, warnings.map((line) => h('li', {}, line)))] : null,
    Array.isArray(r.rows) && r.rows.length ? h('div', { class: 'table-wrap' }, resultsTable(r.rows, r.classifier)) : (r.table ? h('div', { 'data-testid': 'verdict-table', id: 'verdict-table' }, renderMarkdown(r.table, 4)) : null),
    (r.explanations || []).length ? h('details', { 'data-testid': 'how-to-read', open: true }, h('summary', {}, 'How to read these numbers'), h('ul', {}, r.explanations.map((line) => h('li', {}, line)))) : null,
    figures.length ? [h('h3', {}, 'Plots'), figureBox] : null,
    r.report ? h('details', { 'data-testid': 'report' }, h('summary', {}, 'Full report'), renderMarkdown(r.report, 4)) : null,
    others.length ? h('p', { 'data-testid': 'report-files' }, 'Files: ', others.map((f, i) => [i ? ', ' : '',
      h('a', { href: `${path}/files/${encodeURIComponent(f)}`, download: f }, f)])) : null,
  ];
}

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
