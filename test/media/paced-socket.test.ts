/**
 * Paced relay sockets (src/media/paced-socket.ts): once pacing starts, a socket is read once per media tick,
 * but a source that has more waiting than one read holds is read on at once, never held to a buffer a tick
 * (a 25 Mbit/s camera, or the burst after a stall, would otherwise fall behind for good).
 */
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { connectPaced, PACE_AFTER_MS } from '../../src/media/paced-socket.js';
import { DEFAULT_MEDIA_TICK_MS, MAX_MEDIA_TICK_MS, mediaTickMs, setMediaTickMs } from '../../src/media/media-tick.js';
import { until } from '../helper.js';

/** A server that, once pacing has begun on the client, sends `bytes` as fast as loopback takes them. */
async function burstServer(t: Test, payload: Buffer) {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    setTimeout(() => socket.end(payload), PACE_AFTER_MS + 300);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

t.test('a paced socket reads on while a read fills its buffer: 8 MB at a 1 s tick arrive whole, in order', async (t) => {
  setMediaTickMs(MAX_MEDIA_TICK_MS);
  t.teardown(() => setMediaTickMs(DEFAULT_MEDIA_TICK_MS));
  const payload = randomBytes(8 * 1024 * 1024);
  const port = await burstServer(t, payload);
  const chunks: Buffer[] = [];
  let received = 0;
  const paced = connectPaced('127.0.0.1', port, (chunk) => {
    // The handler may keep what it is given: copies are checked at the end, not here.
    chunks.push(chunk);
    received += chunk.length;
  });
  paced.socket.on('error', () => undefined);
  paced.pace();
  t.teardown(() => paced.socket.destroy());
  // Held to one 256 KiB read a tick, 8 MB at a 1 s tick would take 32 s.
  await until(t, 'the whole burst', () => received === payload.length, 10_000);
  const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  t.equal(digest(Buffer.concat(chunks)), digest(payload), 'byte for byte');
});

t.test('the media tick is an integer 0..1000 ms; 0 turns pacing off', async (t) => {
  t.equal(mediaTickMs(), DEFAULT_MEDIA_TICK_MS);
  for (const bad of [-1, 1.5, MAX_MEDIA_TICK_MS + 1, Number.NaN]) t.throws(() => setMediaTickMs(bad), RangeError, String(bad));
  t.equal(mediaTickMs(), DEFAULT_MEDIA_TICK_MS, 'a refused value changes nothing');

  setMediaTickMs(0);
  t.teardown(() => setMediaTickMs(DEFAULT_MEDIA_TICK_MS));
  const payload = randomBytes(512 * 1024);
  const port = await burstServer(t, payload);
  let received = 0;
  const paced = connectPaced('127.0.0.1', port, (chunk) => (received += chunk.length));
  paced.socket.on('error', () => undefined);
  paced.pace();
  t.teardown(() => paced.socket.destroy());
  await until(t, 'the burst, unpaced', () => received === payload.length, 10_000);
  t.equal(received, payload.length);
});
