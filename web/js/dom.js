// A small element builder and the few UI helpers every view shares (no framework: the console is
// plain ES modules served as they are).
import { hasLabel, label, t } from './i18n.js';

/**
 * h('button', { class: 'btn', i18n: 'common.ok', onclick }, ...children). `i18n` labels the element
 * (relabelled on a language switch); `text` sets literal text (data, never markup).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'i18n') label(el, ...(Array.isArray(value) ? value : [value]));
    else if (name === 'text') el.textContent = String(value);
    else if (name === 'class') el.className = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name.startsWith('i18n-')) {
      const attribute = name.slice(5);
      el.setAttribute(`data-i18n-${attribute}`, value);
      el.setAttribute(attribute, t(value));
    } else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A table with labelled header cells; rows are arrays of cells (nodes or text). */
export function table(columns, rows, { empty = 'common.empty', caption } = {}) {
  const head = h('tr', {}, columns.map((key) => h('th', { scope: 'col', i18n: key })));
  const body = rows.length
    ? rows.map((row) => h('tr', row.attrs ?? {}, (row.cells ?? row).map((cell) => h('td', {}, cell))))
    : [h('tr', {}, h('td', { colspan: columns.length, class: 'empty', i18n: empty }))];
  return h('div', { class: 'table-wrap' }, h('table', {}, caption ? h('caption', { i18n: caption }) : null, h('thead', {}, head), h('tbody', {}, body)));
}

/** Shows a message (localized, from an i18n key) in a message area; kind: error | ok | info. */
export function showMessage(area, kind, key, args) {
  area.replaceChildren();
  if (!key) {
    area.className = area.className.replace(/\b(error|ok|info)\b/g, '').trim();
    return;
  }
  area.classList.remove('error', 'ok', 'info');
  area.classList.add(kind);
  area.append(label(h('span'), key, args));
}

/** Shows an API error: the localized text for its code, plus the server's detail when it adds something. */
export function showError(area, error) {
  const key = hasLabel(`error.${error.code}`) ? `error.${error.code}` : 'error.UNKNOWN';
  showMessage(area, 'error', key, { code: error.code });
  if (error.retryAfter) area.append(' ', h('span', { i18n: ['error.retryAfter', { seconds: error.retryAfter }] }));
  if (error.detail) area.append(h('span', { class: 'detail', text: ` (${error.detail})` }));
}

/** Our own confirmation dialog: native confirm() blocks the page and cannot be styled or translated. */
export function confirmAction(key, args) {
  const dialog = document.getElementById('confirm-dialog');
  label(document.getElementById('confirm-text'), key, args);
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

/** A badge whose text is a label key (status, role, network...). */
export const badge = (kind, key) => h('span', { class: `badge badge-${kind}`, i18n: key });

/** Disables a button while `work` runs, so a double click is one request. */
export async function busy(button, work) {
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}
