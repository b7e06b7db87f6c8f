// One job's live page: progress, losses, samples, log and, once finished, its result.

import * as api from '../api.js';
import { NOT_A_LOSS, drawLossChart, seriesFromHistory } from '../chart.js';
import { add, errorBox, formatDate, formatNumber, formatSeconds, h, replace, showError } from '../dom.js';
import { onLeave } from '../lifecycle.js';
import { FINISHED, describeJob, fail, left, loadImage, pageHeading, percentOf, reportView, statusBadge, uploadReports, withBust } from '../shared.js';
import { renderResult } from './results.js';

export async function jobPage(view, { alive }, jobId) {
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
    // Handlers, not listeners: a refresh every few seconds must not pile them up.
    loadImage(grid, withBust(url), { onMissing: () => { gridNote.hidden = false; }, onLoaded: () => { gridNote.hidden = true; } });
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
    const rows = factRows(job);
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
      renderResult(result, job, path);
      if (job.status === 'failed' || job.status === 'cancelled') add(result, retryView(job));
    }
  };

  cancel.addEventListener('click', async () => {
    showError(cancelError, '');
    // Cancelling cannot be undone: say what is lost, and do nothing unless the user agrees.
    if (!window.confirm(cancelQuestion(job))) return;
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
      if (!alive()) return left(error);
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
    if (!alive()) return left(error);
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

/** The question before cancelling: what stops and what is lost, in one plain sentence. */
export function cancelQuestion(job) {
  const type = job && job.type;
  if (type === 'train') return 'Cancel this job? Training stops; the model is not kept.';
  if (type === 'generate') return 'Cancel this job? Image generation stops; no images are kept.';
  if (type === 'evaluate') return 'Cancel this job? The evaluation stops; no report is written.';
  return 'Cancel this job? It stops and its result is not kept.';
}

/**
 * A failed or cancelled job's "Retry": a new job of the same type with the same settings, then
 * its page. A refusal (the dataset was deleted, the model name is taken now…) is shown in place.
 */
function retryView(job) {
  const error = errorBox('job-retry-error');
  const button = h('button', { type: 'button', class: 'primary', id: 'job-retry', 'data-testid': 'job-retry', 'aria-describedby': 'job-retry-help' }, 'Retry');
  button.addEventListener('click', async () => {
    showError(error, '');
    button.disabled = true;
    try {
      const created = await api.post('/api/jobs', { type: job.type, params: job.params || {} });
      location.hash = `#/jobs/${encodeURIComponent(created.id)}`;
    } catch (err) {
      button.disabled = false;
      fail(error, err);
    }
  });
  return h('div', { class: 'retry', 'data-testid': 'job-retry-box' },
    h('div', { class: 'actions' }, button,
      h('span', { class: 'muted small', id: 'job-retry-help' }, 'Starts a new job with the same settings.')),
    error);
}

/** The facts beside a job's progress bar: [label, value] rows (stage, step, time left, losses…). */
function factRows(job) {
  const p = job.progress || {};
  const reported = Object.entries(p.losses || {});
  const lossText = reported.filter(([k]) => !NOT_A_LOSS.test(k)).map(([k, v]) => `${k} ${formatNumber(v)}`).join(', ') || '–';
  const otherText = reported.filter(([k]) => NOT_A_LOSS.test(k)).map(([k, v]) => (/_per_s$/.test(k) ? `${formatNumber(v)} ${k.replace(/_per_s$/, '').replace(/_/g, ' ')}/s` : `${k.replace(/_/g, ' ')} ${formatNumber(v)}`)).join(', ');
  const rows = [
    ['Stage', p.stage || '–'],
    ['Step', p.total ? `${p.step ?? 0} / ${p.total}` : (p.step ?? '–')],
    ['Time left', job.status === 'running' ? formatSeconds(p.eta_seconds) : '–'],
    // What the job reported last (an evaluation's cell, a fit, "done"): on a failed job, where it stopped.
    ...(p.message ? [['Latest', p.message]] : []),
    ['Current losses', lossText],
    ...(otherText ? [['Speed', otherText]] : []),
    ['Created', formatDate(job.created_at)],
    ['Finished', formatDate(job.finished_at) || '–'],
  ];
  if (job.attempts > 1) rows.push(['Attempts', String(job.attempts)]);
  return rows;
}
