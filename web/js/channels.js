// Channel search: filters (class, district, network, status, text, bounding box), pages by
// nextCursor, and a plot of where the matching channels are.
// @see API.md "Channels"
import { api, query } from './api.js';
import { badge, h, showError, showMessage, table } from './dom.js';
import { onLanguageChange } from './i18n.js';
import { ChannelPlot } from './plot.js';
import { CLASSES, DISTRICTS, NETWORKS, STATUSES } from './reference.js';

const PAGE_SIZE = 50;
/** The plot draws a sample of up to this many matching channels (one request, API limit 500). */
const PLOT_SAMPLE = 500;

const checkboxes = (name, values, labelPrefix) =>
  h('fieldset', { class: 'checks' }, h('legend', { i18n: `filter.${name}` }), values.map((value) =>
    h('label', {}, h('input', { type: 'checkbox', name, value }), h('span', { i18n: `${labelPrefix}.${value}` }))));

/** A channel of a GB/T 28181 device or lower platform says so, and which device it comes through. */
const gbBadge = (channel) => (channel.source === 'gb28181'
  ? h('span', { class: 'badge badge-gb', dataset: { deviceId: channel.deviceId ?? '' }, i18n: ['channels.gb', { deviceId: channel.deviceId ?? '?' }] })
  : null);

export function channelsPanel({ requestStream }) {
  const message = h('div', { class: 'message', role: 'alert', 'aria-live': 'polite' });
  const bboxInput = h('input', { id: 'filter-bbox', name: 'bbox', 'i18n-placeholder': 'filter.bboxHint', pattern: '^-?[0-9.]+,-?[0-9.]+,-?[0-9.]+,-?[0-9.]+$' });
  const form = h('form', { class: 'filters card', role: 'search', 'i18n-aria-label': 'channels.search' },
    h('div', { class: 'filter-row' },
      h('div', { class: 'field grow' }, h('label', { for: 'filter-q', i18n: 'filter.q' }), h('input', { id: 'filter-q', name: 'q', maxlength: 64, 'i18n-placeholder': 'filter.qHint' })),
      h('div', { class: 'field' }, h('label', { for: 'filter-district', i18n: 'filter.district' }),
        h('select', { id: 'filter-district', name: 'district' }, h('option', { value: '', i18n: 'common.all' }),
          DISTRICTS.map((code) => h('option', { value: code, i18n: `district.${code}` })))),
      h('div', { class: 'field grow' }, h('label', { for: 'filter-bbox', i18n: 'filter.bbox' }), bboxInput),
    ),
    h('div', { class: 'filter-row' },
      checkboxes('class', CLASSES, 'class'),
      checkboxes('network', NETWORKS, 'network'),
      checkboxes('status', STATUSES, 'status'),
      h('div', { class: 'actions' },
        h('button', { type: 'reset', class: 'btn', i18n: 'common.reset' }),
        h('button', { type: 'submit', class: 'btn btn-primary', id: 'search-submit', i18n: 'channels.searchButton' })),
    ),
  );

  const summary = h('p', { class: 'summary', id: 'channel-summary', role: 'status' });
  const results = h('div', { id: 'channel-results' });
  const prev = h('button', { type: 'button', class: 'btn', i18n: 'common.prev', disabled: true });
  const next = h('button', { type: 'button', class: 'btn', i18n: 'common.next', disabled: true });
  const canvas = h('canvas', { id: 'channel-plot', class: 'plot', role: 'img', 'i18n-aria-label': 'plot.aria' });
  const plotCaption = h('p', { class: 'muted', id: 'plot-caption' });
  const legend = h('div', { class: 'legend' }, CLASSES.map((c) =>
    h('span', {}, h('span', { class: `swatch swatch-${c}` }), h('span', { i18n: `class.${c}` }))));

  const plot = new ChannelPlot(canvas, (bbox) => {
    bboxInput.value = bbox.join(',');
    search();
  });
  onLanguageChange(() => plot.draw());

  // The cursors of the pages before the current one, so "previous" works with opaque cursors.
  let cursors = [];
  let cursor;
  let filters = {};

  function readFilters() {
    const data = new FormData(form);
    return {
      q: data.get('q')?.trim() || undefined,
      district: data.get('district') || undefined,
      bbox: data.get('bbox')?.trim() || undefined,
      class: data.getAll('class'),
      network: data.getAll('network'),
      status: data.getAll('status'),
    };
  }

  function row(channel) {
    const online = channel.status === 'online';
    const watch = h('button', {
      type: 'button', class: 'btn btn-small btn-primary', i18n: 'stream.request', disabled: !online,
      'i18n-title': online ? undefined : 'channels.notOnline',
      'aria-label': `${channel.name} ${channel.id}`,
      onclick: () => requestStream(channel),
    });
    return { attrs: { dataset: { channelId: channel.id } }, cells: [
      h('code', { text: channel.id }),
      h('span', {}, h('span', { text: channel.name }), gbBadge(channel)),
      h('span', { class: 'class-dot' }, h('span', { class: `swatch swatch-${channel.class}` }), h('span', { i18n: `class.${channel.class}` })),
      h('span', { i18n: `district.${channel.district}` }),
      h('span', { i18n: `network.${channel.network}` }),
      badge(channel.status, `status.${channel.status}`),
      (channel.tags ?? []).join(', '),
      watch,
    ] };
  }

  async function load() {
    showMessage(message);
    try {
      const page = await api('GET', `/channels${query({ ...filters, limit: PAGE_SIZE, cursor })}`);
      showMessage(summary, 'info', 'channels.summary', { total: page.total.toLocaleString(), page: cursors.length + 1 });
      results.replaceChildren(table(
        ['channel.id', 'channel.name', 'channel.class', 'channel.district', 'channel.network', 'channel.status', 'channel.tags', 'common.actions'],
        page.items.map(row),
        { empty: 'channels.none' },
      ));
      prev.disabled = cursors.length === 0;
      next.disabled = !page.nextCursor;
      next.onclick = () => {
        cursors.push(cursor);
        cursor = page.nextCursor;
        load();
      };
    } catch (error) {
      showError(message, error);
    }
  }

  async function loadPlot() {
    try {
      const sample = await api('GET', `/channels${query({ ...filters, limit: PLOT_SAMPLE })}`);
      plot.show(sample.items);
      showMessage(plotCaption, 'info', 'plot.caption', { shown: sample.items.length.toLocaleString(), total: sample.total.toLocaleString() });
    } catch (error) {
      plot.show([]);
      showError(plotCaption, error);
    }
  }

  function search() {
    filters = readFilters();
    cursors = [];
    cursor = undefined;
    load();
    loadPlot();
  }

  prev.addEventListener('click', () => {
    cursor = cursors.pop();
    load();
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    search();
  });
  form.addEventListener('reset', () => setTimeout(search));

  const el = h('section', { class: 'panel', id: 'panel-channels' },
    form,
    message,
    h('div', { class: 'split' },
      h('div', { class: 'card results' }, summary, results, h('div', { class: 'pager' }, prev, next)),
      h('figure', { class: 'card plot-card' }, h('figcaption', { i18n: 'plot.title' }), canvas, legend, plotCaption)),
  );
  return { el, activate: () => (results.childElementCount === 0 ? search() : undefined) };
}
