/**
 * Live events for clients (GET /events). Each event names who may see it: the principal it concerns
 * and its agency; platform-admins see all. In Redis mode the bus fans out across broker processes.
 * @see ../shared/API.md "Live events"
 */
import type { EndReason } from './model.js';

export type BrokerEvent =
  | { type: 'capacity'; at: string; forwarding: { limit: number; used: number; queued: number }; analytics: { limit: number; used: number } }
  | { type: 'stream.expiring'; at: string; id: string; channelId: string; expiresAt: string; principalId: string; agencyId: string }
  | { type: 'stream.ended'; at: string; id: string; channelId: string; reason: EndReason; principalId: string; agencyId: string }
  | { type: 'queue.granted'; at: string; id: string; channelId: string; ticketId: string; principalId: string; agencyId: string }
  | { type: 'reservation.ended'; at: string; id: string; channelId: string; reason: EndReason; principalId: string; agencyId: string };

export interface EventBus {
  publish(event: BrokerEvent): void;
  subscribe(listener: (event: BrokerEvent) => void): () => void;
}

/** One process: listeners are called synchronously; a throwing listener does not stop the others. */
export class LocalEventBus implements EventBus {
  private readonly listeners = new Set<(event: BrokerEvent) => void>();

  publish(event: BrokerEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A subscriber's failure is its own (a closed socket); the bus keeps serving the rest.
      }
    }
  }

  subscribe(listener: (event: BrokerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
