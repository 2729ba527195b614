// The console's sections. Each has `init(section)`, run once to wire its forms, and
// `show(section)`, run each time the section is opened. Everything shown from the API goes
// through dom.js, as text.

import { api, ApiProblem, SignedOut, seg, query } from './api.js';
import { el, replace, table, time, pagedRows, clearMessages, status, showProblem } from './dom.js';

/** The scopes a token may carry (README, "Authentication"; a test compares with the gateway's). */
export const SCOPES = ['groups:read', 'groups:write', 'groups:delete', 'groups:invite', 'groups:message', 'webhooks', 'admin'];

/** Audit records per page: the API pages, so at most this many rows are ever in the page. */
const AUDIT_PAGE = 50;
/** Groups per page of Meta's listing. */
const GROUPS_PAGE = 25;

const $ = (section, selector) => section.querySelector(selector);

/** Runs `work`; an API problem is shown in `section` (fields of `form` beside them). */
async function guarded(section, work, form) {
  try {
    return await work();
  } catch (e) {
    if (e instanceof SignedOut) return undefined;
    if (e instanceof ApiProblem) {
      showProblem(section, e.problem, form ?? section);
      return undefined;
    }
    showProblem(section, { title: 'Error', detail: String(e.message ?? e) });
    return undefined;
  }
}

/** A form whose submission runs `handler` (never a navigation: the CSP forbids it too). */
function onSubmit(form, handler) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    handler();
  });
}

const yesNo = (b) => (b ? 'yes' : 'no');
const list = (items) => (items && items.length ? items.join(', ') : '—');
const sourceLabel = (s) => (s === 'config' ? 'configuration (read-only)' : s === 'api' ? 'admin API' : s);

async function teamsAndNumbers() {
  const [teams, numbers] = await Promise.all([
    api('GET', '/v1/admin/teams'),
    api('GET', '/v1/admin/phone-numbers'),
  ]);
  return { teams: teams.data.teams, numbers: numbers.data.phone_numbers };
}

// ---- Teams -----------------------------------------------------------------------------

let knownTeams = [];

export const teams = {
  init(section) {
    const form = $(section, '#team-form');
    $(section, '#new-team').addEventListener('click', async () => {
      clearMessages(section);
      form.reset();
      form.hidden = false;
      await guarded(section, async () => {
        const numbers = (await api('GET', '/v1/admin/phone-numbers')).data.phone_numbers;
        replace(
          $(section, '#team-numbers'),
          numbers.length
            ? numbers.map((n) => el('label', { class: 'check' },
              el('input', { type: 'checkbox', value: n.phone_number_id }), ` ${n.phone_number_id}`))
            : el('p', { class: 'hint' }, 'No phone number yet: add one under Phone numbers.'),
        );
      });
      $(section, '#team-name').focus();
    });
    $(form, '.cancel').addEventListener('click', () => {
      form.hidden = true;
      clearMessages(section);
      $(section, '#new-team').focus();
    });
    onSubmit(form, () => guarded(section, async () => {
      clearMessages(section);
      const name = $(form, '#team-name').value.trim();
      if (!name) {
        showProblem(section, { title: 'Missing field', detail: 'Give the team a name.', errors: [{ field: 'team', message: 'is required' }] }, form);
        return;
      }
      if (knownTeams.some((t) => t.name === name)) {
        showProblem(section, { title: 'Team exists', detail: `A team named ${name} exists already.`, errors: [{ field: 'team', message: 'is taken' }] }, form);
        return;
      }
      const phoneNumbers = [...form.querySelectorAll('#team-numbers input:checked')].map((i) => i.value);
      await api('PUT', `/v1/admin/teams/${seg(name)}`, {
        phone_numbers: phoneNumbers,
        admin: $(form, '#team-admin').checked,
      });
      form.hidden = true;
      await teams.show(section);
      status(section, `Team ${name} created.`);
    }, form));
  },

  async show(section) {
    await guarded(section, async () => {
      const { data } = await api('GET', '/v1/admin/teams');
      knownTeams = data.teams;
      pagedRows($(section, '#teams-list'), 'Teams', ['Name', 'Phone numbers', 'Admin', 'Source', 'Updated', ''],
        data.teams, (t) => el('tr', {},
          el('th', { scope: 'row' }, t.name),
          el('td', {}, list(t.phone_numbers)),
          el('td', {}, yesNo(t.admin)),
          el('td', {}, sourceLabel(t.source)),
          el('td', {}, time(t.updated_at)),
          el('td', {}, t.source === 'api' ? deleteButton(section, `Delete team ${t.name}`,
            `/v1/admin/teams/${seg(t.name)}`, `Team ${t.name} deleted.`, () => teams.show(section)) : ''),
        ));
    });
  },
};

/** A button that deletes after a confirmation, then shows `done` and reloads. */
function deleteButton(section, label, path, done, reload) {
  const button = el('button', { type: 'button', class: 'danger', 'aria-label': label }, 'Delete');
  button.addEventListener('click', () => guarded(section, async () => {
    if (!window.confirm(`${label}?`)) return;
    clearMessages(section);
    await api('DELETE', path);
    await reload();
    status(section, done);
  }));
  return button;
}

// ---- Phone numbers ---------------------------------------------------------------------

export const phoneNumbers = {
  init(section) {
    const form = $(section, '#number-form');
    onSubmit(form, () => guarded(section, async () => {
      clearMessages(section);
      const id = $(form, '#number-id').value.trim();
      if (!id) {
        showProblem(section, { title: 'Missing field', detail: 'Give the phone number ID.', errors: [{ field: 'phone_number_id', message: 'is required' }] }, form);
        return;
      }
      const body = { access_token: $(form, '#number-token').value };
      const max = $(form, '#number-max-groups').value.trim();
      if (max) body.max_groups = Number(max);
      const { status: code } = await api('PUT', `/v1/admin/phone-numbers/${seg(id)}`, body);
      form.reset();
      await phoneNumbers.show(section);
      status(section, `Phone number ${id} ${code === 201 ? 'added' : 'replaced'}.`);
    }, form));
  },

  async show(section) {
    await guarded(section, async () => {
      const { data } = await api('GET', '/v1/admin/phone-numbers');
      pagedRows($(section, '#numbers-list'), 'Phone numbers',
        ['Phone number ID', 'Token fingerprint', 'Teams', 'Max groups', 'Rate limit', 'Source', 'Updated', ''],
        data.phone_numbers, (n) => el('tr', {},
          el('th', { scope: 'row' }, n.phone_number_id),
          el('td', {}, el('code', {}, n.token_fingerprint)),
          el('td', {}, list(n.teams)),
          el('td', {}, n.max_groups ?? '—'),
          el('td', {}, n.rate_limit ? `${n.rate_limit.per_second}/s, burst ${n.rate_limit.burst}` : '—'),
          el('td', {}, sourceLabel(n.source)),
          el('td', {}, time(n.updated_at)),
          el('td', {}, n.source === 'api' ? deleteButton(section, `Delete phone number ${n.phone_number_id}`,
            `/v1/admin/phone-numbers/${seg(n.phone_number_id)}`, `Phone number ${n.phone_number_id} deleted.`,
            () => phoneNumbers.show(section)) : ''),
        ));
    });
  },
};

// ---- Tokens ----------------------------------------------------------------------------

export const tokens = {
  init(section) {
    replace($(section, '#issue-scopes'), SCOPES.map((s) => el('label', { class: 'check' },
      el('input', { type: 'checkbox', value: s }), ` ${s}`)));
    const form = $(section, '#issue-form');
    const issued = $(section, '#issued');
    onSubmit(form, () => guarded(section, async () => {
      clearMessages(section);
      forgetIssued(section);
      const body = {
        team: $(form, '#issue-team').value,
        scopes: [...form.querySelectorAll('#issue-scopes input:checked')].map((i) => i.value),
        ttl_seconds: Number($(form, '#issue-lifetime').value),
      };
      const numbers = $(form, '#issue-numbers').value.split(/[\s,]+/).filter(Boolean);
      if (numbers.length) body.phone_numbers = numbers;
      const { data } = await api('POST', '/v1/admin/tokens', body);
      $(issued, '#issued-token').value = data.token;
      replace($(issued, '#issued-facts'),
        el('dt', {}, 'Team'), el('dd', {}, body.team),
        el('dt', {}, 'jti'), el('dd', {}, el('code', {}, data.jti)),
        el('dt', {}, 'Expires'), el('dd', {}, time(data.expires_at)));
      issued.hidden = false;
      status(section, `Token issued for ${body.team} (jti ${data.jti}).`);
      $(issued, '#issued-token').focus();
    }, form));
    $(section, '#copy-token').addEventListener('click', async () => {
      const field = $(issued, '#issued-token');
      let copied = false;
      try {
        await navigator.clipboard.writeText(field.value);
        copied = true;
      } catch {
        field.select();
        copied = document.execCommand('copy');
      }
      replace($(issued, '#copy-status'), copied ? 'Copied.' : 'Select the token and copy it by hand.');
    });
    const revoke = $(section, '#revoke-form');
    onSubmit(revoke, () => guarded(section, async () => {
      clearMessages(section);
      const jti = $(revoke, '#revoke-jti').value.trim();
      if (!jti) {
        showProblem(section, { title: 'Missing field', detail: 'Give the jti of the token to revoke.', errors: [{ field: 'jti', message: 'is required' }] }, revoke);
        return;
      }
      await api('DELETE', `/v1/admin/tokens/${seg(jti)}`);
      revoke.reset();
      status(section, `Token ${jti} revoked.`);
    }, revoke));
  },

  async show(section) {
    await guarded(section, async () => {
      const select = $(section, '#issue-team');
      const chosen = select.value;
      const { data } = await api('GET', '/v1/admin/teams');
      replace(select, data.teams.map((t) => el('option', { value: t.name, selected: t.name === chosen }, t.name)));
    });
  },

  hide(section) {
    forgetIssued(section);
  },
};

/** The issued token is shown once: gone when another is issued or the section is left. */
function forgetIssued(section) {
  const issued = $(section, '#issued');
  issued.hidden = true;
  $(issued, '#issued-token').value = '';
  replace($(issued, '#copy-status'));
  replace($(issued, '#issued-facts'));
}

// ---- Audit log -------------------------------------------------------------------------

const audit = {
  filters: {},
  /** Cursors of the pages shown so far: `cursors[i]` opens page i (undefined: the newest). */
  cursors: [undefined],
  page: 0,
  next: undefined,
};

export const auditLog = {
  init(section) {
    const form = $(section, '#audit-form');
    onSubmit(form, () => {
      audit.filters = {
        team: $(form, '#audit-team').value.trim(),
        group_id: $(form, '#audit-group').value.trim(),
        since: $(form, '#audit-since').value.trim(),
      };
      audit.cursors = [undefined];
      audit.page = 0;
      loadAudit(section);
    });
    $(section, '#audit-older').addEventListener('click', () => {
      audit.cursors[audit.page + 1] = audit.next;
      audit.page += 1;
      loadAudit(section);
    });
    $(section, '#audit-newer').addEventListener('click', () => {
      audit.page = Math.max(0, audit.page - 1);
      loadAudit(section);
    });
  },

  show(section) {
    return loadAudit(section);
  },
};

async function loadAudit(section) {
  clearMessages(section);
  await guarded(section, async () => {
    const { data } = await api('GET', `/v1/admin/audit${query({
      ...audit.filters, limit: AUDIT_PAGE, after: audit.cursors[audit.page],
    })}`);
    audit.next = data.paging?.after;
    const rows = data.records.map((r) => el('tr', {},
      el('td', {}, time(r.occurred_at)),
      el('td', {}, r.team ?? '—'),
      el('td', {}, `${r.method} `, el('code', {}, r.route)),
      el('td', {}, String(r.status)),
      el('td', {}, r.phone_number_id ?? ''),
      el('td', {}, r.group_id ? el('code', {}, r.group_id) : ''),
      el('td', {}, upstream(r)),
      el('td', {}, details(r.details)),
      el('td', {}, el('code', {}, r.request_id)),
    ));
    replace($(section, '#audit-list'), data.records.length
      ? table('Audit log, newest first',
        ['When', 'Team', 'Call', 'Status', 'Phone number', 'Group', 'Meta', 'Details', 'Request id'], rows)
      : el('p', { class: 'empty' }, 'No audit records match.'));
    $(section, '#audit-newer').disabled = audit.page === 0;
    $(section, '#audit-older').disabled = !audit.next;
    replace($(section, '#audit-page'), `Page ${audit.page + 1}`);
  }, $(section, '#audit-form'));
}

function upstream(r) {
  const parts = [];
  if (r.upstream_status) parts.push(`HTTP ${r.upstream_status}`);
  if (r.upstream_code) parts.push(`code ${r.upstream_code}`);
  if (r.fbtrace_id) parts.push(`trace ${r.fbtrace_id}`);
  return parts.join(', ');
}

function details(d) {
  if (!d || typeof d !== 'object') return '';
  return Object.entries(d).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(' ') : typeof v === 'object' ? JSON.stringify(v) : v}`).join('; ');
}

// ---- Groups ----------------------------------------------------------------------------

const groups = { number: '', cursor: {}, paging: {}, teams: null };

export const groupsPage = {
  init(section) {
    const form = $(section, '#groups-form');
    onSubmit(form, () => {
      groups.number = $(form, '#groups-number').value.trim();
      groups.cursor = {};
      loadGroups(section);
    });
    $(section, '#groups-next').addEventListener('click', () => {
      groups.cursor = { after: groups.paging.after };
      loadGroups(section);
    });
    $(section, '#groups-previous').addEventListener('click', () => {
      groups.cursor = { before: groups.paging.before };
      loadGroups(section);
    });
  },

  async show(section) {
    // The known numbers as suggestions; a token narrowed to numbers may not list them.
    try {
      const { teams: t, numbers } = await teamsAndNumbers();
      groups.teams = t;
      replace($(section, '#groups-known-numbers'), numbers.map((n) => el('option', { value: n.phone_number_id })));
    } catch (e) {
      if (e instanceof SignedOut) return;
      groups.teams = null;
    }
  },
};

async function loadGroups(section) {
  clearMessages(section);
  const form = $(section, '#groups-form');
  if (!groups.number) {
    showProblem(section, { title: 'Missing field', detail: 'Give a phone number ID.', errors: [{ field: 'phone_number_id', message: 'is required' }] }, form);
    return;
  }
  await guarded(section, async () => {
    const { data } = await api('GET', `/v1/admin/phone-numbers/${seg(groups.number)}/groups${query({
      limit: GROUPS_PAGE, ...groups.cursor,
    })}`);
    groups.paging = data.paging ?? {};
    const rows = data.groups.map((g) => groupRow(section, g));
    replace($(section, '#groups-list'), data.groups.length
      ? table(`Groups of ${groups.number}`, ['Subject', 'Group ID', 'Created', 'Owner', 'Adopt or move'], rows)
      : el('p', { class: 'empty' }, `Meta lists no active group for ${groups.number}.`));
    $(section, '#groups-next').disabled = !groups.paging.after;
    $(section, '#groups-previous').disabled = !groups.paging.before;
  }, form);
}

function groupRow(section, g) {
  const owners = (groups.teams ?? [])
    .filter((t) => t.phone_numbers.includes(groups.number) && t.name !== g.owner)
    .map((t) => t.name);
  const label = `New owner of ${g.subject ?? g.id}`;
  const id = `owner-${g.id}`;
  const choice = groups.teams
    ? el('select', { id, 'aria-label': label }, owners.map((name) => el('option', { value: name }, name)))
    : el('input', { id, type: 'text', 'aria-label': label });
  const verb = g.owner ? 'Move' : 'Adopt';
  const button = el('button', { type: 'button', 'aria-label': `${verb} ${g.subject ?? g.id}` }, verb);
  if (groups.teams && owners.length === 0) button.disabled = true;
  button.addEventListener('click', () => guarded(section, async () => {
    clearMessages(section);
    const team = choice.value.trim();
    const { data } = await api('PUT', `/v1/admin/groups/${seg(g.id)}/owner`, {
      team, phone_number_id: groups.number,
    });
    await loadGroups(section);
    status(section, data.previous_owner
      ? `Group ${data.subject ?? g.id} moved from ${data.previous_owner} to ${data.owner}.`
      : `Group ${data.subject ?? g.id} adopted by ${data.owner}.`);
  }));
  return el('tr', {},
    el('th', { scope: 'row' }, g.subject ?? '(no subject)'),
    el('td', {}, el('code', {}, g.id)),
    el('td', {}, time(g.created_at)),
    el('td', {}, g.owner ?? 'none (not adopted)'),
    el('td', { class: 'actions' }, choice, ' ', button),
  );
}

// ---- Webhook endpoints -----------------------------------------------------------------

export const webhookEndpoints = {
  init(section) {
    $(section, '#endpoints-refresh').addEventListener('click', () => webhookEndpoints.show(section));
  },

  async show(section) {
    clearMessages(section);
    const holder = $(section, '#endpoints-list');
    try {
      const { data } = await api('GET', '/v1/admin/webhook-endpoints');
      pagedRows(holder, 'Webhook endpoints',
        ['Team', 'Endpoint', 'URL', 'Event types', 'State', 'Backlog', 'Last success', 'Failing since', 'Created'],
        data.endpoints ?? [], endpointRow);
    } catch (e) {
      if (e instanceof SignedOut) return;
      if (e instanceof ApiProblem && e.status === 404) {
        replace(holder, el('p', { class: 'empty' },
          'Webhook endpoints are not available in this version of the gateway.'));
        return;
      }
      replace(holder);
      showProblem(section, e.problem ?? { title: 'Error', detail: String(e.message ?? e) });
    }
  },
};

function endpointRow(ep) {
  // `disabled` (one endpoint among a team's several), or `enabled` (the one configured
  // endpoint of older gateways).
  const disabled = ep.disabled ?? ep.enabled === false;
  let state = disabled ? 'Disabled' : ep.failing_since ? 'Failing' : 'Healthy';
  if (disabled && ep.disabled_reason) state += `: ${ep.disabled_reason}`;
  if (!disabled && ep.last_error) state += ` (last error: ${ep.last_error})`;
  return el('tr', { class: disabled ? 'bad' : ep.failing_since ? 'warn' : '' },
    el('th', { scope: 'row' }, ep.team),
    el('td', {}, ep.id ?? '', ep.description ? el('div', { class: 'hint' }, ep.description) : null),
    el('td', {}, el('code', {}, ep.url)),
    el('td', {}, Array.isArray(ep.event_types) ? list(ep.event_types) : 'all'),
    el('td', {}, state),
    el('td', {}, ep.backlog ?? '—'),
    el('td', {}, ep.last_success_at ? time(ep.last_success_at) : 'never'),
    el('td', {}, time(ep.failing_since)),
    el('td', {}, time(ep.created_at)),
  );
}
