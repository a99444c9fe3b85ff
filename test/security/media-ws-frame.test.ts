/**
 * Issue 8, point 11: the media node's WebSocket server has a frame size limit.
 */
import t from 'tap';
import { WebSocket } from 'ws';
import { CHANNEL, startMediaFixture } from './media-fixture.js';

const media = await startMediaFixture(t);

t.test('point 11: a WebSocket frame larger than the limit closes that socket (1009) and nothing else', async (t) => {
  const ws = new WebSocket(media.flvUrl(CHANNEL, media.token()).replace('http:', 'ws:'));
  ws.on('error', () => undefined);
  const code = new Promise<number>((resolve) => ws.once('close', (c) => resolve(c)));
  await new Promise<void>((resolve) => ws.once('open', () => resolve()));
  ws.send(Buffer.alloc(64 * 1024 * 1024));
  t.equal(await code, 1009, 'the server closes with 1009 (message too big)');
  await media.assertAlive(t, 'after a 64 MiB WebSocket frame');
});
