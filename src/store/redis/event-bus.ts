/**
 * EventBus across broker processes over Redis pub/sub (channel `<prefix>:events`). A process's own
 * events reach its listeners at once, synchronously, as on the LocalEventBus; they are also published
 * for the other processes, and the copy that comes back is recognised by the instance id and skipped.
 *
 * Delivery is at most once, like the events themselves: pub/sub keeps nothing for a subscriber that is
 * reconnecting, and a publish while Redis is down is dropped (and reported), never queued. Clients
 * re-read state (GET /capacity, /streams) after reconnecting their socket.
 * @see https://redis.io/docs/latest/develop/interact/pubsub/
 */
import { randomUUID } from 'node:crypto';
import type { BrokerEvent, EventBus } from '../../core/events.js';
import { LocalEventBus } from '../../core/events.js';
import type { RedisClient } from './client.js';

interface Envelope {
  origin: string;
  event: BrokerEvent;
}

export interface RedisEventBusOptions {
  prefix: string;
  /** Publish failures, subscriber connection errors and malformed messages, for the operator log. */
  onError?: (error: Error) => void;
}

export class RedisEventBus implements EventBus {
  readonly instanceId = randomUUID();
  private readonly local = new LocalEventBus();
  private readonly channel: string;

  private constructor(
    private readonly publisher: RedisClient,
    private readonly subscriber: RedisClient,
    private readonly options: RedisEventBusOptions,
  ) {
    this.channel = `${options.prefix}:events`;
  }

  /**
   * Subscribes on a duplicate of `publisher` (a subscribed connection can run nothing else) and resolves
   * once subscribed. `publisher` stays the caller's; `close()` ends only the duplicate.
   */
  static async open(publisher: RedisClient, options: RedisEventBusOptions): Promise<RedisEventBus> {
    const subscriber = publisher.duplicate();
    // duplicate() does not copy listeners; without one an 'error' event would crash the process.
    subscriber.on('error', (error: Error) => options.onError?.(error));
    await subscriber.connect();
    const bus = new RedisEventBus(publisher, subscriber, options);
    await subscriber.subscribe(bus.channel, (message) => bus.receive(message));
    return bus;
  }

  publish(event: BrokerEvent): void {
    this.local.publish(event);
    const envelope: Envelope = { origin: this.instanceId, event };
    this.publisher.publish(this.channel, JSON.stringify(envelope)).catch((error: Error) => this.options.onError?.(error));
  }

  subscribe(listener: (event: BrokerEvent) => void): () => void {
    return this.local.subscribe(listener);
  }

  async close(): Promise<void> {
    await this.subscriber.close().catch(() => this.subscriber.destroy());
  }

  private receive(message: string): void {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(message) as Envelope;
    } catch (error) {
      this.options.onError?.(error as Error);
      return;
    }
    if (envelope.origin === this.instanceId || typeof envelope.event?.type !== 'string') return;
    this.local.publish(envelope.event);
  }
}
