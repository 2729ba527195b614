// The gateway's public /v1 API, called with the admin token kept in this tab's session
// storage (never in a URL or a cookie).

const KEY = 'wagw.console.token';

export const session = {
  token: () => sessionStorage.getItem(KEY),
  set: (token) => sessionStorage.setItem(KEY, token),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An error answer of the API, carrying its problem+json body (or one made up for it). */
export class ApiProblem extends Error {
  constructor(problem) {
    super(problem.detail ?? problem.title ?? 'request failed');
    this.problem = problem;
    this.status = problem.status ?? 0;
  }
}

/** The token was refused (401): the page goes back to sign-in. */
export class SignedOut extends Error {}

let onSignedOut = () => {};

/** What to do when the API refuses the token: called once per refusal with its message. */
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

/**
 * Calls the API; answers `{status, data}` for a 2xx, throws `ApiProblem` otherwise and
 * `SignedOut` on a 401 (after clearing the token and telling the page).
 */
export async function api(method, path, body, token = session.token()) {
  if (!token) {
    onSignedOut('Sign in with an admin token.');
    throw new SignedOut('no token');
  }
  const headers = { Authorization: `Bearer ${token}`, Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiProblem({ title: 'Network error', detail: `The gateway did not answer: ${e.message}` });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.ok) return { status: response.status, data };
  const problem = data && typeof data === 'object'
    ? { ...data, status: response.status }
    : { title: response.statusText || 'Error', status: response.status, detail: `HTTP ${response.status}` };
  if (response.status === 401) {
    session.clear();
    onSignedOut(
      `The gateway refused the admin token (${problem.detail ?? 'unauthorized'}). ` +
        'Sign in again with a valid admin token.',
    );
    throw new SignedOut(problem.detail);
  }
  throw new ApiProblem(problem);
}

/** A path segment, escaped. */
export const seg = (value) => encodeURIComponent(String(value));

/** A query string of the non-empty entries of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The claims of a JWT, for showing who is signed in (not checked: the gateway checks). */
export function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
  } catch {
    return {};
  }
}
