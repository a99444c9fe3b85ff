import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Readable } from 'node:stream';
import { Type, type Static } from '@sinclair/typebox';
import { ChannelList, ChannelListQuery, ChannelParams, ChannelStats, ImportResult, PatchChannelBody } from '../schemas/channels.js';
import { errors } from '../schemas/common.js';
import { principalOf } from '../plugins/auth.js';
import type { CatalogService } from '../../core/catalog-service.js';
import { channelPageBody } from '../channel-json.js';
import { parseCsv, parseNdjson } from '../../core/channel-import.js';
import { DomainError, badRequest } from '../../core/errors.js';
import type { ChannelClass, ChannelStatus, Network } from '../../core/model.js';

const IMPORT_TYPES = ['application/x-ndjson', 'text/csv'];

/** Counts bytes as they stream in; the import body is never buffered whole, so the limit is ours to keep. */
async function* limited(body: Readable, maxBytes: number): AsyncGenerator<Buffer> {
  let seen = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > maxBytes) throw new DomainError('PAYLOAD_TOO_LARGE', 413, `import body over ${maxBytes} bytes`);
    yield chunk;
  }
}

function parseBbox(raw: string | undefined): [number, number, number, number] | undefined {
  if (raw === undefined) return undefined;
  const parts = raw.split(',').map(Number);
  if (parts.length !== 4 || parts.some((n) => !Number.isFinite(n))) throw badRequest('bbox must be four numbers: minLon,minLat,maxLon,maxLat');
  const [minLon, minLat, maxLon, maxLat] = parts as [number, number, number, number];
  if ([minLon, maxLon].some((x) => x < -180 || x > 180) || [minLat, maxLat].some((y) => y < -90 || y > 90)) {
    throw badRequest('bbox is outside -180..180 / -90..90');
  }
  return [minLon, minLat, maxLon, maxLat];
}

export const channelRoutes: FastifyPluginAsyncTypebox<{ catalog: CatalogService; importBodyLimitBytes: number }> = async (
  app,
  { catalog, importBodyLimitBytes },
) => {
  // Import bodies are parsed as they stream; only this plugin's routes accept these types.
  app.addContentTypeParser(IMPORT_TYPES, (_request, payload, done) => done(null, payload));

  app.get('/channels', {
    schema: { tags: ['channels'], querystring: ChannelListQuery, response: { 200: ChannelList, ...errors(400, 401) } },
    // Answered as bytes built from each channel's kept JSON (the same bytes the schema's serialiser writes).
    handler: async (request, reply) => {
      const q = request.query;
      const page = catalog.page(principalOf(request), {
        classes: q.class as ChannelClass[] | undefined,
        districts: q.district,
        networks: q.network as Network[] | undefined,
        statuses: q.status as ChannelStatus[] | undefined,
        q: q.q,
        bbox: parseBbox(q.bbox),
        limit: q.limit ?? 50,
        cursor: q.cursor,
      });
      // Bytes with a JSON content type go out as they are (Fastify serialises only objects).
      return reply.type('application/json; charset=utf-8').send(channelPageBody(page) as unknown as Static<typeof ChannelList>);
    },
  });
  app.get('/channels/stats', {
    schema: { tags: ['channels'], response: { 200: ChannelStats, ...errors(401) } },
    handler: async (request) => catalog.stats(principalOf(request)),
  });
  app.get('/channels/:channelId', {
    schema: { tags: ['channels'], params: ChannelParams, response: { 200: Type.Ref('Channel'), ...errors(400, 401, 404) } },
    handler: async (request) => catalog.get(principalOf(request), request.params.channelId),
  });
  app.patch('/channels/:channelId', {
    schema: { tags: ['channels'], params: ChannelParams, body: PatchChannelBody, response: { 200: Type.Ref('Channel'), ...errors(400, 401, 403, 404) } },
    handler: async (request) => catalog.patch(principalOf(request), request.params.channelId, request.body),
  });
  app.post('/channels/import', {
    bodyLimit: importBodyLimitBytes,
    schema: {
      tags: ['channels'],
      description: 'Body: application/x-ndjson (one channel per line, with sourceUrl) or text/csv (header row; lat, lon columns). Up to 100,000 lines.',
      response: { 200: ImportResult, ...errors(400, 401, 403, 413, 415) },
    },
    handler: async (request) => {
      const principal = principalOf(request);
      const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (!IMPORT_TYPES.includes(type)) {
        throw new DomainError('UNSUPPORTED_MEDIA_TYPE', 415, `send ${IMPORT_TYPES.join(' or ')}`);
      }
      const body = limited(request.body as Readable, importBodyLimitBytes);
      const records = type === 'text/csv' ? parseCsv(body) : parseNdjson(body);
      return catalog.import(principal, records, type === 'text/csv' ? 'csv' : 'ndjson');
    },
  });
};
