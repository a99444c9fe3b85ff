// The audit trail (who used what, when and why): filters, paging by nextCursor and, for
// platform-admins, the hash-chain verification.
// @see API.md "Audit"
import { api, query } from './api.js';
import { badge, busy, h, showError, showMessage, table } from './dom.js';
import { formatTime } from './i18n.js';
import { auditHeadCard } from './audit-head.js';

const PAGE_SIZE = 50;
/** The player records (issue 9): one prefix for all of them, or one action each. GET /audit takes "play.*". */
const EVENT_PRESETS = [
  ['', 'audit.eventsAll'],
  ['play.*', 'audit.eventsPlay'],
  ['play.start', 'audit.eventsPlayStart'],
  ['play.end', 'audit.eventsPlayEnd'],
  ['play.refused', 'audit.eventsPlayRefused'],
];

/** `details` as "key=value · key=value" (a player's address, user agent, bytes, seconds...). */
const detailsText = (details) => (details ? Object.entries(details).map(([key, value]) => `${key}=${value}`).join(' · ') : '');

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

  // A preset fills the action field and searches: the field stays the one source of the filter.
  const presets = h('select', { id: 'audit-events', name: 'events' },
    EVENT_PRESETS.map(([value, key]) => h('option', { value, i18n: key })));
  presets.addEventListener('change', () => {
    form.elements.namedItem('action').value = presets.value;
    form.requestSubmit();
  });
  form.prepend(h('div', { class: 'field' }, h('label', { for: 'audit-events', i18n: 'audit.events' }), presets));

  const isoOrUndefined = (value) => (value ? new Date(value).toISOString() : undefined);

  function render() {
    list.replaceChildren(table(
      ['audit.seq', 'audit.at', 'audit.actor', 'audit.action', 'audit.target', 'audit.outcome', 'audit.reason', 'audit.purpose', 'audit.details'],
      rows.map((entry) => [
        String(entry.seq),
        formatTime(entry.at),
        `${entry.actor.id} · ${entry.actor.role} · ${entry.actor.agencyId}`,
        h('code', { text: entry.action }),
        entry.target,
        badge(entry.outcome === 'ok' ? 'online' : entry.outcome === 'denied' ? 'fault' : 'offline', `outcome.${entry.outcome}`),
        entry.reason ?? '',
        entry.purpose ?? '',
        h('span', { class: 'details', text: detailsText(entry.details) }),
      ]),
      { empty: 'audit.none' },
    ));
    more.hidden = !nextCursor;
  }

  // Only the latest search shows: a slower earlier answer (the first page, another filter) is dropped.
  let generation = 0;
  async function load(reset) {
    showMessage(message);
    const mine = reset ? ++generation : generation;
    try {
      const page = await api('GET', `/audit${query({ ...filters, limit: PAGE_SIZE, cursor: reset ? undefined : nextCursor })}`);
      if (mine !== generation) return;
      if (reset) rows.length = 0;
      rows.push(...page.items);
      nextCursor = page.nextCursor;
      render();
    } catch (error) {
      if (mine === generation) showError(message, error);
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const action = data.get('action')?.trim() ?? '';
    presets.value = EVENT_PRESETS.some(([value]) => value === action) ? action : '';
    filters = {
      agencyId: data.get('agencyId')?.trim(),
      userId: data.get('userId')?.trim(),
      channelId: data.get('channelId')?.trim(),
      action,
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

  // Agency and platform admins keep signed heads; operators see their own actions only.
  const head = me.role === 'operator' ? null : auditHeadCard({ me });

  const el = h('section', { class: 'panel', id: 'panel-audit' },
    head?.el,
    h('div', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', { i18n: 'audit.title' }), verifyButton),
      verifyResult,
      form,
      message,
      list,
      h('div', { class: 'pager' }, more)));
  return {
    el,
    activate: () => {
      void head?.load();
      return rows.length === 0 ? load(true) : undefined;
    },
  };
}
