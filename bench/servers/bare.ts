/**
 * The baselines: a bare Fastify app with one small JSON route, and (when BENCH_PAGE is given) one
 * answering a fixed page of the same size as the broker's, to show what the payload alone costs.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/ping', async () => ({ ok: true, items: [] }));
const page: unknown = process.env.BENCH_PAGE ? JSON.parse(process.env.BENCH_PAGE) : null;
if (page) app.get('/page', async () => page);
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
console.log(JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0, pid: process.pid }));
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
