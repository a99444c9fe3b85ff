// Stream sessions: "my sessions" (everyone who watches) and the agency's (admins) or the city's
// (platform-admins), each with an end button. The agency's and the city's list also show each session's
// current players (address, user agent, since, bytes), each with a cut button that ends that one
// connection and leaves the session on (issue 9). stream.ended events and the viewer refresh them.
// @see API.md "Streams": GET /streams?scope=mine|agency|all (&players=true), DELETE /streams/:id,
// DELETE /streams/:id/players/:playerId
import { ApiError, api } from './api.js';
import { busy, confirmAction, h, showError, showMessage, table } from './dom.js';
import { formatTime } from './i18n.js';

const formatBytes = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

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

  async function cut(session, player, button) {
    if (!(await confirmAction('sessions.confirmCut', { address: player.address, channel: session.channelId }))) return;
    await busy(button, async () => {
      try {
        await api('DELETE', `/streams/${encodeURIComponent(session.id)}/players/${encodeURIComponent(player.id)}`);
        showMessage(message, 'ok', 'sessions.playerCut', { address: player.address, channel: session.channelId });
      } catch (error) {
        // Gone meanwhile (it left, or the session ended): the refresh below shows what is left.
        if (error instanceof ApiError && error.status === 404) showMessage(message, 'info', 'sessions.playerGone');
        else showError(message, error);
      }
    });
    await refresh();
  }

  function playersCell(session) {
    const players = session.players ?? [];
    if (players.length === 0) return h('span', { class: 'muted', i18n: 'sessions.noPlayers' });
    return h('ul', { class: 'players' }, players.map((player) => h('li', { dataset: { playerId: player.id } },
      h('code', { class: 'player-address', text: player.address }), ' ',
      h('span', { class: 'player-protocol', text: player.protocol }), ' ',
      h('span', { class: 'player-agent', text: player.userAgent, title: player.userAgent }), ' ',
      h('span', { class: 'player-since', text: formatTime(player.since) }), ' ',
      h('span', { class: 'player-bytes', text: formatBytes(player.bytes) }), ' ',
      h('button', { type: 'button', class: 'btn btn-small btn-danger', i18n: 'sessions.cutPlayer', 'aria-label': `${player.address} ${player.id}`, onclick: (e) => cut(session, player, e.currentTarget) }))));
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
      mine ? null : playersCell(session),
      actions,
    ].filter((cell) => cell !== null) };
  }

  async function refresh() {
    try {
      const { items } = await api('GET', `/streams?scope=${scope}${mine ? '' : '&players=true'}`);
      const columns = ['session.channel', mine ? null : 'session.user', 'session.purpose', 'session.priority', 'session.shared', 'session.createdAt', 'session.expiresAt', mine ? null : 'session.players', 'common.actions'].filter(Boolean);
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
