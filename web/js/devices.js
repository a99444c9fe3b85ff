// GB/T 28181 devices and lower platforms (platform-admins): registration state, address, last
// keepalive, channels; re-query a catalog, disable or enable a device. Names and addresses come from
// the devices themselves: they are only ever set as text (h() never parses markup).
// @see API.md "GB/T 28181 access"
import { api } from './api.js';
import { badge, busy, confirmAction, h, showError, showMessage, table } from './dom.js';
import { formatTime } from './i18n.js';

/** Registrations and keepalives change without the console asking: the list is read again this often. */
const REFRESH_MS = 5000;

export function devicesPanel() {
  const message = h('div', { class: 'message', role: 'alert', 'aria-live': 'polite' });
  const summary = h('p', { class: 'summary', id: 'devices-summary', role: 'status' });
  const list = h('div', { id: 'devices-list' });
  let timer;

  async function requery(device, button) {
    await busy(button, async () => {
      try {
        await api('POST', `/gb/devices/${encodeURIComponent(device.id)}/catalog`);
        showMessage(message, 'ok', 'devices.requeried', { id: device.id });
      } catch (error) {
        showError(message, error);
      }
    });
    await refresh(false);
  }

  async function setDisabled(device, disabled, button) {
    if (disabled && !(await confirmAction('devices.confirmDisable', { id: device.id }))) return;
    await busy(button, async () => {
      try {
        await api('PATCH', `/gb/devices/${encodeURIComponent(device.id)}`, { body: { disabled } });
        showMessage(message, 'ok', disabled ? 'devices.disabledDone' : 'devices.enabledDone', { id: device.id });
      } catch (error) {
        showError(message, error);
      }
    });
    await refresh(false);
  }

  function state(device) {
    if (device.disabled) return badge('fault', 'devices.stateDisabled');
    return device.online ? badge('online', 'status.online') : badge('offline', 'status.offline');
  }

  function row(device) {
    const requeryButton = h('button', {
      type: 'button', class: 'btn btn-small', i18n: 'devices.requery', 'aria-label': device.id, dataset: { action: 'requery' },
      disabled: !device.online, 'i18n-title': device.online ? undefined : 'devices.offlineHint',
      onclick: (e) => requery(device, e.currentTarget),
    });
    const toggle = h('button', {
      type: 'button', class: `btn btn-small ${device.disabled ? '' : 'btn-danger'}`, dataset: { action: device.disabled ? 'enable' : 'disable' },
      i18n: device.disabled ? 'devices.enable' : 'devices.disable', 'aria-label': device.id,
      onclick: (e) => setDisabled(device, !device.disabled, e.currentTarget),
    });
    return { attrs: { dataset: { deviceId: device.id, online: String(device.online) } }, cells: [
      h('code', { text: device.id }),
      h('span', { class: 'device-name', text: device.name }),
      state(device),
      h('code', { text: device.address ?? '—' }),
      (device.transport ?? '—').toUpperCase(),
      formatTime(device.lastKeepaliveAt) || '—',
      formatTime(device.registeredAt) || '—',
      h('span', { class: 'device-channels', i18n: ['devices.channelCount', { online: device.channelsOnline ?? 0, total: device.channels }] }),
      h('span', { class: 'row-actions' }, requeryButton, toggle),
    ] };
  }

  async function refresh(clear = true) {
    if (clear) showMessage(message);
    try {
      const { items } = await api('GET', '/gb/devices');
      const online = items.filter((d) => d.online).length;
      showMessage(summary, 'info', 'devices.summary', { total: items.length.toLocaleString(), online: online.toLocaleString() });
      list.replaceChildren(table(
        ['devices.id', 'devices.name', 'devices.state', 'devices.address', 'devices.transport', 'devices.lastKeepalive', 'devices.registeredAt', 'devices.channels', 'common.actions'],
        items.map(row),
        { empty: 'devices.none' },
      ));
    } catch (error) {
      showError(message, error);
    }
  }

  /** Reads the list again while the panel is on screen; stops for good once the console is left. */
  function startTimer() {
    if (timer) return;
    timer = setInterval(() => {
      if (!el.isConnected) {
        clearInterval(timer);
        timer = undefined;
      } else if (!el.hidden && !document.hidden) refresh(false);
    }, REFRESH_MS);
  }

  const el = h('section', { class: 'panel', id: 'panel-devices' },
    h('div', { class: 'card' },
      h('div', { class: 'card-head' },
        h('h2', { i18n: 'devices.title' }),
        h('button', { type: 'button', class: 'btn', id: 'devices-refresh', i18n: 'common.refresh', onclick: () => refresh() })),
      h('p', { class: 'muted', i18n: 'devices.hint' }),
      summary, message, list));
  return {
    el,
    activate: () => {
      startTimer();
      return refresh();
    },
  };
}
