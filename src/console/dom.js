// Building the page out of elements and text nodes only. Nothing here parses HTML: a value
// from the API can only ever become text (the CSP's Trusted Types would refuse a string
// given as HTML anyway).

/** An element with attributes and children; strings and numbers become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (/^on/i.test(name) || name === 'style') {
      throw new Error(`el(): ${name} is not allowed`);
    }
    if (name === 'dataset') {
      Object.assign(node.dataset, value);
    } else if (value === true) {
      node.setAttribute(name, '');
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces every child of `node` with `children`. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

/** A table with a caption, column headers and one row per item. */
export function table(caption, columns, rows) {
  return el(
    'table',
    {},
    el('caption', {}, caption),
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col' }, c)))),
    el('tbody', {}, rows),
  );
}

/** An ISO timestamp shown in the reader's time zone, the original kept as its datetime. */
export function time(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return el('time', { datetime: iso, title: iso }, date.toLocaleString());
}

/**
 * Shows a list a page at a time: `render(item)` gives one row; at most `size` rows are in
 * the document at once, whatever the list's length.
 */
export function pagedRows(container, caption, columns, items, render, size = 50) {
  let page = 0;
  const pages = Math.max(1, Math.ceil(items.length / size));
  const show = () => {
    const slice = items.slice(page * size, (page + 1) * size);
    const prev = el('button', { type: 'button', disabled: page === 0 }, 'Previous page');
    const next = el('button', { type: 'button', disabled: page >= pages - 1 }, 'Next page');
    prev.addEventListener('click', () => { page -= 1; show(); });
    next.addEventListener('click', () => { page += 1; show(); });
    const body = items.length === 0
      ? el('p', { class: 'empty' }, `No ${caption.toLowerCase()} yet.`)
      : table(caption, columns, slice.map(render));
    replace(
      container,
      body,
      pages > 1 ? el('div', { class: 'pager' }, prev, ` Page ${page + 1} of ${pages} `, next) : null,
    );
  };
  show();
}

/** Clears the messages and field errors of a section. */
export function clearMessages(section) {
  for (const node of section.querySelectorAll('.problem, .status')) replace(node);
  for (const node of section.querySelectorAll('.field-error')) replace(node);
  for (const node of section.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
}

/** A success message in the section's status line (announced politely). */
export function status(section, message) {
  replace(section.querySelector('.status'), message);
}

/**
 * A problem+json answer: its `detail` in the section's alert, and each entry of `errors`
 * beside the field named by it (`phone_numbers[0]` belongs to `phone_numbers`,
 * `rate_limit.burst` to `rate_limit`). Errors no field of `form` shows are listed in the
 * alert with their field's name.
 */
export function showProblem(section, problem, form = section) {
  const alert = section.querySelector('.problem');
  const loose = [];
  for (const error of problem.errors ?? []) {
    const field = String(error.field ?? '');
    const holder = fieldHolder(form, field);
    if (!holder) {
      loose.push(el('li', {}, `${field}: ${error.message}`));
      continue;
    }
    const message = holder.querySelector('.field-error');
    const text = holder.dataset.field === field ? error.message : `${field} ${error.message}`;
    message.append(el('span', {}, message.childNodes.length ? ` ${text}` : text));
    for (const input of holder.querySelectorAll('input, select, textarea')) {
      input.setAttribute('aria-invalid', 'true');
    }
  }
  const title = problem.status ? `${problem.title ?? 'Error'} (${problem.status})` : problem.title;
  replace(
    alert,
    el('strong', {}, title ?? 'Error'),
    ': ',
    problem.detail ?? 'The request failed.',
    loose.length ? el('ul', {}, loose) : null,
  );
  const firstInvalid = form.querySelector('[aria-invalid="true"]');
  if (firstInvalid) firstInvalid.focus();
}

function fieldHolder(form, field) {
  const candidates = [field, field.split(/[.[]/)[0]];
  for (const name of candidates) {
    const holder = [...form.querySelectorAll('[data-field]')].find((n) => n.dataset.field === name);
    if (holder) return holder;
  }
  return null;
}

/** Wires an input to its error message, so screen readers read the error with the field. */
export function describedBy(input, message) {
  const ids = new Set((input.getAttribute('aria-describedby') ?? '').split(/\s+/).filter(Boolean));
  ids.add(message.id);
  input.setAttribute('aria-describedby', [...ids].join(' '));
}
