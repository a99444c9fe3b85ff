// Agencies and their quotas (platform-admins): list with current use, create, edit networks,
// classes, quotas and canPreempt. A change of networks/classes applies to the agency's users at once.
// @see API.md "Agencies"
import { api } from './api.js';
import { busy, h, showError, showMessage, table } from './dom.js';
import { label } from './i18n.js';
import { CLASSES, NETWORKS } from './reference.js';

const AGENCY_ID = /^[a-z][a-z0-9-]{1,31}$/;

export function agenciesPanel() {
  const message = h('div', { class: 'message', role: 'alert', 'aria-live': 'polite' });
  const list = h('div', { id: 'agencies-list' });
  const formTitle = h('h3', { i18n: 'agencies.new' });
  let editing = null;

  const input = (id, attrs) => h('input', { id, name: id, ...attrs });
  const idInput = input('agency-id', { required: true, pattern: AGENCY_ID.source, maxlength: 32, 'i18n-placeholder': 'agencies.idHint' });
  const nameInput = input('agency-name', { required: true, maxlength: 100 });
  const forwardingInput = input('agency-forwarding', { type: 'number', min: 0, max: 100000, required: true, value: 100 });
  const analyticsInput = input('agency-analytics', { type: 'number', min: 0, max: 100000, required: true, value: 20 });
  const preemptInput = input('agency-preempt', { type: 'checkbox' });
  const checks = (name, values, prefix) => h('fieldset', { class: 'checks' }, h('legend', { i18n: `agencies.${name}` }),
    values.map((value) => h('label', {}, h('input', { type: 'checkbox', name: `agency-${name}`, value }), h('span', { i18n: `${prefix}.${value}` }))));
  const field = (id, key, control) => h('div', { class: 'field' }, h('label', { for: id, i18n: key }), control);
  const saveButton = h('button', { type: 'submit', class: 'btn btn-primary', i18n: 'common.save' });
  const cancelButton = h('button', { type: 'button', class: 'btn', i18n: 'common.cancel', hidden: true, onclick: () => edit(null) });
  const form = h('form', { class: 'inline-form', id: 'agency-form', novalidate: true },
    field('agency-id', 'agencies.id', idInput),
    field('agency-name', 'agencies.name', nameInput),
    checks('networks', NETWORKS, 'network'),
    checks('classes', CLASSES, 'class'),
    field('agency-forwarding', 'agencies.forwardingQuota', forwardingInput),
    field('agency-analytics', 'agencies.analyticsQuota', analyticsInput),
    h('label', { class: 'check-inline' }, preemptInput, h('span', { i18n: 'agencies.canPreempt' })),
    h('div', { class: 'field actions' }, cancelButton, saveButton));

  const checked = (name) => [...form.querySelectorAll(`input[name="agency-${name}"]:checked`)].map((el) => el.value);

  function edit(agency) {
    editing = agency;
    form.reset();
    idInput.disabled = Boolean(agency);
    cancelButton.hidden = !agency;
    label(formTitle, agency ? 'agencies.edit' : 'agencies.new', agency ? { id: agency.id } : undefined);
    if (!agency) return;
    idInput.value = agency.id;
    nameInput.value = agency.name;
    forwardingInput.value = agency.quotas.forwarding;
    analyticsInput.value = agency.quotas.analytics;
    preemptInput.checked = agency.canPreempt;
    for (const box of form.querySelectorAll('input[name="agency-networks"]')) box.checked = agency.networks.includes(box.value);
    for (const box of form.querySelectorAll('input[name="agency-classes"]')) box.checked = agency.classes.includes(Number(box.value));
    nameInput.focus();
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const quota = (el) => Number.parseInt(el.value, 10);
    const body = {
      name: nameInput.value.trim(),
      networks: checked('networks'),
      classes: checked('classes').map(Number),
      quotas: { forwarding: quota(forwardingInput), analytics: quota(analyticsInput) },
      canPreempt: preemptInput.checked,
    };
    if (!editing && !AGENCY_ID.test(idInput.value)) return showMessage(message, 'error', 'agencies.idInvalid');
    if (!body.name) return showMessage(message, 'error', 'agencies.nameInvalid');
    if (![body.quotas.forwarding, body.quotas.analytics].every((n) => Number.isInteger(n) && n >= 0 && n <= 100000)) {
      return showMessage(message, 'error', 'agencies.quotaInvalid');
    }
    await busy(saveButton, async () => {
      try {
        const saved = editing
          ? await api('PATCH', `/agencies/${encodeURIComponent(editing.id)}`, { body })
          : await api('POST', '/agencies', { body: { id: idInput.value, ...body } });
        edit(null);
        showMessage(message, 'ok', 'agencies.saved', { id: saved.id });
        await refresh(false);
      } catch (error) {
        showError(message, error);
      }
    });
  });

  function row(agency, usage) {
    const quotaCell = (pool) => `${usage?.[pool].used ?? 0} / ${agency.quotas[pool]}`;
    return { attrs: { dataset: { agencyId: agency.id } }, cells: [
      h('code', { text: agency.id }),
      agency.name,
      h('span', {}, agency.networks.map((n) => h('span', { class: 'tag', i18n: `network.${n}` }))),
      agency.classes.map((c) => `${c}`).join(', '),
      quotaCell('forwarding'),
      quotaCell('analytics'),
      h('span', { i18n: agency.canPreempt ? 'common.yes' : 'common.no' }),
      h('button', { type: 'button', class: 'btn btn-small', i18n: 'common.edit', 'aria-label': agency.id, onclick: () => edit(agency) }),
    ] };
  }

  async function refresh(clear = true) {
    if (clear) showMessage(message);
    try {
      const [{ items }, capacity] = await Promise.all([api('GET', '/agencies'), api('GET', '/capacity')]);
      const usage = new Map(capacity.agencies.map((a) => [a.id, a]));
      list.replaceChildren(table(
        ['agencies.id', 'agencies.name', 'agencies.networks', 'agencies.classes', 'agencies.forwardingUse', 'agencies.analyticsUse', 'agencies.canPreempt', 'common.actions'],
        items.map((agency) => row(agency, usage.get(agency.id))),
      ));
    } catch (error) {
      showError(message, error);
    }
  }

  const el = h('section', { class: 'panel', id: 'panel-agencies' },
    h('div', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { i18n: 'agencies.title' })), formTitle, form, message, list));
  return { el, activate: () => refresh() };
}
