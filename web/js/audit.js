// The audit trail (who used what, when and why): filters, paging by nextCursor and, for
// platform-admins, the hash-chain verification.
// @see API.md "Audit"
import { api, query } from './api.js';
import { badge, busy, h, showError, showMessage, table } from './dom.js';
import { formatTime } from './i18n.js';

const PAGE_SIZE = 50;

export function auditPanel({ me }) {
  const platform = me.role === 'platform-admin';
  const message = h('div', { class: 'message', role: 'alert', 'aria-live': 'polite' });
  const verifyResult = h('div', { class: 'message', id: 'audit-verify-result', role: 'status' });
  const rows = [];
  const list = h('div', { id: 'audit-list' });
  const more = h('button', { type: 'button', class: 'btn', i18n: 'common.more', hidden: true });
  let nextCursor = null;
  let filters = {};

  const field = (name, key, attrs = {}) =>
    h('div', { class: 'field' }, h('label', { for: `audit-${name}`, i18n: key }), h('input', { id: `audit-${name}`, name, ...attrs }));
  const form = h('form', { class: 'inline-form audit-filters', role: 'search', 'i18n-aria-label': 'audit.filters' },
    platform ? field('agencyId', 'audit.agency', { pattern: '^[a-z][a-z0-9-]{1,31}$', maxlength: 32 }) : null,
    field('userId', 'audit.user', { maxlength: 64 }),
    field('channelId', 'audit.channel', { pattern: '^[0-9]{20}$', maxlength: 20 }),
    field('action', 'audit.action', { maxlength: 64, 'i18n-placeholder': 'audit.actionHint' }),
    field('from', 'audit.from', { type: 'datetime-local' }),
    field('to', 'audit.to', { type: 'datetime-local' }),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', class: 'btn btn-primary', i18n: 'audit.search' })));

  const isoOrUndefined = (value) => (value ? new Date(value).toISOString() : undefined);

  function render() {
    list.replaceChildren(table(
      ['audit.seq', 'audit.at', 'audit.actor', 'audit.action', 'audit.target', 'audit.outcome', 'audit.reason', 'audit.purpose'],
      rows.map((entry) => [
        String(entry.seq),
        formatTime(entry.at),
        `${entry.actor.id} · ${entry.actor.role} · ${entry.actor.agencyId}`,
        h('code', { text: entry.action }),
        entry.target,
        badge(entry.outcome === 'ok' ? 'online' : entry.outcome === 'denied' ? 'fault' : 'offline', `outcome.${entry.outcome}`),
        entry.reason ?? '',
        entry.purpose ?? '',
      ]),
      { empty: 'audit.none' },
    ));
    more.hidden = !nextCursor;
  }

  async function load(reset) {
    showMessage(message);
    try {
      const page = await api('GET', `/audit${query({ ...filters, limit: PAGE_SIZE, cursor: reset ? undefined : nextCursor })}`);
      if (reset) rows.length = 0;
      rows.push(...page.items);
      nextCursor = page.nextCursor;
      render();
    } catch (error) {
      showError(message, error);
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    filters = {
      agencyId: data.get('agencyId')?.trim(),
      userId: data.get('userId')?.trim(),
      channelId: data.get('channelId')?.trim(),
      action: data.get('action')?.trim(),
      from: isoOrUndefined(data.get('from')),
      to: isoOrUndefined(data.get('to')),
    };
    load(true);
  });
  more.addEventListener('click', () => load(false));

  const verifyButton = platform
    ? h('button', {
        type: 'button', class: 'btn', id: 'audit-verify', i18n: 'audit.verify',
        onclick: (e) => busy(e.currentTarget, async () => {
          try {
            const result = await api('GET', '/audit/verify');
            if (result.ok) showMessage(verifyResult, 'ok', 'audit.verifyOk', { entries: result.entries });
            else showMessage(verifyResult, 'error', 'audit.verifyBad', { entries: result.entries, seq: result.firstBadSeq });
          } catch (error) {
            showError(verifyResult, error);
          }
        }),
      })
    : null;

  const el = h('section', { class: 'panel', id: 'panel-audit' },
    h('div', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', { i18n: 'audit.title' }), verifyButton),
      verifyResult,
      form,
      message,
      list,
      h('div', { class: 'pager' }, more)));
  return { el, activate: () => (rows.length === 0 ? load(true) : undefined) };
}
