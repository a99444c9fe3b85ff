/**
 * GET /metrics: Prometheus text exposition. It carries per-agency usage and login counts, so it is not
 * public (API.md "Operations"): with `BROKER_METRICS_TOKEN` set it answers only
 * `Authorization: Bearer <token>` (from any address, loopback too); without it, only loopback clients.
 * Everyone else gets 403. The address is the socket's own peer, never a forwarded header.
 *
 * Each app has its own Registry (not prom-client's global one) so tests and tools may build several.
 * Counters come from the audit log as it is written (the same facts as the evidence, never a second
 * opinion) and from finished requests; gauges are read from the slot store and media plane at scrape time.
 * @see https://prometheus.io/docs/practices/naming/
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIPv4 } from 'node:net';
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { forbidden } from '../../core/errors.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { requestsOf } from '../../core/denial-coalescer.js';
import type { AuditService } from '../../core/audit-service.js';
import type { AuditEntry } from '../../core/model.js';
import type { MediaControl, SlotStore } from '../../core/ports.js';

export interface MetricsOptions {
  slots: Pick<SlotStore, 'usage'>;
  media: Pick<MediaControl, 'nodes'>;
  audit: Pick<AuditService, 'onRecord'>;
  /** Where the API is mounted, to recognise the lease routes (default /api/v1). */
  apiPrefix?: string;
  /** BROKER_METRICS_TOKEN: when set, the only credential /metrics accepts; unset: loopback clients only. */
  token?: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry;
  }
}

/** Audit action → the pool it concerns and what happened; the reason label comes from the entry. */
const POOL_OF_ACTION: Record<string, 'forwarding' | 'analytics'> = { stream: 'forwarding', analytics: 'analytics' };
const END_VERBS = new Set(['release', 'expire', 'preempt', 'revoke', 'source-failed']);

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback: the peer of the TCP connection itself. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.toLowerCase().startsWith('::ffff:') ? address.slice(7) : address;
  if (isIPv4(v4)) return v4.startsWith('127.');
  return address === '::1' || address === '0:0:0:0:0:0:0:1';
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Who may scrape. The bearer value is compared in constant time on digests (equal lengths, so
 * timingSafeEqual never throws and the length of the secret does not leak either).
 */
function scrapeAllowed(request: FastifyRequest, token: string | undefined): boolean {
  if (token === undefined) return isLoopback(request.socket.remoteAddress);
  const match = /^bearer +(\S+) *$/i.exec(request.headers.authorization ?? '');
  return match !== null && timingSafeEqual(digest(match[1]!), digest(token));
}

async function metricsPlugin(app: FastifyInstance, opts: MetricsOptions) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const prefix = opts.apiPrefix ?? '/api/v1';

  const poolLimit = new Gauge({ name: 'broker_pool_limit', help: 'Slots in the pool', labelNames: ['pool'], registers: [registry] });
  const poolUsed = new Gauge({ name: 'broker_pool_used', help: 'Slots in use (forwarding: distinct channels; analytics: reservations)', labelNames: ['pool'], registers: [registry] });
  const poolQueued = new Gauge({ name: 'broker_pool_queued', help: 'Requests waiting in the queue for a slot', labelNames: ['pool'], registers: [registry] });
  const agencyUsed = new Gauge({ name: 'broker_agency_slots_used', help: 'Slots an agency holds', labelNames: ['agency', 'pool'], registers: [registry] });
  const nodeForwards = new Gauge({ name: 'broker_media_node_forwards', help: 'Channels a media node relays', labelNames: ['node'], registers: [registry] });
  const nodeMaxForwards = new Gauge({ name: 'broker_media_node_max_forwards', help: 'Channels a media node may relay', labelNames: ['node'], registers: [registry] });
  const nodePlayers = new Gauge({ name: 'broker_media_node_players', help: 'Players connected to a media node', labelNames: ['node'], registers: [registry] });
  const nodeBytes = new Gauge({ name: 'broker_media_node_bytes_per_second', help: 'Bytes per second a media node sends', labelNames: ['node'], registers: [registry] });
  const nodeAlive = new Gauge({ name: 'broker_media_node_alive', help: '1 when the media node answers', labelNames: ['node'], registers: [registry] });
  const scrapeErrors = new Counter({ name: 'broker_metrics_source_errors_total', help: 'Scrapes where a gauge source (slot store, media plane) did not answer', labelNames: ['source'], registers: [registry] });

  const grants = new Counter({ name: 'broker_grants_total', help: 'Slots granted', labelNames: ['pool'], registers: [registry] });
  const denials = new Counter({ name: 'broker_denials_total', help: 'Slot requests refused, by reason', labelNames: ['pool', 'reason'], registers: [registry] });
  const ends = new Counter({ name: 'broker_leases_ended_total', help: 'Sessions and reservations ended, by reason', labelNames: ['pool', 'reason'], registers: [registry] });
  const heartbeatFailures = new Counter({ name: 'broker_lease_heartbeat_failures_total', help: 'Heartbeats refused (lease ended or unknown)', labelNames: ['pool'], registers: [registry] });
  const heartbeats = new Counter({ name: 'broker_lease_heartbeats_total', help: 'Leases renewed by a heartbeat', labelNames: ['pool'], registers: [registry] });
  const auditEntries = new Counter({ name: 'broker_audit_entries_total', help: 'Audit entries written', labelNames: ['outcome'], registers: [registry] });
  const queueWait = new Histogram({
    name: 'broker_queue_wait_seconds',
    help: 'Time a queued stream request (waitSeconds > 0) took to be answered',
    labelNames: ['outcome'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30],
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: 'broker_http_request_duration_seconds',
    help: 'HTTP request latency by route, method and status class',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });

  opts.audit.onRecord((entry: AuditEntry) => {
    auditEntries.inc({ outcome: entry.outcome });
    const dot = entry.action.indexOf('.');
    const pool = POOL_OF_ACTION[entry.action.slice(0, dot)];
    if (!pool) return;
    const verb = entry.action.slice(dot + 1);
    // A summary of repeated denials counts every request it stands for (denial-coalescer.ts).
    const requests = requestsOf(entry);
    if (verb === 'grant' && entry.outcome === 'ok') grants.inc({ pool });
    else if (verb === 'deny') denials.inc({ pool, reason: entry.reason ?? 'unknown' }, requests);
    else if (END_VERBS.has(verb)) ends.inc({ pool, reason: entry.reason ?? verb });
    else if (verb === 'heartbeat' && entry.outcome !== 'ok') heartbeatFailures.inc({ pool }, requests);
  });

  const heartbeatRoutes: Record<string, 'forwarding' | 'analytics'> = {
    [`${prefix}/streams/:id/heartbeat`]: 'forwarding',
    [`${prefix}/analytics/reservations/:id/heartbeat`]: 'analytics',
  };
  const openStreamRoute = `${prefix}/streams`;
  const waited = (request: FastifyRequest) => {
    const body = request.body as { waitSeconds?: unknown } | undefined;
    return typeof body?.waitSeconds === 'number' && body.waitSeconds > 0;
  };

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url;
    const status = reply.statusCode;
    const seconds = reply.elapsedTime / 1000;
    // Unmatched URLs share one label: a scanner must not create a series per path it tries.
    httpDuration.observe({ route: route ?? 'unmatched', method: request.method, status: `${Math.floor(status / 100)}xx` }, seconds);
    if (!route || request.method !== 'POST') return;
    const leasePool = heartbeatRoutes[route];
    if (leasePool && status === 200) heartbeats.inc({ pool: leasePool });
    else if (route === openStreamRoute && waited(request)) queueWait.observe({ outcome: status === 201 ? 'granted' : 'refused' }, seconds);
  });

  /** Gauges are set from their sources at scrape time; a source that fails leaves its gauges empty, not stale. */
  async function refreshGauges() {
    const [usage, nodes] = await Promise.allSettled([opts.slots.usage(), opts.media.nodes()]);
    // Reset after the await, so concurrent scrapes never see a half-filled set; gone agencies and nodes drop out.
    for (const gauge of [poolLimit, poolUsed, poolQueued, agencyUsed, nodeForwards, nodeMaxForwards, nodePlayers, nodeBytes, nodeAlive]) gauge.reset();
    if (usage.status === 'fulfilled') {
      const { forwarding, analytics, agencies } = usage.value;
      poolLimit.set({ pool: 'forwarding' }, forwarding.limit);
      poolUsed.set({ pool: 'forwarding' }, forwarding.used);
      poolQueued.set({ pool: 'forwarding' }, forwarding.queued);
      poolLimit.set({ pool: 'analytics' }, analytics.limit);
      poolUsed.set({ pool: 'analytics' }, analytics.used);
      for (const [agency, held] of Object.entries(agencies)) {
        agencyUsed.set({ agency, pool: 'forwarding' }, held.forwarding);
        agencyUsed.set({ agency, pool: 'analytics' }, held.analytics);
      }
    } else {
      scrapeErrors.inc({ source: 'slots' });
      app.log.warn({ err: usage.reason }, 'metrics: slot usage unavailable');
    }
    if (nodes.status === 'fulfilled') {
      for (const node of nodes.value) {
        nodeForwards.set({ node: node.id }, node.forwards);
        nodeMaxForwards.set({ node: node.id }, node.maxForwards);
        nodePlayers.set({ node: node.id }, node.players);
        nodeBytes.set({ node: node.id }, node.bytesPerSecond);
        nodeAlive.set({ node: node.id }, node.alive ? 1 : 0);
      }
    } else {
      scrapeErrors.inc({ source: 'media' });
      app.log.warn({ err: nodes.reason }, 'metrics: media node load unavailable');
    }
  }

  app.decorate('metrics', registry);
  app.get('/metrics', {
    // Not a user credential: the auth plugin lets it through, the handler checks the scrape rule.
    config: { public: true },
    schema: {
      tags: ['operations'],
      produces: [registry.contentType],
      description: 'Prometheus text exposition: `Authorization: Bearer <BROKER_METRICS_TOKEN>` when that is set, else loopback clients only (403 otherwise)',
    },
    handler: async (request, reply) => {
      if (!scrapeAllowed(request, opts.token)) {
        throw forbidden(opts.token === undefined ? 'metrics are served to loopback clients only' : 'metrics need the metrics bearer token');
      }
      await refreshGauges();
      return reply.type(registry.contentType).send(await registry.metrics());
    },
  });
}

export default fp(metricsPlugin, { name: 'metrics', fastify: '5.x', dependencies: ['auth'] });
