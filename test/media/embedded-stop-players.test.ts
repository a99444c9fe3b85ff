/**
 * Issue 9, point 1: a planned stop of the embedded media node (the broker shutting down) cuts its
 * players first and claims their ends, so each admitted player has its play.end with bytes and seconds.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { MediaPlayerEvents } from '../../src/core/ports.js';
import { createEmbeddedMediaControl } from '../../src/media/media-control-embedded.js';
import { findFreePort } from '../../src/media/net-ports.js';
import { startSimulator } from '../../src/media/simulator.js';
import { playHttpFlv } from './helpers.js';
import { until } from '../helper.js';

const CHANNEL = '44010600001320000021';

t.test('point 1: closing the embedded node reports the ends of the players it cut', async (t) => {
  const simulator = await startSimulator({ cameras: 1, rtmpPort: await findFreePort() });
  t.teardown(() => simulator.stop());
  const playSecret = randomBytes(24).toString('hex');
  const media = await createEmbeddedMediaControl({
    rtmpPort: await findFreePort(),
    httpPort: await findFreePort(),
    sourceTimeoutMs: 5000,
    playSecret,
    maxForwards: 2,
    logger: pino({ level: 'silent' }),
  });
  let closed = false;
  t.teardown(() => (closed ? undefined : media.close()));
  const reports: MediaPlayerEvents[] = [];
  media.onPlayerEvents((report) => reports.push(report));
  const events = () => reports.flatMap((r) => r.events);

  await media.startForward({ channelId: CHANNEL, network: 'video', sourceUrl: simulator.urls[0], fence: 1 });
  const urls = await media.playUrls({ sessionId: 's-stop', channelId: CHANNEL, fence: 1, expiresAt: Date.now() + 60_000 });
  const player = await playHttpFlv(urls.flv);
  t.equal((await player.firstBytes).toString('latin1'), 'FLV', 'the player plays');
  await until(t, 'the start claimed', () => events().some((e) => e.kind === 'start'));

  await media.close();
  closed = true;
  const end = events().find((e) => e.kind === 'end' && e.sessionId === 's-stop');
  t.ok(end, 'the cut player’s end was claimed before close resolved');
  t.ok((end?.bytes ?? 0) > 0 && (end?.seconds ?? 0) > 0, `with bytes (${end?.bytes}) and seconds (${end?.seconds})`);
  await player.closed;
});

t.test('point 1: the embedded node enforces the limit the broker passes it (MEDIA_MAX_PLAYERS_PER_SESSION)', async (t) => {
  const simulator = await startSimulator({ cameras: 1, rtmpPort: await findFreePort() });
  t.teardown(() => simulator.stop());
  const media = await createEmbeddedMediaControl({
    rtmpPort: await findFreePort(),
    httpPort: await findFreePort(),
    sourceTimeoutMs: 5000,
    playSecret: randomBytes(24).toString('hex'),
    maxForwards: 2,
    maxPlayersPerSession: 1,
    logger: pino({ level: 'silent' }),
  });
  t.teardown(() => media.close());
  await media.startForward({ channelId: CHANNEL, network: 'video', sourceUrl: simulator.urls[0], fence: 1 });
  const urls = await media.playUrls({ sessionId: 's-one', channelId: CHANNEL, fence: 1, expiresAt: Date.now() + 60_000 });
  const first = await playHttpFlv(urls.flv);
  t.teardown(() => first.destroy());
  t.equal((await first.firstBytes).toString('latin1'), 'FLV', 'the first player plays');
  const second = await playHttpFlv(urls.flv);
  t.equal(second.status, 403, 'with a limit of 1, the second player is refused');
  second.destroy();
  const other = await playHttpFlv((await media.playUrls({ sessionId: 's-two', channelId: CHANNEL, fence: 1, expiresAt: Date.now() + 60_000 })).flv);
  t.equal(other.status, 200, "another session's player on the same channel is not counted against it");
  other.destroy();
});
