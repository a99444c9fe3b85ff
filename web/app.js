// The Sharp Eyes operator/administrator console: sign-in, capacity, channel search, watching
// streams, sessions and, by role, users, agencies, GB/T 28181 devices and the audit trail. Uses only the public API.
// @see API.md
import { api, currentSession, storeSession, whenUnauthenticated } from './js/api.js';
import { h, showError, showMessage } from './js/dom.js';
import { applyI18n, currentLang, setLang } from './js/i18n.js';
import { CapacityGauges } from './js/capacity.js';
import { LiveFeed } from './js/live.js';
import { Viewer } from './js/player.js';
import { streamDialog } from './js/stream-dialog.js';
import { channelsPanel } from './js/channels.js';
import { sessionsPanel } from './js/sessions.js';
import { usersPanel } from './js/users.js';
import { agenciesPanel } from './js/agencies.js';
import { devicesPanel } from './js/devices.js';
import { auditPanel } from './js/audit.js';

const $ = (id) => document.getElementById(id);
const loginScreen = $('login-screen');
const consoleScreen = $('console-screen');
const loginForm = $('login-form');
const loginMessage = $('login-message');
const globalMessage = $('global-message');

/** setTimeout cannot wait longer than this (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

let state = null;

function showLogin(reasonKey) {
  consoleScreen.hidden = true;
  loginScreen.hidden = false;
  $('whoami').hidden = true;
  $('logout').hidden = true;
  if (reasonKey) showMessage(loginMessage, 'error', reasonKey);
  $('login-username').focus();
}

/** Tabs the role may use; each panel is built once per sign-in and refreshed when shown. */
function panelsFor(me, context) {
  const admin = me.role === 'admin' || me.role === 'platform-admin';
  const panels = [
    { id: 'channels', key: 'tab.channels', build: () => channelsPanel(context) },
    { id: 'mine', key: 'tab.mine', build: () => (context.mine = sessionsPanel({ id: 'mine', scope: 'mine', ...context.sessionHooks })) },
  ];
  if (admin) {
    const scope = me.role === 'platform-admin' ? 'all' : 'agency';
    panels.push({ id: 'agency-sessions', key: `tab.${scope}`, build: () => (context.agencySessions = sessionsPanel({ id: 'agency-sessions', scope, ...context.sessionHooks })) });
    panels.push({ id: 'users', key: 'tab.users', build: () => usersPanel({ me }) });
  }
  if (me.role === 'platform-admin') {
    panels.push({ id: 'agencies', key: 'tab.agencies', build: () => agenciesPanel() });
    // GB/T 28181 devices are the platform's, not an agency's (the API refuses everyone else).
    panels.push({ id: 'devices', key: 'tab.devices', build: () => devicesPanel() });
  }
  panels.push({ id: 'audit', key: 'tab.audit', build: () => auditPanel({ me }) });
  return panels;
}

async function startConsole(session) {
  const me = await api('GET', '/auth/me');
  // An agency user's own agency says whether "emergency" (preemption) is offered.
  const agency = me.role === 'platform-admin' ? null : await api('GET', `/agencies/${encodeURIComponent(me.agencyId)}`).catch(() => null);
  loginScreen.hidden = true;
  consoleScreen.hidden = false;
  $('whoami').hidden = false;
  $('logout').hidden = false;
  $('whoami').replaceChildren(h('span', { text: `${me.displayName || me.username} · ` }), h('span', { i18n: `role.${me.role}` }), h('span', { text: ` · ${me.agencyId}` }));
  showMessage(globalMessage);

  const gauges = new CapacityGauges($('capacity-gauges'), $('live-status'));
  const context = {};
  const refreshSessions = () => {
    context.mine?.refresh();
    context.agencySessions?.refresh();
  };
  const viewer = new Viewer($('viewer'), $('players'), {
    onChange: refreshSessions,
    onNotice: (key, args) => showMessage(globalMessage, 'info', key, args),
    onError: (error) => showError(globalMessage, error),
  });
  const live = new LiveFeed({
    // The platform's own "agency" has no quota worth a gauge: its admins see the city pools only.
    onCapacity: (capacity) => gauges.update(capacity, me.role === 'platform-admin' ? null : me.agencyId),
    onCapacityError: () => undefined,
    onMode: (mode) => gauges.mode(mode),
    onPoll: refreshSessions,
    onEvent: (event) => {
      if (event.type === 'stream.ended') {
        viewer.ended(event.id, event.reason);
        refreshSessions();
        live.refreshCapacity();
      } else if (event.type === 'stream.expiring') viewer.expiring(event.id);
      else if (event.type === 'queue.granted') refreshSessions();
    },
  });
  const dialog = streamDialog({
    canPreempt: () => me.role === 'platform-admin' || Boolean(agency?.canPreempt),
    onGranted: (granted, channel) => {
      viewer.watchNew(granted, channel);
      live.refreshCapacity();
    },
  });
  context.requestStream = (channel) => dialog.open(channel);
  context.sessionHooks = { viewer, onEnded: (id) => { viewer.ended(id, 'released'); refreshSessions(); live.refreshCapacity(); } };

  const tabs = $('tabs');
  const panelsRoot = $('panels');
  tabs.replaceChildren();
  panelsRoot.replaceChildren();
  const built = new Map();
  const select = (id) => {
    for (const button of tabs.children) {
      const on = button.dataset.panel === id;
      button.setAttribute('aria-selected', String(on));
      button.tabIndex = on ? 0 : -1;
    }
    for (const [panelId, panel] of built) panel.el.hidden = panelId !== id;
    built.get(id)?.activate();
  };
  for (const spec of panelsFor(me, context)) {
    const panel = spec.build();
    panel.el.setAttribute('role', 'tabpanel');
    panel.el.setAttribute('aria-labelledby', `tab-${spec.id}`);
    panel.el.hidden = true;
    built.set(spec.id, panel);
    panelsRoot.append(panel.el);
    tabs.append(h('button', { type: 'button', role: 'tab', id: `tab-${spec.id}`, 'aria-controls': panel.el.id, dataset: { panel: spec.id }, i18n: spec.key, onclick: () => select(spec.id) }));
  }
  tabs.onkeydown = (event) => {
    if (event.key !== 'ArrowRight' && event.key !== 'ArrowLeft') return;
    const buttons = [...tabs.children];
    const at = buttons.indexOf(document.activeElement);
    const next = buttons[(at + (event.key === 'ArrowRight' ? 1 : buttons.length - 1)) % buttons.length];
    next.focus();
    next.click();
  };
  select('channels');
  live.start();

  const expiresIn = Date.parse(session.expiresAt) - Date.now();
  const expiry = setTimeout(() => signOut('auth.expired'), Math.min(Math.max(expiresIn, 0), MAX_TIMER_MS));
  state = { viewer, live, expiry };
}

async function signOut(reasonKey) {
  const current = state;
  state = null;
  if (current) {
    clearTimeout(current.expiry);
    current.live.stop();
    // Releasing needs the token: do it before forgetting the token (a 401 here is harmless).
    if (reasonKey !== 'auth.expired') await current.viewer.stopAll();
    else for (const id of [...current.viewer.players.keys()]) current.viewer.players.get(id).teardown();
  }
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  storeSession(null);
  showLogin(reasonKey);
}

loginForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const username = $('login-username').value.trim();
  const password = $('login-password').value;
  if (!username || !password) return showMessage(loginMessage, 'error', 'auth.missing');
  const button = loginForm.querySelector('button[type="submit"]');
  button.disabled = true;
  showMessage(loginMessage);
  try {
    const session = await api('POST', '/auth/login', { body: { username, password } });
    storeSession(session);
    $('login-password').value = '';
    await startConsole(session);
  } catch (error) {
    storeSession(null);
    showError(loginMessage, error);
  } finally {
    button.disabled = false;
  }
});

$('logout').addEventListener('click', () => signOut());
$('lang-switch').addEventListener('click', () => setLang(currentLang() === 'zh' ? 'en' : 'zh'));
whenUnauthenticated(() => {
  if (state || currentSession()) signOut('auth.expired');
});

applyI18n();
const saved = currentSession();
if (saved && Date.parse(saved.expiresAt) > Date.now()) {
  startConsole(saved).catch(() => signOut());
} else {
  storeSession(null);
  showLogin();
}
