/**
 * An analytics reservation gets video of its own: its streamUrl plays real FLV from a relay that
 * takes no forwarding slot, and ending the reservation cuts the player and stops the relay.
 */
import t from 'tap';
import { auth, buildTestBroker, until, embeddedMediaEnv } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { startSimulatorProcess } from '../media/helpers.js';
import { playHttpFlv } from './flv-player.js';

const DEADLINE_MS = 15_000;

t.test('a reservation plays through its own relay', async (t) => {
  const cameras = await startSimulatorProcess(t, 1);
  const tb = await buildTestBroker(t, {
    env: {
      ...(await embeddedMediaEnv()),
      BROKER_SOURCE_TIMEOUT_SECONDS: '8',
    },
    start: true,
  });
  const channel = makeChannel(1, 2, 'gov', { sourceUrl: cameras.urls[0] });
  await tb.broker.catalog.seed([channel]);
  const wx = await tb.agency({ id: 'weather', classes: [2, 3], networks: ['gov'] });
  const key = (await tb.app.inject({ method: 'POST', url: '/api/v1/agencies/weather/service-accounts', headers: auth(wx.adminToken), payload: { name: 'fog-ai' } })).json();
  const svc = { authorization: `ApiKey ${key.apiKey}` };

  const created = await tb.app.inject({ method: 'POST', url: '/api/v1/analytics/reservations', headers: svc, payload: { channelId: channel.id, task: 'fog detection' } });
  t.equal(created.statusCode, 201);
  const reservation = created.json();
  const capacity = async () => (await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json();
  t.equal((await capacity()).forwarding.used, 0, 'no forwarding slot taken');
  // The node's load is polled about once a second.
  await until(t, 'one relay on the media node', async () => (await capacity()).mediaNodes[0]?.forwards === 1, DEADLINE_MS);

  const player = await playHttpFlv(reservation.streamUrl);
  t.equal(player.status, 200);
  t.teardown(() => player.stop());
  await player.videoTags(5);
  t.equal(player.flv.header, true, 'FLV from the reservation URL');
  t.ok(player.flv.videoTags >= 5, 'video arrives');

  t.equal((await tb.app.inject({ method: 'DELETE', url: `/api/v1/analytics/reservations/${reservation.id}`, headers: svc })).statusCode, 204);
  let closed = false;
  void player.closed.then(() => (closed = true));
  await until(t, 'player cut', () => closed, DEADLINE_MS);
  await until(t, 'relay stopped', async () => (await capacity()).mediaNodes[0].forwards === 0, DEADLINE_MS);
});
