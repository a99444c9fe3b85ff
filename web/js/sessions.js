// Stream sessions: "my sessions" (everyone who watches) and the agency's (admins) or the city's
// (platform-admins), each with an end button. stream.ended events and the viewer refresh them.
// @see API.md "Streams": GET /streams?scope=mine|agency|all, DELETE /streams/:id
import { ApiError, api } from './api.js';
import { busy, confirmAction, h, showError, showMessage, table } from './dom.js';
import { formatTime } from './i18n.js';

export function sessionsPanel({ id, scope, viewer, onEnded }) {
  const mine = scope === 'mine';
  const message = h('div', { class: 'message', role: 'alert', 'aria-live': 'polite' });
  const list = h('div', { id: `${id}-list` });
  const refreshButton = h('button', { type: 'button', class: 'btn', i18n: 'common.refresh', onclick: () => refresh() });

  async function end(session, button) {
    if (!mine && !(await confirmAction('sessions.confirmEnd', { user: session.userId, channel: session.channelId }))) return;
    await busy(button, async () => {
      try {
        await api('DELETE', `/streams/${encodeURIComponent(session.id)}`);
        showMessage(message, 'ok', 'sessions.ended', { channel: session.channelId });
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) showError(message, error);
      }
    });
    onEnded(session.id);
  }

  async function watch(session, button) {
    await busy(button, async () => {
      try {
        await viewer.attach(session);
      } catch (error) {
        showError(message, error);
      }
    });
  }

  function row(session) {
    const actions = h('div', { class: 'row-actions' },
      mine && !viewer.isPlaying(session.id)
        ? h('button', { type: 'button', class: 'btn btn-small', i18n: 'sessions.watch', onclick: (e) => watch(session, e.currentTarget) })
        : null,
      h('button', { type: 'button', class: 'btn btn-small btn-danger', i18n: 'sessions.end', 'aria-label': `${session.channelId} ${session.id}`, onclick: (e) => end(session, e.currentTarget) }));
    return { attrs: { dataset: { sessionId: session.id } }, cells: [
      h('code', { text: session.channelId }),
      mine ? null : `${session.userId} (${session.agencyId})`,
      session.purpose,
      h('span', { i18n: `priority.${session.priority}` }),
      h('span', { i18n: session.shared ? 'common.yes' : 'common.no' }),
      formatTime(session.createdAt),
      formatTime(session.expiresAt),
      actions,
    ].filter((cell) => cell !== null) };
  }

  async function refresh() {
    try {
      const { items } = await api('GET', `/streams?scope=${scope}`);
      const columns = ['session.channel', mine ? null : 'session.user', 'session.purpose', 'session.priority', 'session.shared', 'session.createdAt', 'session.expiresAt', 'common.actions'].filter(Boolean);
      list.replaceChildren(table(columns, items.map(row), { empty: 'sessions.none' }));
    } catch (error) {
      showError(message, error);
    }
  }

  const el = h('section', { class: 'panel', id: `panel-${id}` },
    h('div', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', { i18n: mine ? 'sessions.mine' : scope === 'all' ? 'sessions.all' : 'sessions.agency' }), refreshButton),
      message,
      list));
  return { el, activate: refresh, refresh };
}
