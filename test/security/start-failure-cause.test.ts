/**
 * Point 15 (b) of issue 8: a restarting media node, a wrong control secret or an empty source URL
 * were all answered 504 and audited `source-unavailable`, so the evidence log stated the wrong
 * cause. Each cause gets its own answer and its own reason, for streams and reservations alike, and
 * no slot is kept for any of them:
 *  - no media node can take the relay (unreachable, restarting, refusing our secret): 503 UNAVAILABLE, `media-unavailable`;
 *  - the channel's source URL is empty or not relayable: 409 CHANNEL_OFFLINE, `source-invalid`;
 *  - only a camera that sends nothing: 504 SOURCE_UNAVAILABLE, `source-unavailable`.
 * Real media node processes registered in Redis (BROKER_MEDIA=nodes), real ffmpeg relays.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { auth, buildTestBroker, deleteRedisPrefix, until, type TestBroker } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { startMediaNodeProcess, stopProcess, type MediaNodeProcess } from '../media/helpers.js';

const secret = () => randomBytes(32).toString('hex');

async function cityWithNode(t: Test, options: { brokerControlSecret?: string } = {}): Promise<{ tb: TestBroker; node: MediaNodeProcess }> {
  const prefix = `t${randomBytes(6).toString('hex')}`;
  t.teardown(() => deleteRedisPrefix(prefix));
  const controlSecret = secret();
  const playSecret = secret();
  const node = await startMediaNodeProcess(t, {
    nodeId: `node-${prefix}`,
    controlSecret,
    playSecret,
    sourceTimeoutMs: 2000,
    env: { MEDIA_REDIS_URL: 'redis://127.0.0.1:6379', MEDIA_REDIS_PREFIX: `${prefix}:`, MEDIA_NETWORKS: 'video' },
  });
  const tb = await buildTestBroker(t, {
    env: {
      BROKER_STORE: 'redis',
      BROKER_REDIS_PREFIX: prefix,
      BROKER_MEDIA: 'nodes',
      BROKER_MEDIA_CONTROL_SECRET: options.brokerControlSecret ?? controlSecret,
      BROKER_PLAY_SECRET: playSecret,
      BROKER_SOURCE_TIMEOUT_SECONDS: '2',
    },
  });
  // The broker must know the node: a refusal for "no node registered" would prove nothing here.
  await until(t, 'the broker knows the media node', async () => (await tb.broker.media.nodes()).length === 1);
  return { tb, node };
}

const openStream = (tb: TestBroker, token: string, channelId: string) =>
  tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(token), payload: { channelId, purpose: 'cause check' } });

async function lastDenial(tb: TestBroker, action: string, channelId: string) {
  const items = (await tb.app.inject({ url: `/api/v1/audit?action=${action}&channelId=${channelId}`, headers: auth(tb.adminToken) })).json().items;
  return items[0] as { outcome: string; reason: string } | undefined;
}

async function agencyUsage(tb: TestBroker, agencyId: string) {
  const capacity = (await tb.app.inject({ url: '/api/v1/capacity', headers: auth(tb.adminToken) })).json();
  return capacity.agencies.find((a: { id: string }) => a.id === agencyId) as { forwarding: { used: number }; analytics: { used: number } };
}

t.test('point 15b: a media node that refuses our control secret is 503 UNAVAILABLE, audited media-unavailable', async (t) => {
  const { tb } = await cityWithNode(t, { brokerControlSecret: secret() });
  const channel = makeChannel(1, 1, 'video', { sourceUrl: 'rtmp://127.0.0.1:1/live/none' });
  await tb.broker.catalog.seed([channel]);
  const a = await tb.agency({ id: 'agency-a' });
  const res = await openStream(tb, a.operatorToken, channel.id);
  t.equal(res.statusCode, 503);
  t.equal(res.json().error.code, 'UNAVAILABLE');
  t.ok(Number(res.headers['retry-after']) >= 1, 'Retry-After');
  t.match(await lastDenial(tb, 'stream.deny', channel.id), { outcome: 'error', reason: 'media-unavailable' });
  await until(t, 'no slot kept', async () => (await agencyUsage(tb, 'agency-a')).forwarding.used === 0);
});

t.test('point 15b: a media node that went away is 503 UNAVAILABLE for streams and reservations; a silent camera stays 504', async (t) => {
  const { tb, node } = await cityWithNode(t);
  const silent = makeChannel(1, 1, 'video', { sourceUrl: 'rtmp://127.0.0.1:1/live/none' });
  const invalid = makeChannel(2, 1, 'video', { sourceUrl: 'ftp://camera.invalid/2' });
  const empty = makeChannel(3, 1, 'video', { sourceUrl: undefined });
  await tb.broker.catalog.seed([silent, invalid, empty]);
  const a = await tb.agency({ id: 'agency-a' });

  const quiet = await openStream(tb, a.operatorToken, silent.id);
  t.equal(quiet.statusCode, 504, 'a camera that sends nothing is the only 504');
  t.equal(quiet.json().error.code, 'SOURCE_UNAVAILABLE');
  t.match(await lastDenial(tb, 'stream.deny', silent.id), { outcome: 'error', reason: 'source-unavailable' });

  for (const channel of [invalid, empty]) {
    const res = await openStream(tb, a.operatorToken, channel.id);
    t.equal(res.statusCode, 409, `a source URL no node relays (${channel.sourceUrl ?? 'none'}) is the channel's configuration`);
    t.equal(res.json().error.code, 'CHANNEL_OFFLINE');
    t.match(await lastDenial(tb, 'stream.deny', channel.id), { reason: 'source-invalid' });
    const reservation = await tb.app.inject({ method: 'POST', url: '/api/v1/analytics/reservations', headers: auth(a.adminToken), payload: { channelId: channel.id, task: 'cause check' } });
    t.equal(reservation.statusCode, 409, 'the same for a reservation');
    t.match(await lastDenial(tb, 'analytics.deny', channel.id), { reason: 'source-invalid' });
  }

  await stopProcess(node.child); // its registration lingers until it lapses: the broker still picks it
  const gone = await openStream(tb, a.operatorToken, silent.id);
  t.equal(gone.statusCode, 503, 'an unreachable node is not a silent camera');
  t.equal(gone.json().error.code, 'UNAVAILABLE');
  t.match(await lastDenial(tb, 'stream.deny', silent.id), { outcome: 'error', reason: 'media-unavailable' });
  const reservation = await tb.app.inject({ method: 'POST', url: '/api/v1/analytics/reservations', headers: auth(a.adminToken), payload: { channelId: silent.id, task: 'cause check' } });
  t.equal(reservation.statusCode, 503);
  t.match(await lastDenial(tb, 'analytics.deny', silent.id), { outcome: 'error', reason: 'media-unavailable' });
  await until(t, 'no slot kept for any of them', async () => {
    const used = await agencyUsage(tb, 'agency-a');
    return used.forwarding.used === 0 && used.analytics.used === 0;
  });
});
