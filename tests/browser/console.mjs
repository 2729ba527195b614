// Drives the console (/console/) in Debian's chromium with Playwright, the way a platform
// engineer would: by the accessible names of DESIGN §14. Run by tests/api/console.rs, which
// starts the gateway in sandbox mode and checks what this script did against the API.
//
// Input (environment): CONSOLE_BASE (http://127.0.0.1:PORT), ADMIN_TOKEN, PHONE_NUMBER,
// INJECTION_SUBJECT (a group's subject that tries HTML injection), UNOWNED_SUBJECT (a group
// made outside the gateway), SCREENSHOT (where to write
// the README's picture), CHROMIUM (default /usr/bin/chromium).
// Output: on success, one JSON line on stdout `{"team", "token", "jti"}`; on failure, the
// failed step on stderr and exit code 1.

import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env('CONSOLE_BASE');
const ADMIN_TOKEN = env('ADMIN_TOKEN');
const PN = env('PHONE_NUMBER');
const INJECTION = env('INJECTION_SUBJECT');
const UNOWNED = env('UNOWNED_SUBJECT');
const SCREENSHOT = env('SCREENSHOT');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const TEAM = 'console-team';
const TOKEN_KEY = 'wagw.console.token';
const TIMEOUT = 15_000;

let currentStep = 'start';
const step = (name) => {
  currentStep = name;
  process.stderr.write(`step: ${name}\n`);
};

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function expectText(locator, pattern, what) {
  await locator.first().waitFor({ state: 'visible', timeout: TIMEOUT });
  const deadline = Date.now() + TIMEOUT;
  let text = '';
  while (Date.now() < deadline) {
    text = (await locator.first().textContent()) ?? '';
    if (pattern instanceof RegExp ? pattern.test(text) : text.includes(pattern)) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: expected ${pattern}, saw ${JSON.stringify(text)}`);
}

/** A call to the API from outside the browser, as another client would make it. */
async function apiStatus(path, token) {
  const res = await fetch(`${BASE}${path}`, { headers: { Authorization: `Bearer ${token}` } });
  return res.status;
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Nothing but the gateway on loopback: Chromium's own background connections would be
  // refused by a closed network, many at a time.
  args: [
    '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 640 } });
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);

const dialogs = [];
const pageErrors = [];
const policyViolations = [];
page.on('dialog', async (dialog) => {
  dialogs.push(`${dialog.type()}: ${dialog.message()}`);
  await dialog.dismiss();
});
page.on('pageerror', (error) => pageErrors.push(String(error)));
const auditLimits = [];
page.on('request', (request) => {
  const url = new URL(request.url());
  if (url.pathname === '/v1/admin/audit') auditLimits.push(url.searchParams.get('limit'));
});
page.on('console', (message) => {
  const text = message.text();
  if (/Content Security Policy|Trusted Type/i.test(text)) policyViolations.push(text);
});

const link = (name) => page.getByRole('link', { name, exact: true });
const button = (name) => page.getByRole('button', { name, exact: true });
const field = (name) => page.getByLabel(name, { exact: true });
const section = (id) => page.locator(`#page-${id}`);
const session = () => page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY);

let result = {};
try {
  step('the sign-in form');
  await page.goto(`${BASE}/console/`);
  await field('Admin token').waitFor();

  step('a bad token is refused with a clear message');
  await field('Admin token').fill('not-a-token');
  await button('Sign in').click();
  await expectText(page.locator('#sign-in-message'), 'refused', 'sign-in message');
  check((await session()) === null, 'a refused token was kept');

  step('sign in with the admin token');
  await field('Admin token').fill(ADMIN_TOKEN);
  await button('Sign in').click();
  await link('Teams').waitFor();
  check((await session()) === ADMIN_TOKEN, 'the token is not in session storage');
  check(!page.url().includes(ADMIN_TOKEN), 'the token is in the URL');
  check((await context.cookies()).length === 0, 'the console set a cookie');
  check((await page.evaluate(() => localStorage.length)) === 0, 'the console used localStorage');
  await expectText(section('teams').locator('tbody'), 'platform', 'teams list');

  step('a team name the API refuses: its error is shown beside the Name field');
  await button('New team').click();
  await field('Name').fill('Not A Name!');
  await button('Create team').click();
  await expectText(page.locator('#team-name-error'), 'must be 1-63 characters', 'Name field error');
  check((await field('Name').getAttribute('aria-invalid')) === 'true', 'Name is not marked invalid');
  await expectText(section('teams').locator('.problem'), /\S/, 'problem detail');

  step('create a team with a phone number');
  await field('Name').fill(TEAM);
  await page.getByRole('checkbox', { name: PN, exact: true }).check();
  await button('Create team').click();
  await expectText(section('teams').locator('.status'), `Team ${TEAM} created.`, 'creation status');
  await expectText(section('teams').locator('tbody tr', { hasText: TEAM }), PN, 'new team row');

  step('keyboard: Tab from one section link to the next, Enter opens it');
  await link('Teams').focus();
  await page.keyboard.press('Tab');
  check(await link('Phone numbers').evaluate((a) => a === document.activeElement), 'Tab did not reach Phone numbers');
  await page.keyboard.press('Enter');
  await expectText(section('phone-numbers').locator('tbody'), PN, 'phone numbers list');
  check(/^[0-9a-f]{8}$/.test((await section('phone-numbers').locator('tbody code').first().textContent()) ?? ''),
    'no token fingerprint shown');

  step('a phone number: the access token is write-only, its fingerprint shown');
  await button('Save phone number').click();
  await expectText(page.locator('#number-id-error'), 'is required', 'Phone number ID field error');
  await field('Phone number ID').fill('15550001111');
  await button('Save phone number').click();
  await expectText(page.locator('#number-token-error'), /\S/, 'Access token field error');
  const accessToken = 'EAAG-console-test-token';
  await field('Access token').fill(accessToken);
  await button('Save phone number').click();
  await expectText(section('phone-numbers').locator('.status'), 'Phone number 15550001111 added.', 'number status');
  await expectText(section('phone-numbers').locator('tbody tr', { hasText: '15550001111' }), /[0-9a-f]{8}/, 'fingerprint');
  check((await field('Access token').inputValue()) === '', 'the access token stayed in its field');
  check(!(await page.content()).includes(accessToken), 'the access token is in the page');

  step('issuing without a scope: the API error is shown beside Scopes');
  await link('Tokens').click();
  await field('Team').selectOption({ label: TEAM });
  check((await field('Lifetime').inputValue()) === '2592000', 'Lifetime has no 30-day default');
  await button('Issue token').click();
  await expectText(page.locator('#issue-scopes-error'), /\S/, 'Scopes field error');

  step('issue a token: shown once, with a Copy button');
  await page.getByRole('checkbox', { name: 'groups:read', exact: true }).check();
  await button('Issue token').click();
  const tokenBox = page.locator('#issued-token');
  await tokenBox.waitFor({ state: 'visible' });
  const token = await tokenBox.inputValue();
  check(token.split('.').length === 3, `not a JWT: ${token}`);
  const jti = (await page.locator('#issued-facts code').textContent()).trim();
  check(jti.length > 0, 'no jti shown');
  await button('Copy').click();
  await expectText(page.locator('#copy-status'), 'Copied.', 'copy status');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  check(copied === token, 'the clipboard does not hold the token');
  const before = await apiStatus(`/v1/phone-numbers/${PN}/groups`, token);
  check(before === 200, `the issued token answered ${before} before revocation`);

  step('revoke it by jti');
  await field('jti').fill(jti);
  await button('Revoke').click();
  await expectText(section('tokens').locator('.status'), `Token ${jti} revoked.`, 'revocation status');
  const after = await apiStatus(`/v1/phone-numbers/${PN}/groups`, token);
  check(after === 401, `the revoked token answered ${after}`);

  step('the token is not shown again once the section is left');
  await link('Audit log').click();
  await link('Tokens').click();
  check(!(await page.locator('#issued').isVisible()), 'the issued token is still shown');
  check((await tokenBox.inputValue()) === '', 'the issued token is still in the page');

  step('the audit log: newest first, a page at a time');
  await link('Audit log').click();
  const auditRows = section('audit').locator('tbody tr');
  await expectText(section('audit').locator('tbody'), `revoked_jti: ${jti}`, 'revocation in the audit log');
  const firstPage = await auditRows.count();
  check(firstPage === 50, `the first page has ${firstPage} rows`);
  const newest = await auditRows.first().textContent();
  await button('Older entries').click();
  await expectText(page.locator('#audit-page'), 'Page 2', 'page number');
  check((await auditRows.first().textContent()) !== newest, 'Older entries showed the same page');
  await button('Newer entries').click();
  await expectText(page.locator('#audit-page'), 'Page 1', 'page number');
  await expectText(section('audit').locator('tbody'), `revoked_jti: ${jti}`, 'back to the newest page');

  step('audit filters: a bad one names its field');
  await field('Since').fill('yesterday');
  await button('Apply filters').click();
  await expectText(page.locator('#audit-since-error'), 'RFC 3339', 'Since field error');
  await field('Since').fill('');
  await field("Caller's team").fill(TEAM);
  await button('Apply filters').click();
  await expectText(section('audit').locator('.empty'), 'No audit records', 'filtered list');
  await field("Caller's team").fill('platform');
  await button('Apply filters').click();
  await expectText(auditRows, 'platform', 'filtered by team');

  step('groups: an HTML injection in a subject is shown as text');
  await link('Groups').click();
  await field('Phone number').fill(PN);
  await button('Show groups').click();
  const injected = section('groups').getByRole('rowheader', { name: INJECTION, exact: true });
  await injected.waitFor();
  check((await injected.textContent()) === INJECTION, 'the subject is not shown verbatim');
  check((await page.locator('img').count()) === 0, 'an <img> element was created');
  await page.waitForTimeout(300);
  check(dialogs.length === 0, `a dialog opened: ${dialogs.join('; ')}`);

  step('move the group to the new team');
  await page.getByLabel(`New owner of ${INJECTION}`, { exact: true }).selectOption(TEAM);
  await button(`Move ${INJECTION}`).click();
  await expectText(section('groups').locator('.status'), `to ${TEAM}.`, 'move status');
  await expectText(section('groups').locator('tbody tr', { hasText: INJECTION }), TEAM, 'new owner');

  step('the README screenshot: the groups of a number, the injection attempt as text');
  await page.mouse.move(0, 0);
  await page.screenshot({ path: SCREENSHOT, fullPage: false });

  step('adopt the group made outside the gateway');
  await expectText(section('groups').locator('tbody tr', { hasText: UNOWNED }), 'none (not adopted)', 'unowned group');
  await page.getByLabel(`New owner of ${UNOWNED}`, { exact: true }).selectOption(TEAM);
  await button(`Adopt ${UNOWNED}`).click();
  await expectText(section('groups').locator('.status'), `adopted by ${TEAM}.`, 'adoption status');

  step('webhook endpoints: the route as it answers');
  await link('Webhook endpoints').click();
  await section('webhook-endpoints').locator('table, .empty').first().waitFor();

  step('webhook endpoints: a gateway without the route');
  await page.route('**/v1/admin/webhook-endpoints', (route) => route.fulfill({
    status: 404,
    contentType: 'application/problem+json',
    body: JSON.stringify({ type: 'about:blank', title: 'Not Found', status: 404, detail: 'no such route' }),
  }));
  await button('Refresh').click();
  await expectText(section('webhook-endpoints').locator('.empty'), 'not available in this version', '404 message');

  step('webhook endpoints: the endpoints and their health, values as text');
  await page.unroute('**/v1/admin/webhook-endpoints');
  await page.route('**/v1/admin/webhook-endpoints', (route) => route.fulfill({
    status: 200,
    contentType: 'application/json',
    body: JSON.stringify({
      endpoints: [
        { team: 'sales', id: 'config', url: 'https://hooks.example.com/wa', description: INJECTION, event_types: null, disabled: false, backlog: 0, last_success_at: '2026-11-26T10:15:00Z', created_at: '2026-11-01T08:00:00Z' },
        { team: TEAM, id: 'ep_1', url: 'https://down.example.com/hook', description: '', event_types: ['group.*'], disabled: true, backlog: 12, failing_since: '2026-11-20T08:00:00Z', disabled_reason: 'failing for 5 days', created_at: '2026-11-02T08:00:00Z' },
      ],
    }),
  }));
  await button('Refresh').click();
  const endpoints = section('webhook-endpoints').locator('tbody');
  await expectText(endpoints, 'Disabled: failing for 5 days', 'endpoint health');
  await expectText(endpoints, INJECTION, 'description as text');
  check((await page.locator('img').count()) === 0, 'an <img> element was created');
  await page.unroute('**/v1/admin/webhook-endpoints');

  step('10,000 teams: shown a page at a time, at once');
  const many = Array.from({ length: 10_000 }, (_, i) => ({
    name: `team-${String(i).padStart(5, '0')}`, phone_numbers: [PN], admin: false, source: 'api',
    updated_at: '2026-11-26T10:15:00.000Z',
  }));
  await page.route('**/v1/admin/teams', (route) => route.fulfill({
    status: 200, contentType: 'application/json', body: JSON.stringify({ teams: many }),
  }));
  const started = Date.now();
  await link('Teams').click();
  await expectText(section('teams').locator('.pager'), 'Page 1 of 200', 'teams pager');
  check((await section('teams').locator('tbody tr').count()) === 50, 'more than a page of teams in the document');
  await button('Next page').click();
  await expectText(section('teams').locator('tbody tr').first(), 'team-00050', 'second page of teams');
  const elapsed = Date.now() - started;
  check(elapsed < 5_000, `10,000 teams took ${elapsed} ms`);
  await page.unroute('**/v1/admin/teams');
  check(auditLimits.length > 0 && auditLimits.every((l) => l === '50' || l === '1'),
    `the audit log was not read a page at a time: limits ${auditLimits.join(', ')}`);

  step('sign out clears the token');
  await button('Sign out').click();
  await field('Admin token').waitFor();
  check((await session()) === null, 'sign-out left the token in session storage');

  step('the start log link: token in the fragment, moved to session storage at once');
  await page.goto(`${BASE}/console/#token=${ADMIN_TOKEN}`);
  await link('Teams').waitFor();
  check(!page.url().includes('#token') && !page.url().includes(ADMIN_TOKEN), `the token stayed in the URL: ${page.url()}`);
  check((await session()) === ADMIN_TOKEN, 'the fragment token is not in session storage');
  check(!(await page.evaluate(() => window.location.href)).includes('token'), 'location still holds the token');

  step('a 401 returns to sign-in with a clear message');
  await page.evaluate((key) => sessionStorage.setItem(key, 'expired.or.revoked'), TOKEN_KEY);
  await link('Audit log').click();
  await expectText(page.locator('#sign-in-message'), 'Sign in again', '401 message');
  check(await field('Admin token').isVisible(), 'the sign-in form is not shown');
  check((await session()) === null, 'the refused token was kept');

  step('sign in again with the keyboard alone');
  await field('Admin token').focus();
  await page.keyboard.type(ADMIN_TOKEN);
  await page.keyboard.press('Enter');
  await link('Teams').waitFor();

  step('no policy violation, no script error, no dialog');
  check(policyViolations.length === 0, `CSP violations: ${policyViolations.join(' | ')}`);
  check(pageErrors.length === 0, `script errors: ${pageErrors.join(' | ')}`);
  check(dialogs.length === 0, `dialogs: ${dialogs.join(' | ')}`);

  result = { team: TEAM, token, jti };
} catch (error) {
  process.stderr.write(`FAILED at step "${currentStep}": ${error.stack ?? error}\n`);
  process.stderr.write(`page errors: ${pageErrors.join(' | ')}\npolicy: ${policyViolations.join(' | ')}\n`);
  try {
    const failed = join(tmpdir(), 'wagw-console-failure.png');
    await page.screenshot({ path: failed, fullPage: true });
    process.stderr.write(`screenshot of the failure: ${failed}\n`);
  } catch {
    // The browser may be gone.
  }
  await browser.close();
  process.exit(1);
}
await browser.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
