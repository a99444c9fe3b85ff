/**
 * GET /events: the live-events WebSocket. The auth plugin has already refused a missing or bad token
 * with a plain 401 before the upgrade (browsers cannot set headers here, so `?token=` is accepted).
 * Each client gets the events that concern it (see `mayReceive`) as JSON text frames `{type, at, ...}`.
 *
 * Limits, all from config: per-token connection cap (close 1008), a send buffer cap that drops slow
 * readers (close 1013, "try again later") instead of letting the broker's memory grow, the inbound
 * frame size (wsMaxPayloadBytes, set on the WebSocket server in app.ts), and a ping every 30 s that
 * terminates sockets whose peer is gone without a close.
 *
 * Every `wsAuthRecheckSeconds` each socket's credentials are checked again; a socket whose token
 * expired, whose user was disabled or changed password, or whose key was revoked is closed with 4401
 * (API.md: "within a few seconds"). The timers here run outside any request: nothing in them may
 * throw, since an exception there has no handler but the process's (issue 8, point 1: it exited).
 * @see ../../../shared/API.md "Live events"
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-7.4.1 (close codes 1008, 1013; 4000-4999 are the application's)
 */
import { createHash } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { WebSocket } from 'ws';
import type { Config } from '../../config.js';
import { parseAuthorization, type Credentials } from '../../accounts/authorization-header.js';
import { DomainError } from '../../core/errors.js';
import type { BrokerEvent, EventBus } from '../../core/events.js';
import { ExpiryNotices } from '../../core/expiry-notices.js';
import type { Principal } from '../../core/model.js';
import type { AccessControl, SlotStore } from '../../core/ports.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { principalOf, type Authenticator } from '../plugins/auth.js';

export interface EventRoutesOptions {
  events: EventBus;
  slots: SlotStore;
  access: AccessControl;
  config: Pick<Config, 'leaseTtlSeconds' | 'wsMaxBufferedBytes' | 'wsMaxConnectionsPerToken' | 'wsAuthRecheckSeconds'>;
  /** Re-checks each socket's credentials every `wsAuthRecheckSeconds`: those no longer valid are closed (4401). */
  authenticator: Authenticator;
  /** Keepalive: a socket that did not answer the previous ping by the next one is terminated. Default 30 s. */
  pingIntervalMs?: number;
}

const CLOSE_POLICY_VIOLATION = 1008;
const CLOSE_TRY_AGAIN_LATER = 1013;
const CLOSE_GOING_AWAY = 1001;
/** The application's "401": the credentials this socket connected with are no longer valid. */
export const CLOSE_UNAUTHENTICATED = 4401;

/**
 * Who sees what (API.md: "A client sees only its own sessions' events; admins: their agency's"):
 * capacity (pool totals, no agency's detail) goes to everyone; an event about a session or a
 * reservation goes to whoever may read that object, as the authorizer decides (platform-admins all,
 * admins their agency's, operators and services their own).
 */
export function mayReceive(access: AccessControl, principal: Principal, event: BrokerEvent): boolean {
  if (event.type === 'capacity') return true;
  const action = event.type === 'reservation.ended' ? 'analytics:read' : 'stream:read';
  return access.can(principal, action, { agencyId: event.agencyId, ownerId: event.principalId });
}

interface Client {
  socket: WebSocket;
  principal: Principal;
  /** The credentials it connected with, in their one canonical spelling, re-checked periodically. */
  authorization: string;
  alive: boolean;
}

/**
 * One spelling per credential, however it was sent (`bearer`, `BEARER`, extra spaces, `?token=`):
 * the per-token cap counts this, so re-spelling a header cannot open more sockets (issue 8, point 9).
 */
function canonicalAuthorization(credentials: Credentials): string {
  return credentials.kind === 'bearer' ? `Bearer ${credentials.token}` : `ApiKey ${credentials.key}`;
}

const EventsQuery = Type.Object({ token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })) }, { additionalProperties: false });

export const eventRoutes: FastifyPluginAsyncTypebox<EventRoutesOptions> = async (app, { events, slots, access, config, authenticator, pingIntervalMs = 30_000 }) => {
  const clients = new Set<Client>();
  const connectionsPerCredential = new Map<string, number>();

  /** Runs `action` on one client; a failure there is logged and ends that socket, never the loop or the process. */
  const guarded = (client: Client, what: string, action: () => void) => {
    try {
      action();
    } catch (err) {
      app.log.error({ err, principalId: client.principal.id }, `events: ${what} failed; dropping the socket`);
      client.socket.terminate();
    }
  };
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
      if (!mayReceive(access, client.principal, event)) continue;
      text ??= JSON.stringify(event);
      const frame = text;
      guarded(client, 'send', () => send(client, frame));
    }
  };
  /**
   * Still the same principal with the same credentials? `authenticate` throws a DomainError (401) for
   * an expired token, a changed password, a disabled user or a revoked key: here that is an answer,
   * not an error, and it must not leave this function (it runs from a timer).
   */
  const stillValid = (client: Client): boolean => {
    try {
      return authenticator.authenticate(client.authorization)?.id === client.principal.id;
    } catch (err) {
      if (!(err instanceof DomainError)) app.log.error({ err, principalId: client.principal.id }, 'events: credential re-check failed');
      return false;
    }
  };

  // Every broker process reads the shared slot store and notices its own clients' expiring leases: handed
  // to the local sockets only, since the same notice published on a cross-process bus would reach each
  // client once per broker process. Checks run only while someone listens.
  const notices = new ExpiryNotices({ slots, publish: deliver, leaseTtlMs: config.leaseTtlSeconds * 1000, log: app.log });
  const unsubscribe = events.subscribe(deliver);

  const keepalive = setInterval(() => {
    for (const client of clients) {
      guarded(client, 'keepalive', () => {
        if (!client.alive) {
          client.socket.terminate();
          return;
        }
        if (client.socket.readyState !== client.socket.OPEN) return;
        client.alive = false;
        client.socket.ping();
      });
    }
  }, pingIntervalMs);
  keepalive.unref();

  const recheck = setInterval(() => {
    for (const client of clients) {
      guarded(client, 'credential re-check', () => {
        if (client.socket.readyState !== client.socket.OPEN || stillValid(client)) return;
        client.socket.close(CLOSE_UNAUTHENTICATED, 'credentials no longer valid');
      });
    }
  }, config.wsAuthRecheckSeconds * 1000);
  recheck.unref();

  app.addHook('onClose', async () => {
    clearInterval(keepalive);
    clearInterval(recheck);
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
    // The auth plugin authenticated exactly this (the header, else ?token=), so it parses.
    const query = request.query as { token?: string };
    const credentials = parseAuthorization(request.headers.authorization ?? `Bearer ${query.token ?? ''}`);
    if (!credentials) {
      socket.close(CLOSE_UNAUTHENTICATED, 'credentials not understood');
      return;
    }
    const authorization = canonicalAuthorization(credentials);
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
      if (clients.size === 0) notices.stop().catch((err: unknown) => request.log.warn({ err }, 'expiry notices: stop failed'));
    });

    slots.usage().then(
      (usage) =>
        guarded(client, 'initial capacity snapshot', () =>
          send(client, JSON.stringify({ type: 'capacity', at: new Date().toISOString(), forwarding: usage.forwarding, analytics: usage.analytics })),
        ),
      (err: unknown) => request.log.warn({ err }, 'initial capacity snapshot skipped'),
    );
  });
};
