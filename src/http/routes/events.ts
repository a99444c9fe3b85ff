/**
 * GET /events: the live-events WebSocket. The auth plugin has already refused a missing or bad token
 * with a plain 401 before the upgrade (browsers cannot set headers here, so `?token=` is accepted).
 * Each client gets the events that concern it (see `mayReceive`) as JSON text frames `{type, at, ...}`.
 *
 * Limits, all from config: per-token connection cap (close 1008), a send buffer cap that drops slow
 * readers (close 1013, "try again later") instead of letting the broker's memory grow, the inbound
 * frame size (wsMaxPayloadBytes, set on the WebSocket server in app.ts), and a ping every 30 s that
 * terminates sockets whose peer is gone without a close and closes those whose credentials stopped
 * being valid (token expired, user disabled, key revoked).
 * @see ../../../shared/API.md "Live events"
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-7.4.1 (close codes 1008, 1013)
 */
import { createHash } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { WebSocket } from 'ws';
import type { Config } from '../../config.js';
import type { BrokerEvent, EventBus } from '../../core/events.js';
import { ExpiryNotices } from '../../core/expiry-notices.js';
import type { Principal } from '../../core/model.js';
import type { SlotStore } from '../../core/ports.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../../core/errors.js';
import { principalOf, type Authenticator } from '../plugins/auth.js';

export interface EventRoutesOptions {
  events: EventBus;
  slots: SlotStore;
  config: Pick<Config, 'leaseTtlSeconds' | 'wsMaxBufferedBytes' | 'wsMaxConnectionsPerToken'>;
  /** Re-checks each socket's credentials at every keepalive: a disabled user or an expired token is closed (1008). */
  authenticator: Authenticator;
  /** Keepalive: a socket that did not answer the previous ping by the next one is terminated. Default 30 s. */
  pingIntervalMs?: number;
}

const CLOSE_POLICY_VIOLATION = 1008;
const CLOSE_TRY_AGAIN_LATER = 1013;
const CLOSE_GOING_AWAY = 1001;

/**
 * Who sees what (API.md: "A client sees only its own sessions' events; admins: their agency's"):
 * capacity goes to everyone; platform-admins see all; admins their agency's; operators and services
 * the events of their own sessions and reservations.
 */
export function mayReceive(principal: Principal, event: BrokerEvent): boolean {
  if (event.type === 'capacity' || principal.role === 'platform-admin') return true;
  if (principal.role === 'admin') return event.agencyId === principal.agencyId;
  return event.principalId === principal.id;
}

interface Client {
  socket: WebSocket;
  principal: Principal;
  /** The Authorization value it connected with, re-checked at each keepalive. */
  authorization: string;
  alive: boolean;
}

const EventsQuery = Type.Object({ token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })) }, { additionalProperties: false });

export const eventRoutes: FastifyPluginAsyncTypebox<EventRoutesOptions> = async (app, { events, slots, config, authenticator, pingIntervalMs = 30_000 }) => {
  const clients = new Set<Client>();
  const connectionsPerCredential = new Map<string, number>();

  const send = (client: Client, text: string) => {
    const { socket } = client;
    if (socket.readyState !== socket.OPEN) return;
    if (socket.bufferedAmount > config.wsMaxBufferedBytes) {
      socket.close(CLOSE_TRY_AGAIN_LATER, 'events not read fast enough');
      return;
    }
    socket.send(text);
  };
  const deliver = (event: BrokerEvent) => {
    let text: string | undefined;
    for (const client of clients) {
      if (!mayReceive(client.principal, event)) continue;
      text ??= JSON.stringify(event);
      send(client, text);
    }
  };

  // Every broker process reads the shared slot store and notices its own clients' expiring leases: handed
  // to the local sockets only, since the same notice published on a cross-process bus would reach each
  // client once per broker process. Checks run only while someone listens.
  const notices = new ExpiryNotices({ slots, publish: deliver, leaseTtlMs: config.leaseTtlSeconds * 1000, log: app.log });
  const unsubscribe = events.subscribe(deliver);

  const keepalive = setInterval(() => {
    for (const client of clients) {
      if (!client.alive) {
        client.socket.terminate();
        continue;
      }
      if (authenticator.authenticate(client.authorization)?.id !== client.principal.id) {
        client.socket.close(CLOSE_POLICY_VIOLATION, 'credentials no longer valid');
        continue;
      }
      client.alive = false;
      client.socket.ping();
    }
  }, pingIntervalMs);
  keepalive.unref();

  app.addHook('onClose', async () => {
    clearInterval(keepalive);
    unsubscribe();
    for (const client of clients) client.socket.close(CLOSE_GOING_AWAY, 'server shutting down');
    await notices.stop();
  });

  const schema = { tags: ['events'], querystring: EventsQuery, description: 'WebSocket; JSON messages {type, at, ...} (see API.md "Live events")' };
  // A plain GET (no upgrade) would get @fastify/websocket's empty 404: after authentication, it gets 426
  // in the error shape instead (API.md "Conventions").
  const upgradeRequired = async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.ws) return;
    void reply.header('upgrade', 'websocket');
    throw new DomainError('UPGRADE_REQUIRED', 426, 'GET /events is a WebSocket: connect with Upgrade: websocket');
  };
  app.get('/events', { websocket: true, schema, preHandler: upgradeRequired }, (socket, request) => {
    const principal = principalOf(request);
    // Counted per credential, not per principal: one person's several devices each hold their own token.
    const query = request.query as { token?: string };
    const authorization = request.headers.authorization ?? `Bearer ${query.token ?? ''}`;
    const credential = createHash('sha256').update(authorization).digest('base64url');
    const open = connectionsPerCredential.get(credential) ?? 0;
    if (open >= config.wsMaxConnectionsPerToken) {
      socket.close(CLOSE_POLICY_VIOLATION, `at most ${config.wsMaxConnectionsPerToken} event connections per token`);
      return;
    }
    connectionsPerCredential.set(credential, open + 1);
    const client: Client = { socket, principal, authorization, alive: true };
    clients.add(client);
    if (clients.size === 1) notices.start();

    socket.on('pong', () => {
      client.alive = true;
    });
    socket.on('error', (err) => request.log.debug({ err }, 'events socket error'));
    socket.on('close', () => {
      clients.delete(client);
      const left = (connectionsPerCredential.get(credential) ?? 1) - 1;
      if (left > 0) connectionsPerCredential.set(credential, left);
      else connectionsPerCredential.delete(credential);
      if (clients.size === 0) void notices.stop();
    });

    slots.usage().then(
      (usage) => send(client, JSON.stringify({ type: 'capacity', at: new Date().toISOString(), forwarding: usage.forwarding, analytics: usage.analytics })),
      (err: unknown) => request.log.warn({ err }, 'initial capacity snapshot skipped'),
    );
  });
};
