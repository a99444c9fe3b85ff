/**
 * Point 6 of issue 8 on the wire: when an agency's networks narrow, its connected players on channels
 * it may no longer see are cut and the URLs it was handed stop playing — while its players elsewhere
 * play on. A camera simulator, the broker with its embedded media node, ffmpeg relays, real players.
 */
import t from 'tap';
import { auth, buildTestBroker, until, embeddedMediaEnv } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { startSimulatorProcess } from '../media/helpers.js';
import { playHttpFlv } from '../e2e/flv-player.js';

const WIRE_DEADLINE_MS = 15_000;

t.test('point 6: narrowing networks cuts the players of the channels no longer visible, and their URLs stop playing', async (t) => {
  const cameras = await startSimulatorProcess(t, 2);
  const video = makeChannel(1, 1, 'video', { sourceUrl: cameras.urls[0] });
  const gov = makeChannel(2, 1, 'gov', { sourceUrl: cameras.urls[1] });
  const tb = await buildTestBroker(t, {
    env: {
      ...(await embeddedMediaEnv()),
      BROKER_SOURCE_TIMEOUT_SECONDS: '5',
    },
    start: true,
  });
  await tb.broker.catalog.seed([video, gov]);
  const a = await tb.agency({ id: 'agency-a' });
  const open = async (channelId: string) => {
    const res = await tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(a.operatorToken), payload: { channelId, purpose: 'revocation on the wire' } });
    t.equal(res.statusCode, 201, `granted ${channelId}`);
    return res.json() as { id: string; urls: { flv: string } };
  };
  const kept = await open(video.id);
  const lost = await open(gov.id);

  const keptPlayer = await playHttpFlv(kept.urls.flv);
  const lostPlayer = await playHttpFlv(lost.urls.flv);
  t.teardown(() => (keptPlayer.stop(), lostPlayer.stop()));
  await until(t, 'both play video', () => keptPlayer.flv.videoTags >= 3 && lostPlayer.flv.videoTags >= 3, WIRE_DEADLINE_MS);

  const patched = await tb.app.inject({ method: 'PATCH', url: '/api/v1/agencies/agency-a', headers: auth(tb.adminToken), payload: { networks: ['video'] } });
  t.equal(patched.statusCode, 200);

  await until(t, 'the player of gov is cut', () => lostPlayer.isClosed(), WIRE_DEADLINE_MS);
  const again = await playHttpFlv(lost.urls.flv);
  t.teardown(() => again.stop());
  await until(t, 'the old URL of gov plays nothing', () => again.isClosed(), WIRE_DEADLINE_MS);
  t.equal(again.flv.videoTags, 0, 'no video through the old URL');

  const before = keptPlayer.flv.videoTags;
  await until(t, 'the video player plays on', () => keptPlayer.flv.videoTags > before + 3, WIRE_DEADLINE_MS);
  t.notOk(keptPlayer.isClosed());
});
