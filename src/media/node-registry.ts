/**
 * Media nodes of a city register in Redis (BROKER_MEDIA=nodes): each node refreshes its registration
 * every second with a 5 s TTL, so a node that dies drops out within seconds. The broker reads the
 * registrations to place forwards, and records placements so any broker instance can reach them.
 * Keys share the `{media}` hash tag, so MGET over node keys works on Redis Cluster.
 */
import type { Network } from '../core/model.js';

/** The few node-redis 5 commands used here; a `createClient()` client fits. */
export interface RegistryRedis {
  get(key: string): Promise<string | null | undefined>;
  set(key: string, value: string, options: { expiration: { type: 'PX'; value: number } }): Promise<unknown>;
  del(key: string): Promise<unknown>;
  sAdd(key: string, member: string): Promise<unknown>;
  sRem(key: string, member: string): Promise<unknown>;
  sMembers(key: string): Promise<string[]>;
  mGet(keys: string[]): Promise<Array<string | null>>;
  hSet(key: string, field: string, value: string): Promise<unknown>;
  hGet(key: string, field: string): Promise<string | null | undefined>;
  hGetAll(key: string): Promise<Record<string, string>>;
  hDel(key: string, field: string): Promise<unknown>;
}

export interface NodeRegistration {
  id: string;
  /** Random per process: a changed instance means the node restarted and lost its forwards. */
  instance: string;
  controlUrl: string;
  baseUrl: string;
  networks: Network[];
  maxForwards: number;
  forwards: number;
  players: number;
  bytesPerSecond: number;
  /** MEDIA_MAX_PLAYERS_PER_SESSION; absent from nodes older than issue 9. */
  maxPlayersPerSession?: number;
  /** MEDIA_RTP_HOST: where its GB/T 28181 RTP ports listen (the address INVITEs offer); absent from older nodes. */
  rtpHost?: string;
  at: number;
}

export interface Placement {
  nodeId: string;
  fence: number;
  /**
   * Written before the node is asked to start the relay, so that a viewer joining through another
   * broker finds the forward and waits for its start instead of failing (issue 8, point 15).
   */
  starting?: true;
}

/** Why a start failed, kept for the joiners of that forward on other brokers. */
export type StartFailureKind = 'source-unavailable' | 'media-unavailable' | 'source-invalid';

export const REGISTRATION_TTL_MS = 5000;
export const HEARTBEAT_MS = 1000;

export function registryKeys(prefix: string) {
  return {
    nodes: `${prefix}{media}:nodes`,
    node: (id: string) => `${prefix}{media}:node:${id}`,
    placements: `${prefix}{media}:placements`,
    startFailure: (channelId: string, fence: number) => `${prefix}{media}:start-failed:${channelId}:${fence}`,
  };
}

/** The node side: register now and every second until stopped; stopping deregisters. */
export async function startRegistration(
  redis: RegistryRedis,
  prefix: string,
  current: () => NodeRegistration,
  onError: (error: Error) => void,
): Promise<{ stop(): Promise<void> }> {
  const keys = registryKeys(prefix);
  const beat = async () => {
    const registration = current();
    await redis.set(keys.node(registration.id), JSON.stringify(registration), {
      expiration: { type: 'PX', value: REGISTRATION_TTL_MS },
    });
    await redis.sAdd(keys.nodes, registration.id);
  };
  await beat();
  const timer = setInterval(() => void beat().catch(onError), HEARTBEAT_MS);
  return {
    async stop() {
      clearInterval(timer);
      const { id } = current();
      await redis.del(keys.node(id));
      await redis.sRem(keys.nodes, id);
    },
  };
}
