// The quality card of a set of generated images (a model's, at the end of its training, or a
// generate job's quality.json): the numbers, each with its one plain line, and the warnings.

import { h } from './dom.js';

/** A <details> block for a quality card (null when there is none; its reason when it was skipped). */
export function qualityCard(card, testid, heading) {
  if (!card) return null;
  if (card.error || card.skipped) return h('p', { class: 'muted', 'data-testid': testid }, card.error || `No quality card: ${card.skipped}`);
  const overall = card.overall || {};
  const explain = card.explanations || {};
  const pct = (v) => `${(v * 100).toFixed(1)}%`;
  const rows = [];
  if (overall.kid && typeof overall.kid.mean === 'number') rows.push(['KID', `${(overall.kid.mean * 1000).toFixed(2)} × 10⁻³`, explain.kid]);
  for (const key of ['precision', 'recall', 'coverage']) {
    if (typeof overall[key] === 'number') rows.push([key[0].toUpperCase() + key.slice(1), overall[key].toFixed(2), explain[key]]);
  }
  if (overall.inception_score && typeof overall.inception_score.mean === 'number') rows.push(['Inception Score', `${overall.inception_score.mean.toFixed(2)} ± ${overall.inception_score.std.toFixed(2)}`, explain.inception_score]);
  const share = overall.near_copy_share;
  if (share) rows.push(['Near-copies', `${pct(share.value)} (95%: ${pct(share.low)}–${pct(share.high)})`, explain.near_copy_share]);
  const title = heading || `Quality of its images (${card.samples_per_class} per class against ${card.reference})`;
  return h('details', { class: 'quality-card', 'data-testid': testid },
    h('summary', {}, title),
    h('dl', { class: 'facts' }, rows.map(([name, value, line]) => [
      h('dt', {}, name), h('dd', {}, value, line ? h('span', { class: 'help' }, ` — ${line}`) : null)])),
    (card.warnings || []).length ? h('ul', { class: 'muted quality-warnings' }, card.warnings.map((w) => h('li', {}, w))) : null);
}
