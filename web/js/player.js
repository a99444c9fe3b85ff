// Watching streams in the page: mpegts.js plays the session's WebSocket-FLV URL (HTTP-FLV as the
// fallback) into a <video>; the page heartbeats the lease every TTL/3 and releases it on stop and
// when the page goes away (fetch keepalive).
// @see API.md "Streams (forwarding slots)"
import { ApiError, api, releaseOnUnload } from './api.js';
import { playsH264Fallback } from './codec.js';
import { h, showError, showMessage } from './dom.js';
import { formatTime, label } from './i18n.js';

const MIN_HEARTBEAT_MS = 1000;

/** The browser build (served at /vendor/mpegts.js) defines window.mpegts. */
const mpegtsLib = () => window.mpegts;

class Player {
  constructor(viewer, session, channel) {
    this.viewer = viewer;
    this.session = session;
    this.timer = null;
    this.media = null;
    this.video = h('video', { muted: true, autoplay: true, playsinline: true, controls: true, 'i18n-aria-label': 'viewer.video' });
    this.video.muted = true;
    this.status = h('p', { class: 'player-status', role: 'status' });
    // Why the picture is a transcode, not the camera's own stream: the operator may judge detail by it.
    this.h264Fallback = playsH264Fallback(session, channel);
    this.codecNote = this.h264Fallback ? h('p', { class: 'player-codec', i18n: 'viewer.h264Fallback' }) : null;
    this.message = h('div', { class: 'message', role: 'alert' });
    const title = channel ? `${channel.name} · ${channel.id}` : session.channelId;
    this.el = h('article', { class: 'player card', dataset: { sessionId: session.id } },
      h('header', { class: 'player-head' },
        h('strong', { text: title }),
        h('button', { type: 'button', class: 'btn btn-small btn-danger', i18n: 'viewer.stop', onclick: () => this.stop() })),
      h('p', { class: 'muted purpose' }, h('span', { i18n: 'stream.purposeShort' }), `: ${session.purpose}`),
      h('div', { class: 'video-frame' }, this.video),
      this.codecNote,
      this.status,
      this.message);
  }

  /** Heartbeats every third of the lease: the lease survives two lost heartbeats. */
  start(ttlMs) {
    this.ttlMs = ttlMs;
    this.showLease();
    this.scheduleHeartbeat();
    this.play(this.session.urls);
  }

  play(urls, useHttp = false) {
    this.media?.destroy();
    this.media = null;
    const mpegts = mpegtsLib();
    if (!mpegts || !mpegts.getFeatureList().mseLivePlayback) {
      showMessage(this.message, 'error', 'viewer.unsupported');
      return;
    }
    const url = useHttp || !('WebSocket' in window) ? urls.flv : urls.wsFlv;
    // The transcode carries video only (src/media/transcodes.ts), while node-media-server's FLV header always
    // announces audio: told nothing, mpegts.js waits for an audio track that never comes.
    const source = { type: 'flv', isLive: true, url, ...(this.h264Fallback && { hasAudio: false }) };
    const media = mpegts.createPlayer(source, { enableStashBuffer: false, liveBufferLatencyChasing: true, autoCleanupSourceBuffer: true });
    media.on(mpegts.Events.ERROR, () => {
      if (!useHttp) return this.play(urls, true);
      showMessage(this.message, 'error', 'viewer.mediaError');
      this.message.append(' ', h('button', { type: 'button', class: 'btn btn-small', i18n: 'viewer.reconnect', onclick: () => this.reconnect() }));
    });
    media.attachMediaElement(this.video);
    media.load();
    Promise.resolve(media.play()).catch(() => undefined);
    this.media = media;
  }

  /** Play tokens expire with the lease they were signed for: ask for fresh URLs. */
  async reconnect() {
    showMessage(this.message);
    try {
      this.session = await api('GET', `/streams/${encodeURIComponent(this.session.id)}`);
      this.play(this.session.urls);
    } catch (error) {
      this.fail(error);
    }
  }

  scheduleHeartbeat() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.heartbeat(), Math.max(MIN_HEARTBEAT_MS, this.ttlMs / 3));
  }

  async heartbeat() {
    try {
      // Fresh URLs too: a reconnect after the old token lapsed plays with them.
      const { expiresAt, urls } = await api('POST', `/streams/${encodeURIComponent(this.session.id)}/heartbeat`);
      this.session = { ...this.session, expiresAt, ...(urls && { urls }) };
      this.showLease();
      this.scheduleHeartbeat();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return this.ended('viewer.sessionGone');
      // A transient failure (network, 503): keep trying on schedule; the lease outlives two misses.
      showError(this.message, error);
      this.scheduleHeartbeat();
    }
  }

  showLease() {
    label(this.status, 'viewer.lease', { time: formatTime(this.session.expiresAt) });
  }

  async stop() {
    this.teardown();
    try {
      await api('DELETE', `/streams/${encodeURIComponent(this.session.id)}`);
    } catch (error) {
      // Already ended (404) is what stop wanted; anything else is worth saying.
      if (!(error instanceof ApiError && error.status === 404)) this.viewer.report(error);
    }
    this.viewer.changed();
  }

  /** The session ended elsewhere (event, heartbeat 404): say why and stop playing. */
  ended(reasonKey) {
    this.teardown();
    this.viewer.notice(reasonKey, { channel: this.session.channelId });
    this.viewer.changed();
  }

  fail(error) {
    if (error instanceof ApiError && error.status === 404) return this.ended('viewer.sessionGone');
    showError(this.message, error);
  }

  teardown() {
    clearTimeout(this.timer);
    this.media?.destroy();
    this.media = null;
    this.viewer.players.delete(this.session.id);
    this.el.remove();
    this.viewer.section.hidden = this.viewer.players.size === 0;
  }
}

export class Viewer {
  /** @param {{onChange(), onNotice(key, args), onError(error)}} hooks */
  constructor(section, container, hooks) {
    this.section = section;
    this.container = container;
    this.hooks = hooks;
    this.players = new Map();
    // pagehide fires on tab close, reload and navigation (unload is unreliable on mobile and in bfcache).
    window.addEventListener('pagehide', () => {
      for (const id of this.players.keys()) releaseOnUnload(id);
    });
  }

  isPlaying(sessionId) {
    return this.players.has(sessionId);
  }

  /** A session just granted: its lease TTL is exactly expiresAt - createdAt (both server times). */
  watchNew(session, channel) {
    this.add(session, channel).start(Date.parse(session.expiresAt) - Date.parse(session.createdAt));
  }

  /**
   * An existing session (from "my sessions"): heartbeat first, then estimate the TTL from the new
   * expiry; `stream.expiring` events (see expiring()) cover a client clock that is off.
   */
  async attach(session) {
    if (this.players.has(session.id)) return;
    const { expiresAt } = await api('POST', `/streams/${encodeURIComponent(session.id)}/heartbeat`);
    const fresh = await api('GET', `/streams/${encodeURIComponent(session.id)}`);
    // The channel's name and codec for the player's title and its H.264 note; the session plays without them.
    const channel = await api('GET', `/channels/${encodeURIComponent(session.channelId)}`).catch(() => undefined);
    this.add({ ...fresh, expiresAt }, channel).start(Date.parse(expiresAt) - Date.now());
  }

  add(session, channel) {
    const player = new Player(this, session, channel);
    this.players.set(session.id, player);
    this.container.prepend(player.el);
    this.section.hidden = false;
    this.changed();
    return player;
  }

  /** stream.ended event. */
  ended(sessionId, reason) {
    this.players.get(sessionId)?.ended(`endReason.${reason}`);
  }

  /** stream.expiring event: a third of the lease is left, heartbeat now. */
  expiring(sessionId) {
    this.players.get(sessionId)?.heartbeat();
  }

  /** Logout: release everything this page is watching. */
  async stopAll() {
    await Promise.all([...this.players.values()].map((player) => player.stop()));
  }

  changed() {
    this.hooks.onChange();
  }

  notice(key, args) {
    this.hooks.onNotice(key, args);
  }

  report(error) {
    this.hooks.onError(error);
  }
}
