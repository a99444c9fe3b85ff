/**
 * Issue 8, point 2 ("survive anything a client does"): node-media-server writes to every player without
 * backpressure, so a player that stops reading made the node buffer the live stream for it without bound.
 * A player whose unsent backlog passes the limit is cut; the others play on.
 */
import t from 'tap';
import { connect } from 'node:net';
import { until } from '../helper.js';
import { startMediaFixture, CHANNEL } from './media-fixture.js';

const BACKLOG_LIMIT = 64 * 1024;
const media = await startMediaFixture(t, { MEDIA_PLAYER_MAX_BACKLOG_BYTES: String(BACKLOG_LIMIT) });

t.test('point 2: a player that stops reading is cut once its backlog passes the limit; others play on', async (t) => {
  const players = async () => (await media.node.control('GET', '/load')).body.players as number;
  const before = await players();
  const stalled = connect(media.httpPort, '127.0.0.1');
  stalled.on('error', () => undefined);
  t.teardown(() => stalled.destroy());
  let received = 0;
  await new Promise<void>((resolve) => stalled.once('connect', () => resolve()));
  stalled.write(`GET /live/${CHANNEL}.flv?token=${media.token()} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  stalled.once('data', (chunk: Buffer) => {
    received += chunk.length;
    // From here on nothing is read: the kernel's socket buffers fill (a few MB on loopback), then the node's.
    stalled.pause();
  });
  await until(t, 'the stalled player plays', async () => media.gone() || (await players()) === before + 1, 10_000);
  t.ok(received > 0, 'it started playing');
  // The client sees no FIN while it reads nothing; the node's player count shows the cut.
  await until(t, 'the node cuts the stalled player', async () => media.gone() || (await players()) === before, 180_000);
  t.equal(await players(), before, 'the node cut the player that stopped reading');
  await media.assertAlive(t, 'after a stalled player');
});
