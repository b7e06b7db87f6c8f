// The header's API token field, and the one plain explanation of what a token is and where it
// comes from (shown on the train page before anything is uploaded, and wherever an action is refused).

import * as api from './api.js';
import { code, h, replace } from './dom.js';

/** What a token is and where one comes from, in plain words (a paragraph's children). */
export function tokenExplanation() {
  return [
    'Starting, deleting or cancelling anything on this server needs an API token: a personal key, like a password. ',
    'Ask the person who runs this genaug server for one (they create it with ', code('genaug token create YOUR-NAME'),
    ', or an admin can make one for you). Paste it into “API token” at the top of the page and press Save: ',
    'this browser remembers it.',
  ];
}

/** A note box with the explanation; `data-testid` names it for tests. */
export function tokenNote(testId = 'token-note') {
  return h('div', { class: 'note token-note', role: 'note', 'data-testid': testId },
    h('strong', {}, 'You need an API token. '), ...tokenExplanation());
}

export function setupToken() {
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const status = document.getElementById('token-status');
  const clear = document.getElementById('token-clear');
  const alertBox = document.getElementById('auth-alert');
  const showStatus = () => {
    status.textContent = api.getToken() ? 'token set' : 'no token';
  };
  input.value = api.getToken();
  showStatus();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    api.setToken(input.value.trim());
    alertBox.hidden = true;
    if (!api.getToken()) {
      status.textContent = 'token removed';
      return;
    }
    status.textContent = 'checking…';
    try {
      status.textContent = (await api.tokenIsValid()) ? 'token saved' : 'this token is not valid here';
    } catch {
      status.textContent = 'token saved';
    }
  });
  clear.addEventListener('click', () => {
    input.value = '';
    api.setToken('');
    status.textContent = 'token removed';
  });
  // Typing a token is enough: a form submitted without pressing Save still uses it.
  input.addEventListener('change', () => {
    api.setToken(input.value.trim());
    showStatus();
  });
  api.onUnauthorized(() => {
    replace(alertBox, h('strong', {}, 'This needs an API token. '), ...tokenExplanation());
    alertBox.hidden = false;
    input.focus();
  });
}
