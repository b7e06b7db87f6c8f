// genaug web UI: a hash-routed single page app over the REST API (docs/service-api.md).
// Plain ES modules, no framework, nothing fetched from outside this server.
// This module is the router and the start-up; each page lives in pages/, shared helpers in shared.js.

import * as api from './api.js';
import { add, code, h, replace } from './dom.js';
import { leavePage } from './lifecycle.js';
import { evaluatePage } from './pages/evaluate.js';
import { generatePage } from './pages/generate.js';
import { homePage } from './pages/home.js';
import { jobPage } from './pages/job.js';
import { jobsPage } from './pages/jobs.js';
import { modelsPage } from './pages/models.js';
import { trainPage } from './pages/train.js';
import { loadLimits, messageOf, pageHeading } from './shared.js';
import { setupToken, tokenNote } from './token.js';

const main = document.getElementById('main');

let renderId = 0;
let firstRender = true;

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
  leavePage();
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
      if (!alive()) return;
      view.querySelectorAll('[data-testid=loading]').forEach((line) => line.remove());
      if (error && error.status === 401) {
        // Reading needs a token on this server: explain it here, once (not also in the header).
        error.shown = true;
        add(view, tokenNote('page-token-note'));
      } else {
        add(view, h('div', { class: 'alert', role: 'alert', 'data-testid': 'page-error' }, `This page could not load: ${messageOf(error)}`));
      }
    }
  }
  if (!firstRender && alive()) {
    const heading = view.querySelector('h1');
    if (heading) heading.focus({ preventScroll: false });
  }
  firstRender = false;
}

async function start() {
  setupToken();
  const version = document.getElementById('server-version');
  try {
    const [health] = await Promise.all([api.getHealth(), loadLimits()]);
    version.textContent = `genaug ${health.version || ''}`.trim();
  } catch (error) {
    version.textContent = `server not reachable: ${messageOf(error)}`;
  }
  window.addEventListener('hashchange', render);
  await render();
}

start();
