// An agency's users (admins: their own agency; platform-admins: any): list, create an operator or
// an admin, disable or re-enable. Disabling ends the user's live sessions at once (API.md).
// @see API.md "Users and service accounts"
import { api } from './api.js';
import { badge, busy, confirmAction, h, showError, showMessage, table } from './dom.js';
import { formatTime } from './i18n.js';

const USERNAME = /^[a-z0-9_.-]{3,32}$/;

export function usersPanel({ me }) {
  const platform = me.role === 'platform-admin';
  const message = h('div', { class: 'message', role: 'alert', 'aria-live': 'polite' });
  const list = h('div', { id: 'users-list' });
  const agencySelect = h('select', { id: 'users-agency', onchange: () => refresh() });
  let agencyId = me.agencyId;

  const field = (id, key, input) => h('div', { class: 'field' }, h('label', { for: id, i18n: key }), input);
  const username = h('input', { id: 'new-username', name: 'username', required: true, pattern: USERNAME.source, maxlength: 32, autocomplete: 'off', 'i18n-placeholder': 'users.usernameHint' });
  const displayName = h('input', { id: 'new-display-name', name: 'displayName', maxlength: 64 });
  const password = h('input', { id: 'new-password', name: 'password', type: 'password', required: true, minlength: 10, maxlength: 128, autocomplete: 'new-password' });
  const role = h('select', { id: 'new-role', name: 'role' }, h('option', { value: 'operator', i18n: 'role.operator' }), h('option', { value: 'admin', i18n: 'role.admin' }));
  const createButton = h('button', { type: 'submit', class: 'btn btn-primary', i18n: 'users.create' });
  const form = h('form', { class: 'inline-form', id: 'user-form', novalidate: true },
    field('new-username', 'users.username', username),
    field('new-display-name', 'users.displayName', displayName),
    field('new-password', 'users.password', password),
    field('new-role', 'users.role', role),
    h('div', { class: 'field' }, createButton));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!USERNAME.test(username.value)) return showMessage(message, 'error', 'users.usernameInvalid');
    if (password.value.length < 10 || password.value.length > 128) return showMessage(message, 'error', 'users.passwordInvalid');
    await busy(createButton, async () => {
      try {
        const user = await api('POST', `/agencies/${encodeURIComponent(agencyId)}/users`, {
          body: { username: username.value, password: password.value, role: role.value, ...(displayName.value.trim() && { displayName: displayName.value.trim() }) },
        });
        form.reset();
        showMessage(message, 'ok', 'users.created', { username: user.username });
        await refresh(false);
      } catch (error) {
        showError(message, error);
      }
    });
  });

  async function setDisabled(user, disabled, button) {
    if (disabled && !(await confirmAction('users.confirmDisable', { username: user.username }))) return;
    await busy(button, async () => {
      try {
        await api('PATCH', `/users/${encodeURIComponent(user.id)}`, { body: { disabled } });
        showMessage(message, 'ok', disabled ? 'users.disabledDone' : 'users.enabledDone', { username: user.username });
        await refresh(false);
      } catch (error) {
        showError(message, error);
      }
    });
  }

  function row(user, usernames) {
    const toggle = user.id === me.id
      ? null
      : h('button', {
          type: 'button', class: `btn btn-small ${user.disabled ? '' : 'btn-danger'}`,
          i18n: user.disabled ? 'users.enable' : 'users.disable', 'aria-label': user.username,
          onclick: (e) => setDisabled(user, !user.disabled, e.currentTarget),
        });
    return { attrs: { dataset: { username: user.username } }, cells: [
      h('code', { text: user.username }),
      user.displayName,
      h('span', { i18n: `role.${user.role}` }),
      user.disabled ? badge('offline', 'users.stateDisabled') : badge('online', 'users.stateEnabled'),
      usernames.get(user.createdBy) ?? user.createdBy,
      formatTime(user.createdAt),
      toggle,
    ] };
  }

  async function loadAgencies() {
    const { items } = await api('GET', '/agencies');
    agencySelect.replaceChildren(...items.map((a) => h('option', { value: a.id, text: `${a.name} (${a.id})` })));
    agencySelect.value = agencyId;
  }

  async function refresh(clear = true) {
    if (clear) showMessage(message);
    try {
      if (platform) {
        if (agencySelect.options.length === 0) await loadAgencies();
        agencyId = agencySelect.value || agencyId;
      }
      const { items } = await api('GET', `/agencies/${encodeURIComponent(agencyId)}/users`);
      // createdBy is a user id; within the agency (and for oneself) it can be shown as a username.
      const usernames = new Map([[me.id, me.username], ...items.map((u) => [u.id, u.username])]);
      list.replaceChildren(table(['users.username', 'users.displayName', 'users.role', 'users.state', 'users.createdBy', 'users.createdAt', 'common.actions'], items.map((user) => row(user, usernames))));
    } catch (error) {
      showError(message, error);
    }
  }

  const el = h('section', { class: 'panel', id: 'panel-users' },
    h('div', { class: 'card' },
      h('div', { class: 'card-head' },
        h('h2', { i18n: 'users.title' }),
        platform ? h('div', { class: 'field' }, h('label', { for: 'users-agency', i18n: 'users.agency' }), agencySelect) : null),
      h('h3', { i18n: 'users.new' }),
      form,
      message,
      list));
  return { el, activate: () => refresh() };
}
