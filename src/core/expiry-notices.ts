/**
 * `stream.expiring`: tells a client that one third of its session's lease is left, so it heartbeats
 * before the sweep ends the session with reason `expired`. Each session is noticed once per lease
 * (per expiresAt): a heartbeat moves expiresAt and arms the notice again.
 * @see ../shared/API.md "Live events"
 */
import type { BrokerEvent } from './events.js';
import type { SlotStore } from './ports.js';

export interface ExpiryNoticesOptions {
  slots: Pick<SlotStore, 'listSessions' | 'now'>;
  /** Where notices go. */
  publish: (event: BrokerEvent) => void;
  /** The lease TTL the sessions were granted with (BROKER_LEASE_TTL_SECONDS). */
  leaseTtlMs: number;
  /** How often live sessions are checked. Default 1000 ms. */
  checkIntervalMs?: number;
  log?: { warn(obj: object, msg: string): void };
}

export class ExpiryNotices {
  /** Session id → the expiresAt already noticed. Only live sessions stay, so it is bounded by the pool. */
  private readonly noticed = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;

  constructor(private readonly o: ExpiryNoticesOptions) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.checking) return; // a slow store does not stack checks
      this.checking = this.check()
        .catch((err: unknown) => this.o.log?.warn({ err }, 'expiry notices: check failed; retrying'))
        .finally(() => {
          this.checking = undefined;
        });
    }, this.o.checkIntervalMs ?? 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.checking;
    this.noticed.clear();
  }

  /** One pass: notice every live session within the last third of its lease, once per expiresAt. */
  async check(): Promise<void> {
    const [sessions, now] = await Promise.all([this.o.slots.listSessions({}), this.o.slots.now()]);
    const threshold = this.o.leaseTtlMs / 3;
    const live = new Set<string>();
    for (const session of sessions) {
      live.add(session.id);
      const left = session.expiresAt - now;
      if (left <= 0 || left > threshold || this.noticed.get(session.id) === session.expiresAt) continue;
      this.noticed.set(session.id, session.expiresAt);
      this.o.publish({
        type: 'stream.expiring',
        at: new Date(now).toISOString(),
        id: session.id,
        channelId: session.channelId,
        expiresAt: new Date(session.expiresAt).toISOString(),
        principalId: session.principalId,
        agencyId: session.agencyId,
      });
    }
    for (const id of this.noticed.keys()) if (!live.has(id)) this.noticed.delete(id);
  }
}
