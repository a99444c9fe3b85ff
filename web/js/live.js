// Live updates: the events WebSocket (/api/v1/events, token in ?token= because browsers cannot set
// headers on a WebSocket), and, while it is unavailable, polling GET /capacity every 5 s.
// @see API.md "Live events"
import { api, currentSession } from './api.js';

const POLL_MS = 5000;
const RECONNECT_MS = [2000, 5000, 10000, 30000];

export class LiveFeed {
  /** @param {{onCapacity(c), onEvent(e), onMode(mode: 'live'|'polling'|'stopped')}} handlers */
  constructor(handlers) {
    this.handlers = handlers;
    this.socket = null;
    this.pollTimer = null;
    this.reconnectTimer = null;
    this.failures = 0;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.refreshCapacity();
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.stopPolling();
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close(1000);
      this.socket = null;
    }
    this.handlers.onMode('stopped');
  }

  /** GET /capacity: the only source of the agency quotas, and the fallback when the socket is down. */
  async refreshCapacity() {
    try {
      this.handlers.onCapacity(await api('GET', '/capacity'));
    } catch (error) {
      this.handlers.onCapacityError?.(error);
    }
  }

  connect() {
    const session = currentSession();
    if (this.stopped || !session) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${location.host}/api/v1/events?token=${encodeURIComponent(session.token)}`);
    } catch {
      this.fallBack();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.failures = 0;
      this.stopPolling();
      this.handlers.onMode('live');
      // Events say what changed from now on; the current figures come from one read.
      this.refreshCapacity();
    };
    socket.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event.type === 'capacity') this.handlers.onCapacity(event);
      else this.handlers.onEvent(event);
    };
    socket.onclose = () => {
      this.socket = null;
      this.fallBack();
    };
  }

  fallBack() {
    if (this.stopped) return;
    this.handlers.onMode('polling');
    if (!this.pollTimer) {
      this.pollTimer = setInterval(() => {
        this.refreshCapacity();
        this.handlers.onPoll?.();
      }, POLL_MS);
    }
    const delay = RECONNECT_MS[Math.min(this.failures, RECONNECT_MS.length - 1)];
    this.failures += 1;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }
}
