/**
 * Broker-to-broker messages over Redis: each broker listens on a pub/sub channel of its own
 * (`<prefix>:broker-link:<id>`) and keeps a liveness key (`<prefix>:{broker-link}:alive:<id>`, one hash tag so MGET works on Redis Cluster; a few seconds' TTL,
 * refreshed every second), so a broker that holds a call for another learns when that one died, and the other way
 * round. Delivery is at most once, like pub/sub itself: the messages it carries (gb-bus-messages.ts) are requests with
 * their own timeouts. A message is handed on as the string it arrived as; checking it is the reader's job.
 * @see https://redis.io/docs/latest/develop/interact/pubsub/
 */
import type { BrokerLink } from '../../gb28181/gb-calls.js';
import { redisCall, type RedisClient } from './client.js';

const ALIVE_TTL_MS = 5000;
const ALIVE_REFRESH_MS = 1000;

export class RedisBrokerLink implements BrokerLink {
  private readonly listeners: Array<(message: string) => void> = [];
  private readonly timer: NodeJS.Timeout;

  private constructor(
    readonly selfId: string,
    private readonly client: RedisClient,
    private readonly subscriber: RedisClient,
    private readonly prefix: string,
    private readonly onError: (error: Error) => void,
  ) {
    this.timer = setInterval(() => void this.beat(), ALIVE_REFRESH_MS);
    this.timer.unref();
  }

  /** Subscribes on a duplicate of `client` (a subscribed connection can run nothing else); `client` stays the caller's. */
  static async open(client: RedisClient, prefix: string, selfId: string, onError: (error: Error) => void): Promise<RedisBrokerLink> {
    const subscriber = client.duplicate();
    subscriber.on('error', onError);
    await subscriber.connect();
    const link = new RedisBrokerLink(selfId, client, subscriber, prefix, onError);
    await subscriber.subscribe(link.channelOf(selfId), (message) => {
      for (const listener of link.listeners) {
        try {
          listener(message);
        } catch (error) {
          onError(error as Error);
        }
      }
    });
    await link.beat();
    return link;
  }

  private channelOf(id: string): string {
    return `${this.prefix}:broker-link:${id}`;
  }

  private aliveKey(id: string): string {
    return `${this.prefix}:{broker-link}:alive:${id}`;
  }

  private async beat(): Promise<void> {
    try {
      await redisCall(this.client, () => this.client.set(this.aliveKey(this.selfId), '1', { expiration: { type: 'PX', value: ALIVE_TTL_MS } }));
    } catch (error) {
      this.onError(error as Error);
    }
  }

  async send(to: string, message: string): Promise<void> {
    await redisCall(this.client, () => this.client.publish(this.channelOf(to), message));
  }

  onMessage(listener: (message: string) => void): void {
    this.listeners.push(listener);
  }

  async alive(ids: string[]): Promise<boolean[]> {
    if (ids.length === 0) return [];
    const values = await redisCall(this.client, () => this.client.mGet(ids.map((id) => this.aliveKey(id))));
    return values.map((value) => value !== null);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await redisCall(this.client, () => this.client.del(this.aliveKey(this.selfId))).catch(() => undefined);
    await this.subscriber.close().catch(() => this.subscriber.destroy());
  }
}
