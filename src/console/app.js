// The console's shell: sign-in, sign-out and the sections. The admin token lives in this
// tab's session storage only; the sign-in link of the sandbox's start log carries it in the
// URL's fragment, which is moved there and out of the address bar before anything else.

import { api, ApiProblem, SignedOut, session, whenSignedOut, claims } from './api.js';
import { replace, clearMessages } from './dom.js';
import { teams, phoneNumbers, tokens, auditLog, groupsPage, webhookEndpoints } from './pages.js';

takeTokenFromFragment();

/** Whether the fragment held a token (now in session storage, gone from the address bar). */
function takeTokenFromFragment() {
  const match = /^#token=([^&]+)/.exec(window.location.hash);
  if (!match) return false;
  history.replaceState(null, '', window.location.pathname + window.location.search);
  session.set(decodeURIComponent(match[1]));
  return true;
}

const SECTIONS = {
  teams,
  'phone-numbers': phoneNumbers,
  tokens,
  audit: auditLog,
  groups: groupsPage,
  'webhook-endpoints': webhookEndpoints,
};

const signIn = document.getElementById('sign-in');
const signInForm = document.getElementById('sign-in-form');
const signInMessage = document.getElementById('sign-in-message');
const tokenField = document.getElementById('admin-token');
const app = document.getElementById('app');
const who = document.getElementById('who');
const signOutButton = document.getElementById('sign-out');
let current = null;

for (const [name, page] of Object.entries(SECTIONS)) page.init(sectionOf(name));

function sectionOf(name) {
  return document.getElementById(`page-${name}`);
}

/** Back to the sign-in form, with `message` (why) when there is one. */
function showSignIn(message) {
  leaveSection();
  app.hidden = true;
  signOutButton.hidden = true;
  replace(who);
  signIn.hidden = false;
  replace(signInMessage, message ?? '');
  tokenField.value = '';
  tokenField.focus();
}

whenSignedOut((message) => showSignIn(message));

function showApp() {
  const { sub, exp } = claims(session.token());
  replace(who, sub ? `Signed in as ${sub}` : 'Signed in',
    exp ? ` · token expires ${new Date(exp * 1000).toLocaleString()}` : '');
  signIn.hidden = true;
  app.hidden = false;
  signOutButton.hidden = false;
  route(true);
}

/** Checks a token against the API before keeping it: any admin token may read the audit log. */
async function tryToken(token) {
  try {
    await api('GET', '/v1/admin/audit?limit=1', undefined, token);
    return null;
  } catch (e) {
    if (e instanceof SignedOut) return 'The gateway refused this token: it is not valid (or expired, or revoked).';
    if (e instanceof ApiProblem && e.status === 403) {
      return `This token may not use the admin API: ${e.problem.detail ?? 'forbidden'}`;
    }
    return `Cannot check the token: ${e.message}`;
  }
}

signInForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const token = tokenField.value.trim();
  if (!token) {
    replace(signInMessage, 'Paste an admin token first.');
    tokenField.focus();
    return;
  }
  const refusal = await tryToken(token);
  if (refusal) {
    replace(signInMessage, refusal);
    tokenField.focus();
    return;
  }
  session.set(token);
  tokenField.value = '';
  showApp();
});

signOutButton.addEventListener('click', () => {
  session.clear();
  showSignIn('Signed out. The token is forgotten by this tab.');
});

function leaveSection() {
  if (current) {
    SECTIONS[current].hide?.(sectionOf(current));
    sectionOf(current).hidden = true;
    current = null;
  }
}

/** Shows the section named by the fragment (Teams when none). */
function route(initial = false) {
  if (app.hidden) return;
  const name = window.location.hash.slice(1);
  const target = SECTIONS[name] ? name : 'teams';
  leaveSection();
  current = target;
  const section = sectionOf(target);
  section.hidden = false;
  for (const link of document.querySelectorAll('nav a')) {
    if (link.getAttribute('href') === `#${target}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  clearMessages(section);
  if (!initial) section.querySelector('h2').focus();
  SECTIONS[target].show(section);
}

// The sign-in link opened in a tab already showing the console only changes the fragment.
window.addEventListener('hashchange', () => {
  if (takeTokenFromFragment()) {
    replace(signInMessage);
    showApp();
  } else {
    route();
  }
});

if (session.token()) {
  showApp();
} else {
  showSignIn();
}
