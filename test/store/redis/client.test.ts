/**
 * The connection's promises under failure, against a Redis of our own (we stop and freeze it).
 */
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { DomainError } from '../../../src/core/errors.js';
import { connectRedis, LuaScript, redisCall } from '../../../src/store/redis/client.js';

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

async function startRedis(t: Test): Promise<{ url: string; server: ChildProcess }> {
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGCONT');
      server.kill('SIGKILL');
    }
  });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    server.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) resolve();
    });
    server.once('exit', () => reject(new Error(`redis-server exited: ${output}`)));
  });
  return { url: `redis://127.0.0.1:${port}`, server };
}

const isUnavailable = (error: unknown) => error instanceof DomainError && error.status === 503;

t.test('a script is loaded again after Redis forgot it (NOSCRIPT)', async (t) => {
  const { url } = await startRedis(t);
  const client = await connectRedis({ url });
  t.teardown(() => client.close());
  const script = new LuaScript('echo', "return 'echo:' .. ARGV[1]");
  t.equal(await script.run(client, [], ['a']), 'echo:a');
  await client.scriptFlush();
  t.equal(await script.run(client, [], ['b']), 'echo:b');
  t.same(await client.scriptExists([script.sha]), [1]);
});

t.test('commands fail with 503 at once while Redis is down', async (t) => {
  const { url, server } = await startRedis(t);
  const errors: Error[] = [];
  const client = await connectRedis({ url, onError: (error) => errors.push(error) });
  t.teardown(() => (client.isOpen ? client.destroy() : undefined));
  await client.set('k', 'v');
  server.kill('SIGKILL');
  await once(server, 'exit');
  const failure = await redisCall(client, () => client.get('k')).then(
    () => null,
    (error: unknown) => error,
  );
  t.ok(isUnavailable(failure), 'a 503 DomainError');
  if (errors.length === 0) await once(client, 'error');
  t.pass('the outage was reported to onError');
});

t.test('a frozen Redis turns into a 503 instead of a hang (command timeout)', async (t) => {
  const { url, server } = await startRedis(t);
  const client = await connectRedis({ url, commandTimeoutMs: 300 });
  t.teardown(() => client.destroy());
  server.kill('SIGSTOP');
  const failure = await redisCall(client, () => client.get('k')).then(
    () => null,
    (error: unknown) => error,
  );
  server.kill('SIGCONT');
  t.ok(isUnavailable(failure), 'a 503 DomainError');
});

t.test('a long queue on a live Redis is not an outage: calls past the deadline wait while replies come', async (t) => {
  const { url } = await startRedis(t);
  const client = await connectRedis({ url, commandTimeoutMs: 1000 });
  t.teardown(() => client.close());
  // Each call keeps Redis busy for 10 ms, so 300 of them in one go take Redis 3 s: the last ones wait three
  // deadlines for their turn, while Redis answers all along. (Redis sends the replies to what it read in one
  // go together: the 8 KB argument keeps that to a couple of calls, as the real scripts' arguments do.)
  const busy = "local t0 = redis.call('TIME') repeat local t = redis.call('TIME') until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) >= 10000 return 1";
  const pad = 'p'.repeat(8000);
  const replies = await Promise.allSettled(Array.from({ length: 300 }, () => redisCall(client, () => client.eval(busy, { arguments: [pad] }))));
  t.equal(replies.filter((r) => r.status === 'fulfilled').length, replies.length, 'every call answered, none taken for an outage');
});

t.test('a Redis frozen under a backlog fails every waiting call within about the deadline', async (t) => {
  const { url, server } = await startRedis(t);
  const client = await connectRedis({ url, commandTimeoutMs: 300 });
  t.teardown(() => client.destroy());
  await redisCall(client, () => client.set('k', 'v'));
  server.kill('SIGSTOP');
  const started = performance.now();
  const failures = await Promise.all(
    Array.from({ length: 2000 }, () =>
      redisCall(client, () => client.get('k')).then(
        () => null,
        (error: unknown) => error,
      ),
    ),
  );
  const tookMs = performance.now() - started;
  server.kill('SIGCONT');
  t.ok(failures.every(isUnavailable), 'every waiting call is a 503');
  t.ok(tookMs < 5000, `given up on in ${Math.round(tookMs)} ms, not held for ever`);
});

t.test('error replies that are bugs are not disguised as outages', async (t) => {
  const { url } = await startRedis(t);
  const client = await connectRedis({ url });
  t.teardown(() => client.close());
  await client.set('k', 'v');
  const failure = await redisCall(client, () => client.hGet('k', 'f')).then(
    () => null,
    (error: unknown) => error,
  );
  t.match(failure, { message: /WRONGTYPE/ });
  t.notOk(isUnavailable(failure));
});

t.test('the first connect gives up when nothing listens', async (t) => {
  const port = await freePort();
  await t.rejects(connectRedis({ url: `redis://127.0.0.1:${port}`, initialConnectAttempts: 2 }));
});
