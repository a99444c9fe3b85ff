/**
 * The durable baseline of the allocate bench: a bare Fastify app whose POST /grant and DELETE /grant/:id do
 * what a grant's durability costs and nothing else. BENCH_DURABLE=memory: append one line to a journal with
 * group commit and answer once it is fdatasync'ed (the broker's own Journal class, the one its embedded
 * store and audit log use). BENCH_DURABLE=redis: one EVALSHA (a one-key script) plus one list append
 * (RPUSH) per request, awaited in turn, on one connection. Prints {port, pid}.
 */
import Fastify from 'fastify';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';
import { Journal } from '../../src/store/memory/journal.js';

const mode = process.env.BENCH_DURABLE === 'redis' ? 'redis' : 'memory';
const prefix = process.env.BENCH_REDIS_PREFIX ?? `bench-durable-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'se-bench-durable-'));

let record: (line: Record<string, unknown>) => Promise<void>;
let close: () => Promise<void>;
if (mode === 'memory') {
  const { journal } = await Journal.open<Record<string, unknown>>(join(dir, 'durable.jsonl'), () => {});
  record = (line) => journal.append(line);
  close = () => journal.close();
} else {
  const redis = createClient({ url: process.env.BROKER_REDIS_URL ?? 'redis://127.0.0.1:6379' });
  await redis.connect();
  const sha = await redis.scriptLoad("return redis.call('INCR', KEYS[1])");
  record = async (line) => {
    await redis.evalSha(sha, { keys: [`${prefix}:durable:count`], arguments: [] });
    await redis.rPush(`${prefix}:durable:log`, JSON.stringify(line));
  };
  close = () => redis.quit().then(() => undefined);
}

const app = Fastify({ logger: false });
app.post('/grant', async (request, reply) => {
  const id = randomUUID();
  await record({ action: 'grant', id, body: request.body, at: Date.now() });
  return reply.code(201).send({ id });
});
app.delete<{ Params: { id: string } }>('/grant/:id', async (request) => {
  await record({ action: 'release', id: request.params.id, at: Date.now() });
  return { id: request.params.id, released: true };
});
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
console.log(JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0, pid: process.pid, mode }));
process.on('SIGTERM', () => {
  void app
    .close()
    .then(close)
    .finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    });
});
