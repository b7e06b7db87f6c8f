// Jobs: the list of jobs, refreshed while some are unfinished.

import * as api from '../api.js';
import { add, errorBox, field, formatDate, h, replace, showError } from '../dom.js';
import { onLeave } from '../lifecycle.js';
import { FINISHED, describeJob, fail, left, pageHeading, percentOf, statusBadge } from '../shared.js';

export async function jobsPage(view, { alive }) {
  const typeSelect = h('select', { id: 'jobs-type', 'data-testid': 'jobs-type' },
    ['', 'train', 'generate', 'evaluate'].map((t) => h('option', { value: t }, t || 'all types')));
  const statusSelect = h('select', { id: 'jobs-status', 'data-testid': 'jobs-status' },
    ['', 'queued', 'running', 'succeeded', 'failed', 'cancelled'].map((s) => h('option', { value: s }, s || 'all statuses')));
  const tableBox = h('div', { id: 'jobs-table', 'data-testid': 'jobs-table', 'aria-live': 'polite' }, h('p', { class: 'muted', 'data-testid': 'loading-jobs' }, 'Loading…'));
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
      // In a scroll box (the page itself never scrolls sideways); on a phone each row becomes a
      // small card of "label: value" lines (style.css, `table.jobs`), so there is nothing to scroll.
      const cell = (label, ...content) => h('td', { 'data-label': label }, ...content);
      replace(tableBox, jobs.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'jobs' },
        h('caption', { class: 'visually-hidden' }, 'Jobs, newest first'),
        h('thead', {}, h('tr', {}, ['Job', 'Type', 'What', 'Status', 'Progress', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, jobs.map((job) => h('tr', { 'data-testid': 'job-row', 'data-job-id': job.id },
          cell('Job', h('a', { href: `#/jobs/${encodeURIComponent(job.id)}` }, String(job.id).slice(0, 8))),
          cell('Type', job.type),
          cell('What', describeJob(job)),
          cell('Status', statusBadge(job.status)),
          cell('Progress', `${percentOf(job)}%`),
          cell('Created', formatDate(job.created_at))))))) : h('p', {}, 'No jobs yet. ', h('a', { href: '#/train' }, 'Train a model'), ' to start one.'));
      if (jobs.some((j) => !FINISHED.has(j.status))) timer = setTimeout(load, 3000);
    } catch (err) {
      if (!alive()) return left(err);
      if (tableBox.querySelector('[data-testid=loading-jobs]')) replace(tableBox);  // no endless "Loading…"
      fail(error, err);
    }
  };
  typeSelect.addEventListener('change', load);
  statusSelect.addEventListener('change', load);
  await load();
}
