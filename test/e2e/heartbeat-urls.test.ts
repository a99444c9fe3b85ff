/**
 * API.md: `POST /streams/:id/heartbeat` → `{expiresAt, urls}`, the URLs with fresh tokens. A play URL's
 * token lives as long as the lease it was handed out with; a player that reconnects after that plays
 * with the URL of the latest heartbeat, although the session itself lived on all along.
 */
import t from 'tap';
import { auth, buildTestBroker, embeddedMediaEnv, until } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { startSimulatorProcess } from '../media/helpers.js';
import { playHttpFlv } from './flv-player.js';

t.test('a heartbeat hands out fresh URLs: they play after the first URL lapsed, the first does not', async (t) => {
  const cameras = await startSimulatorProcess(t, 1);
  const tb = await buildTestBroker(t, {
    env: { ...(await embeddedMediaEnv()), BROKER_LEASE_TTL_SECONDS: '3', BROKER_SOURCE_TIMEOUT_SECONDS: '8' },
    start: true,
  });
  const channel = makeChannel(1, 1, 'video', { sourceUrl: cameras.urls[0] });
  await tb.broker.catalog.seed([channel]);
  const a = await tb.agency({ id: 'agency-a' });
  const opened = await tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(a.operatorToken), payload: { channelId: channel.id, purpose: 'reconnect after the token lapsed' } });
  t.equal(opened.statusCode, 201);
  const first = opened.json() as { id: string; expiresAt: string; urls: { flv: string; wsFlv: string } };

  let latest = first.urls;
  const beat = async () => {
    const res = await tb.app.inject({ method: 'POST', url: `/api/v1/streams/${first.id}/heartbeat`, headers: auth(a.operatorToken) });
    t.equal(res.statusCode, 200, 'heartbeat');
    const body = res.json() as { expiresAt: string; urls: { flv: string; wsFlv: string } };
    t.ok(Date.parse(body.expiresAt) > Date.parse(first.expiresAt), 'the lease was extended');
    latest = body.urls;
  };
  await beat();
  t.not(latest.flv, first.urls.flv, 'a new token');
  t.match(latest, { flv: /token=/, wsFlv: /token=/ });
  // Keep the session alive until the first URL's token has lapsed.
  await until(t, 'the first URL to lapse', async () => {
    await beat();
    return Date.now() > Date.parse(first.expiresAt) + 300;
  }, 20_000);

  const stale = await playHttpFlv(first.urls.flv);
  await stale.closed;
  t.equal(stale.flv.videoTags, 0, 'the first URL plays nothing once its token lapsed');
  const fresh = await playHttpFlv(latest.flv);
  await fresh.videoTags(3);
  t.ok(fresh.flv.videoTags >= 3, "the latest heartbeat's URL plays");
  fresh.stop();
});
