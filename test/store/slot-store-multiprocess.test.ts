/**
 * Several broker processes on one Redis pool: the limit holds across them, and a lease outlives the process that
 * created it only while someone heartbeats it. (Accuracy under concurrency from several processes, in the manner
 * of unkey's multi-node usage-limiting tests.)
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import t from 'tap';
import { createClient } from 'redis';
import type { SlotEvents } from '../../src/core/ports.js';
import { RedisSlotStore } from '../../src/store/redis/slot-store.js';
import { deleteKeys, REDIS_URL } from './fixtures/pool-redis.js';

const client = createClient({ url: REDIS_URL });
await client.connect();
t.teardown(() => client.close());

interface Worker {
  process: ChildProcessWithoutNullStreams;
  /** The next JSON line the worker prints. */
  next(): Promise<unknown>;
}

function startWorker(t: { teardown(fn: () => unknown): void }, ...args: string[]): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/store/fixtures/pool-worker.ts', ...args], { stdio: 'pipe' });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return {
    process: child,
    next: async () => {
      const line = await lines.next();
      if (line.done) throw new Error(`worker ${args[0]} ended without answering: ${stderr}`);
      return JSON.parse(line.value);
    },
  };
}

t.test('three processes firing 1,000 concurrent requests at a pool of 100 get exactly 100 grants', async (t) => {
  const prefix = `test-slots-mp-${randomUUID()}`;
  t.teardown(() => deleteKeys(client, prefix));
  const counts = [333, 333, 334];
  const workers = counts.map((count, i) => startWorker(t, 'burst', prefix, '100', String(count), String(i)));
  for (const worker of workers) t.equal(await worker.next(), 'ready');
  // Release all bursts at once so their scripts interleave on Redis.
  for (const worker of workers) worker.process.stdin.write('go\n');
  const answers = (await Promise.all(workers.map((w) => w.next()))) as Array<{ granted: string[] }>;
  const granted = answers.flatMap((a) => a.granted);
  t.equal(granted.length, 100);
  t.equal(new Set(granted).size, 100, 'distinct channels');
  const store = new RedisSlotStore({ client, prefix, forwardingLimit: 100 });
  t.equal((await store.usage()).forwarding.used, 100);
});

t.test('a lease outlives its creator only while another process heartbeats it', async (t) => {
  const prefix = `test-slots-mp-${randomUUID()}`;
  t.teardown(() => deleteKeys(client, prefix));
  const store = new RedisSlotStore({ client, prefix, forwardingLimit: 10, idleCloseMs: 300 });
  // The first lease is long enough for the keeper process to start; its heartbeats then extend by 600 ms.
  const creator = startWorker(t, 'hold', prefix, '10', '3000');
  const [abandoned, kept] = (await creator.next()) as string[];
  const keeper = startWorker(t, 'heartbeat', prefix, '10', kept, '600', '100');
  t.equal(await keeper.next(), 'ready');
  creator.process.kill('SIGKILL');

  const ended: SlotEvents['endedSessions'] = [];
  const sweepFor = async (done: () => boolean, untilMs: number) => {
    const deadline = (await store.now()) + untilMs;
    while (!done() && (await store.now()) < deadline) {
      ended.push(...(await store.sweep()).endedSessions);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  // This process sweeps: neither the dead creator nor the keeper is needed for the lapse to be noticed.
  await sweepFor(() => ended.length > 0, 10_000);
  t.same(ended.map((e) => [e.session.id, e.reason]), [[abandoned, 'expired']]);
  const keptLease = await store.getSession(kept);
  t.ok(keptLease, 'the heartbeated lease is alive');
  await sweepFor(() => ended.length > 1, keptLease!.createdAt + 5_000 - (await store.now()));
  t.equal(ended.length, 1, 'the heartbeated lease survives several of its TTLs');

  keeper.process.kill('SIGKILL');
  await sweepFor(() => ended.length > 1, 10_000);
  t.same(ended.map((e) => [e.session.id, e.reason]), [[abandoned, 'expired'], [kept, 'expired']]);
  t.equal(await store.getSession(kept), null);
});
