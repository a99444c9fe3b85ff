/**
 * The operator/administrator console: the static files of web/ at `/` and the mpegts.js browser
 * build at /vendor/mpegts.js, all served by the broker itself (no CDN: agency networks are offline).
 * The pages are public; everything they show comes from the API with the signed-in user's token.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import fastifyStatic from '@fastify/static';

const webRoot = fileURLToPath(new URL('../../../web/', import.meta.url));
const mpegtsDist = dirname(createRequire(import.meta.url).resolve('mpegts.js'));

/**
 * Scripts and styles only from the broker. Play URLs point at media nodes whose origins are known only
 * at run time (BROKER_PUBLIC_MEDIA_URL, one per node in a city), so connections may go to any http(s)
 * or ws(s) origin; mpegts.js feeds the <video> through a blob: MediaSource URL.
 * @see https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Content-Security-Policy
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "media-src 'self' blob:",
  "worker-src 'self' blob:",
  "connect-src 'self' http: https: ws: wss:",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'none'",
].join('; ');

export async function consoleRoutes(app: FastifyInstance) {
  // Every route this plugin registers (the static files included) is reachable without a token.
  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config as object), public: true };
  });
  app.addHook('onSend', async (_request, reply) => {
    reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
  });

  // One route per file found at start (no wildcard): unknown paths keep the API's 404 answer.
  await app.register(fastifyStatic, {
    root: webRoot,
    prefix: '/',
    wildcard: false,
    // No build step, so no content hashes in file names: browsers revalidate instead of caching blindly.
    cacheControl: true,
    maxAge: 0,
    preCompressed: false,
  });
  app.get('/vendor/mpegts.js', { schema: { hide: true } }, (_request, reply) => reply.sendFile('mpegts.js', mpegtsDist));
}
