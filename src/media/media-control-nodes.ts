/**
 * BROKER_MEDIA=nodes: a city's media nodes register in Redis (node-registry.ts). A new forward goes to
 * the least-loaded live node that reaches the channel's network; placements are kept in Redis so every
 * broker instance can stop, disconnect and build play URLs for them. Every broker polls every node's
 * /load each second: failures it finds there, and nodes whose registration lapsed or whose process was
 * replaced, are reported through onForwardFailed (duplicates across brokers are harmless: failing a
 * forward is fenced).
 */
import type { Logger } from 'pino';
import { MediaUnavailableError, SourceInvalidError, SourceUnavailableError, type MediaNodeLoad, type PlayUrls } from '../core/ports.js';
import type { VideoCodecName } from '../core/model.js';
import type { RtpMediaControl } from './gb-play.js';
import { MediaNodeClient, MediaNodeUnavailableError } from './media-node-client.js';
import { claimPlayerEvents, reportTranscodeFailures, type ForwardFailedListener, type PlayerEventsListener, type TranscodeFailedListener } from './node-watch.js';
import { buildPlayUrls } from './play-urls.js';
import { registryKeys, type NodeRegistration, type Placement, type RegistryRedis, type StartFailureKind } from './node-registry.js';

/** A joiner waits this much longer than the source timeout for a start on another broker. */
const JOIN_SLACK_MS = 10_000;
const JOIN_POLL_MS = 100;
/** A failed start is remembered this long for late joiners of its forward. */
const START_FAILURE_TTL_MS = 60_000;

const failureKind = (error: unknown): StartFailureKind =>
  error instanceof SourceUnavailableError ? 'source-unavailable' : error instanceof SourceInvalidError ? 'source-invalid' : 'media-unavailable';

/** The error the first viewer got, for a joiner of the same forward (the port's own error classes). */
function failureError(kind: string, channelId: string): Error {
  if (kind === 'source-unavailable') return new SourceUnavailableError(`no media from the source of ${channelId} in time`);
  if (kind === 'source-invalid') return new SourceInvalidError(`the media node will not relay the source of ${channelId}`);
  return new MediaUnavailableError(`no media node could start ${channelId}`);
}

export interface NodesMediaOptions {
  redis: RegistryRedis;
  prefix: string;
  /** Shared by all media nodes of the city (MEDIA_CONTROL_SECRET). */
  controlSecret: string;
  playSecret: string;
  sourceTimeoutMs: number;
  /** BROKER_MAX_PLAYERS_PER_SESSION: each node enforces its own MEDIA_MAX_PLAYERS_PER_SESSION; a node that differs is named in the log. */
  maxPlayersPerSession?: number;
  logger: Logger;
  pollIntervalMs?: number;
}

interface KnownNode {
  registration: NodeRegistration;
  client: MediaNodeClient;
  lastFailureSeq: number;
  lastTranscodeFailureSeq: number;
  /** Forwards this broker is placing right now; registrations lag by up to a heartbeat. */
  pending: number;
  /** Placements recorded in Redis for this node (as of the last refresh, plus ours since). */
  placed: number;
}

export async function createNodesMediaControl(options: NodesMediaOptions): Promise<RtpMediaControl> {
  const { redis } = options;
  const keys = registryKeys(options.prefix);
  const log = options.logger.child({ component: 'media-nodes' });
  const listeners: ForwardFailedListener[] = [];
  const playerListeners: PlayerEventsListener[] = [];
  const reportPlayers: PlayerEventsListener = (report) => {
    for (const listener of playerListeners) listener(report);
  };
  const known = new Map<string, KnownNode>();
  const transcodeListeners: TranscodeFailedListener[] = [];
  const reportTranscodeFailed: TranscodeFailedListener = (channelId, sessionIds) => {
    for (const listener of transcodeListeners) listener(channelId, sessionIds);
  };

  const report = (channelId: string, fence: number) => {
    for (const listener of listeners) {
      try {
        listener(channelId, fence);
      } catch (error) {
        log.error({ err: (error as Error).message, channelId, fence }, 'forward-failed listener threw');
      }
    }
  };

  const placementOf = async (channelId: string): Promise<Placement | null> => {
    const raw = await redis.hGet(keys.placements, channelId);
    return raw ? (JSON.parse(raw) as Placement) : null;
  };

  /** Report a forward failed if the placement still names it; whoever removes it first reports. */
  const failPlaced = async (channelId: string, fence: number, nodeId: string, reason: string) => {
    const placement = await placementOf(channelId);
    if (!placement || placement.nodeId !== nodeId || placement.fence !== fence) return;
    await redis.hDel(keys.placements, channelId);
    log.warn({ channelId, fence, nodeId, reason }, 'forward failed');
    report(channelId, fence);
  };

  /** A start failed: its placement goes, and its cause stays a while for joiners on other brokers. */
  const startFailed = async (channelId: string, fence: number, nodeId: string | undefined, error: unknown) => {
    try {
      await redis.set(keys.startFailure(channelId, fence), failureKind(error), { expiration: { type: 'PX', value: START_FAILURE_TTL_MS } });
      const placement = await placementOf(channelId);
      if (placement && placement.nodeId === nodeId && placement.fence === fence) await redis.hDel(keys.placements, channelId);
    } catch (recordError) {
      // Joiners then wait until their own deadline; the first viewer's answer is unchanged.
      log.warn({ err: (recordError as Error).message, channelId, fence }, 'could not record a failed start');
    }
  };

  const nodeLost = async (nodeId: string, reason: string) => {
    known.delete(nodeId);
    const placements = await redis.hGetAll(keys.placements);
    for (const [channelId, raw] of Object.entries(placements)) {
      const placement = JSON.parse(raw) as Placement;
      if (placement.nodeId === nodeId) await failPlaced(channelId, placement.fence, nodeId, reason);
    }
  };

  const refresh = async () => {
    const ids = await redis.sMembers(keys.nodes);
    const raws = ids.length > 0 ? await redis.mGet(ids.map((id) => keys.node(id))) : [];
    const live = new Set<string>();
    for (const [i, id] of ids.entries()) {
      const raw = raws[i];
      if (!raw) {
        await redis.sRem(keys.nodes, id);
        continue;
      }
      const registration = JSON.parse(raw) as NodeRegistration;
      const previous = known.get(id);
      if (previous && previous.registration.instance !== registration.instance) await nodeLost(id, 'node-restarted');
      const node = known.get(id);
      if (node) node.registration = registration;
      else {
        const client = new MediaNodeClient({
          controlUrl: registration.controlUrl,
          controlSecret: options.controlSecret,
          sourceTimeoutMs: options.sourceTimeoutMs,
        });
        known.set(id, { registration, client, lastFailureSeq: 0, lastTranscodeFailureSeq: 0, pending: 0, placed: 0 });
        const nodeLimit = registration.maxPlayersPerSession;
        if (options.maxPlayersPerSession !== undefined && nodeLimit !== options.maxPlayersPerSession) {
          log.warn(
            { nodeId: id, node: nodeLimit ?? null, broker: options.maxPlayersPerSession },
            'media node admits a different number of players per session than BROKER_MAX_PLAYERS_PER_SESSION: set its MEDIA_MAX_PLAYERS_PER_SESSION to match',
          );
        }
      }
      live.add(id);
    }
    for (const id of [...known.keys()]) if (!live.has(id)) await nodeLost(id, 'registration-lapsed');
    const placedOn = new Map<string, number>();
    for (const [channelId, raw] of Object.entries(await redis.hGetAll(keys.placements))) {
      const placement = JSON.parse(raw) as Placement;
      placedOn.set(placement.nodeId, (placedOn.get(placement.nodeId) ?? 0) + 1);
      // Placements on nodes no broker knows any more (e.g. lost while every broker was down).
      if (!live.has(placement.nodeId)) await failPlaced(channelId, placement.fence, placement.nodeId, 'node-gone');
    }
    for (const [id, node] of known) node.placed = placedOn.get(id) ?? 0;
    await Promise.all(
      [...known.entries()].map(async ([id, node]) => {
        const load = await node.client.load().catch(() => null);
        for (const failure of load?.failed ?? []) {
          if (failure.seq <= node.lastFailureSeq) continue;
          node.lastFailureSeq = failure.seq;
          await failPlaced(failure.channelId, failure.fence, id, failure.reason);
        }
        // Every broker ends the sessions (ending one already ended is a no-op).
        if (load) node.lastTranscodeFailureSeq = reportTranscodeFailures(load, node.lastTranscodeFailureSeq, reportTranscodeFailed, log);
        // Every broker claims; the node hands each event to one of them.
        if (load) await claimPlayerEvents(node.client, id, reportPlayers, log);
      }),
    );
  };

  let refreshing = false;
  const tick = () => {
    if (refreshing) return;
    refreshing = true;
    refresh()
      .catch((error: unknown) => log.warn({ err: (error as Error).message }, 'media node refresh failed'))
      .finally(() => (refreshing = false));
  };
  await refresh();
  const poller = setInterval(tick, options.pollIntervalMs ?? 1000);
  poller.unref();

  const nodeOf = (nodeId: string) => {
    const node = known.get(nodeId);
    if (!node) throw new MediaNodeUnavailableError(`media node ${nodeId} is not registered`);
    return node;
  };

  /** The least-loaded live node that reaches the network and has room (a failed choice is recorded for joiners). */
  const choose = async (channelId: string, network: string, fence: number): Promise<KnownNode> => {
    const candidates = [...known.values()]
      .filter((n) => (n.registration.networks as string[]).includes(network))
      .map((n) => ({ n, used: Math.max(n.registration.forwards, n.placed) + n.pending }))
      .filter(({ n, used }) => used < n.registration.maxForwards)
      .sort(
        (a, b) =>
          a.used / a.n.registration.maxForwards - b.used / b.n.registration.maxForwards ||
          a.n.registration.bytesPerSecond - b.n.registration.bytesPerSecond,
      );
    const chosen = candidates[0]?.n;
    if (!chosen) {
      const error = new MediaNodeUnavailableError(`no live media node reaches network ${network} with room`);
      await startFailed(channelId, fence, undefined, error);
      throw error;
    }
    return chosen;
  };

  /** GB/T 28181 starts between the RTP port and the first picture, by channel#fence: their node counts them pending. */
  const rtpStarts = new Map<string, KnownNode>();
  const startKey = (channelId: string, fence: number) => `${channelId}#${fence}`;
  const endRtpStart = (channelId: string, fence: number) => {
    const node = rtpStarts.get(startKey(channelId, fence));
    if (!node) return;
    rtpStarts.delete(startKey(channelId, fence));
    node.pending -= 1;
  };

  return {
    async startForward({ channelId, network, sourceUrl, fence }) {
      const chosen = await choose(channelId, network, fence);
      const nodeId = chosen.registration.id;
      chosen.pending += 1;
      let codec: VideoCodecName | undefined;
      try {
        await redis.hSet(keys.placements, channelId, JSON.stringify({ nodeId, fence, starting: true } satisfies Placement));
        ({ codec } = await chosen.client.startForward(channelId, sourceUrl, fence));
      } catch (error) {
        await startFailed(channelId, fence, nodeId, error);
        throw error;
      } finally {
        chosen.pending -= 1;
      }
      chosen.placed += 1;
      await redis.hSet(keys.placements, channelId, JSON.stringify({ nodeId, fence } satisfies Placement));
      return { nodeId, codec };
    },
    async openRtpServer({ channelId, network, fence, transport, ssrcPrefix }) {
      const chosen = await choose(channelId, network, fence);
      const nodeId = chosen.registration.id;
      // Counted as pending until the first picture (awaitRtpForward) or the stop of a start that failed.
      chosen.pending += 1;
      rtpStarts.set(startKey(channelId, fence), chosen);
      try {
        await redis.hSet(keys.placements, channelId, JSON.stringify({ nodeId, fence, starting: true } satisfies Placement));
        const server = await chosen.client.openRtpServer(channelId, fence, transport, ssrcPrefix);
        return { nodeId, host: server.host, port: server.port, ssrc: server.ssrc };
      } catch (error) {
        endRtpStart(channelId, fence);
        await startFailed(channelId, fence, nodeId, error);
        throw error;
      }
    },
    async awaitRtpForward({ channelId, fence }) {
      const placement = await placementOf(channelId);
      const node = placement && placement.fence === fence ? known.get(placement.nodeId) : undefined;
      try {
        if (!node) throw new MediaNodeUnavailableError(`forward ${channelId}#${fence} has no RTP port on a live media node`);
        await node.client.awaitForward(channelId, fence);
      } catch (error) {
        endRtpStart(channelId, fence);
        await startFailed(channelId, fence, placement?.nodeId, error);
        throw error;
      }
      endRtpStart(channelId, fence);
      node.placed += 1;
      await redis.hSet(keys.placements, channelId, JSON.stringify({ nodeId: node.registration.id, fence } satisfies Placement));
    },
    rtpHosts() {
      // A node too old to say where its RTP ports listen is no address another broker may INVITE to.
      return [...known.values()].flatMap(({ registration }) => (registration.rtpHost ? [registration.rtpHost] : []));
    },
    async awaitForward({ channelId, fence }) {
      const deadline = Date.now() + options.sourceTimeoutMs + JOIN_SLACK_MS;
      for (;;) {
        const placement = await placementOf(channelId);
        if (placement && placement.fence === fence && !placement.starting) return;
        if (placement && placement.fence > fence) throw new MediaNodeUnavailableError(`forward ${channelId}#${fence} was superseded`);
        const failure = await redis.get(keys.startFailure(channelId, fence));
        if (failure) throw failureError(failure, channelId);
        if (Date.now() >= deadline) throw new MediaNodeUnavailableError(`forward ${channelId}#${fence} did not start in time`);
        await new Promise((resolve) => setTimeout(resolve, JOIN_POLL_MS));
      }
    },
    async stopForward(channelId, fence) {
      endRtpStart(channelId, fence);
      const placement = await placementOf(channelId);
      if (!placement || placement.fence !== fence) return;
      await redis.hDel(keys.placements, channelId);
      // A GB/T 28181 start given up on (the INVITE failed): joiners on other brokers learn it at once.
      if (placement.starting) await startFailed(channelId, fence, placement.nodeId, new SourceUnavailableError(`the start of ${channelId} was given up`));
      const node = known.get(placement.nodeId);
      if (!node) return;
      node.placed = Math.max(0, node.placed - 1);
      await node.client.stopForward(channelId, fence);
    },
    async startTranscode({ sessionId, channelId }) {
      const placement = await placementOf(channelId);
      if (!placement || placement.starting) throw new MediaNodeUnavailableError(`channel ${channelId} is not placed on a media node`);
      return nodeOf(placement.nodeId).client.startTranscode(channelId, sessionId);
    },
    async disconnectSession(sessionId, channelId, owner) {
      const placement = await placementOf(channelId);
      const node = placement ? known.get(placement.nodeId) : undefined;
      if (node) await node.client.endSession(sessionId, channelId, owner);
    },
    async players(sessionId, channelId) {
      const placement = await placementOf(channelId);
      const node = placement ? known.get(placement.nodeId) : undefined;
      if (!node) return [];
      return (await node.client.players(sessionId)).map(({ id, address, protocol, userAgent, since, bytes }) => ({ id, address, protocol, userAgent, since, bytes }));
    },
    async cutPlayer(sessionId, channelId, playerId) {
      const placement = await placementOf(channelId);
      const node = placement ? known.get(placement.nodeId) : undefined;
      return node ? node.client.cutPlayer(sessionId, playerId) : false;
    },
    onPlayerEvents(listener) {
      playerListeners.push(listener);
    },
    async playUrls(input): Promise<PlayUrls> {
      const placement = await placementOf(input.channelId);
      if (!placement) throw new MediaNodeUnavailableError(`channel ${input.channelId} is not placed on a media node`);
      const node = nodeOf(placement.nodeId);
      return buildPlayUrls(node.registration.baseUrl, options.playSecret, { ...input, nodeId: placement.nodeId });
    },
    onForwardFailed(listener) {
      listeners.push(listener);
    },
    onTranscodeFailed(listener) {
      transcodeListeners.push(listener);
    },
    async nodes(): Promise<MediaNodeLoad[]> {
      return [...known.values()].map(({ registration: r }) => ({
        id: r.id,
        baseUrl: r.baseUrl,
        networks: r.networks,
        maxForwards: r.maxForwards,
        forwards: r.forwards,
        players: r.players,
        bytesPerSecond: r.bytesPerSecond,
        alive: true,
      }));
    },
    async ready() {
      return known.size > 0;
    },
    async close() {
      clearInterval(poller);
    },
  };
}
