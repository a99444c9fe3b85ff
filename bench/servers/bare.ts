/** The baseline: a bare Fastify app with one JSON route, same logger level as the broker bench. */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/ping', async () => ({ ok: true, items: [] }));
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
console.log(JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0, pid: process.pid }));
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
