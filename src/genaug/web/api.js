// The REST client: the token header on every request, errors as ApiError with the server's `detail`.

const TOKEN_KEY = 'genaug.token';

export const AUTH_MESSAGE = 'This needs an API token: paste yours into “API token” at the top of the page.';

/** An API error: `status` (0 when the server could not be reached) and the server's `detail` text. */
export class ApiError extends Error {
  constructor(status, detail, body = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.body = body;
  }
}

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return memoryToken || '';
  }
}

let memoryToken = null;
export function setToken(token) {
  memoryToken = token || '';
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the token lives for this page only */
  }
  window.dispatchEvent(new CustomEvent('genaug-token'));
}

/** Whether the saved token is one the server knows (`GET /api/me`); false without one. */
export async function tokenIsValid() {
  if (!getToken()) return false;
  try {
    const me = await request('GET', '/api/me');
    return Boolean(me && me.authenticated);
  } catch (error) {
    if (error.status === 401) {
      error.shown = true;
      return false;
    }
    throw error;
  }
}

function authHeaders() {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

const unauthorizedListeners = [];

/** Call `listener(error)` whenever a request answers 401. */
export function onUnauthorized(listener) {
  unauthorizedListeners.push(listener);
}

/** The server's policy (`/api/health`), fetched once. */
let health = null;
export async function getHealth(refresh = false) {
  if (!health || refresh) health = await request('GET', '/api/health');
  return health;
}

/** Whether GETs need the token: then images, downloads and event streams go through fetch. */
export function readsNeedToken() {
  return Boolean(health && health.read_requires_token);
}

/** The human-readable text of an error body (`detail` is a string by contract; be lenient anyway). */
function detailOf(status, body, fallback) {
  if (body && typeof body.detail === 'string') return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((e) => `${(e.loc || []).slice(1).join('.') || 'request'}: ${e.msg}`).join('; ');
  }
  if (status === 401) return AUTH_MESSAGE;
  if (status === 413) return 'The upload is too large for this server.';
  return fallback || `Request failed (HTTP ${status}).`;
}

function raise(status, body, fallback) {
  const error = new ApiError(status, detailOf(status, body, fallback), body);
  if (status === 401) {
    error.detail = AUTH_MESSAGE;
    error.message = error.detail;
    // After the caller had its chance to show the explanation in place (it then marks the error
    // as shown); otherwise the page-wide note explains it. Never both.
    setTimeout(() => {
      if (!error.shown) unauthorizedListeners.forEach((listener) => listener(error));
    }, 0);
  }
  throw error;
}

/** JSON request: `body` is sent as JSON (FormData as multipart). Resolves to the parsed JSON (null for 204). */
export async function request(method, path, body) {
  const init = { method, headers: { Accept: 'application/json', ...authHeaders() } };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, `Cannot reach the genaug server (${error.message}).`);
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!response.ok) raise(response.status, parsed, text && !parsed ? text.slice(0, 300) : null);
  return parsed;
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body);
export const del = (path) => request('DELETE', path);

/**
 * Multipart upload with progress (fetch has no upload progress): `onProgress(loaded, total)`.
 * Resolves to the parsed JSON answer.
 */
export function upload(path, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.setRequestHeader('Accept', 'application/json');
    const token = getToken();
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.upload.onprogress = (event) => {
      if (onProgress) onProgress(event.loaded, event.lengthComputable ? event.total : 0);
    };
    xhr.onerror = () => reject(new ApiError(0, 'The upload failed: the server could not be reached or closed the connection.'));
    xhr.onabort = () => reject(new ApiError(0, 'The upload was cancelled.'));
    xhr.onload = () => {
      let parsed = null;
      try {
        parsed = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        parsed = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(parsed);
      else {
        try {
          raise(xhr.status, parsed, xhr.responseText ? xhr.responseText.slice(0, 300) : null);
        } catch (error) {
          reject(error);
        }
      }
    };
    xhr.send(formData);
  });
}

/** Fetch a file with the token header and return an object URL (for images and downloads when reads need a token). */
export async function blobUrl(path) {
  const response = await fetch(path, { headers: authHeaders() });
  if (!response.ok) {
    let parsed = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    raise(response.status, parsed);
  }
  return URL.createObjectURL(await response.blob());
}
