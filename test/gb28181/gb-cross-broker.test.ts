/**
 * DESIGN.md: a device's registration belongs to the broker it registered with, and another broker asks that one to
 * INVITE. Two broker processes on Redis, one media node, a simulated device registered with broker A; the requests
 * come to broker B. B opens the RTP port, A INVITEs the device to it, B's viewer gets FLV; ending at B makes A BYE
 * and frees the port; a device that never answers costs B a 504 and no slot; a device's BYE ends B's session; A dying
 * ends B's forward `source-failed`. And the broker link is not a way in: messages that are not signed with the city's
 * key, malformed, huge or replayed are dropped, and signed requests naming a device not registered there or an RTP
 * address that is not a media node's are refused, with no INVITE sent.
 */
import t from 'tap';
import { randomBytes, randomUUID } from 'node:crypto';
import { createClient } from 'redis';
import { until } from '../helper.js';
import { api } from '../process/helpers.js';
import { playHttpFlv } from '../e2e/flv-player.js';
import { busKey, decodeBusMessage, encodeBusMessage, type GbBusMessage } from '../../src/gb28181/gb-bus-messages.js';
import { REDIS_URL, startGbCity } from './city.js';

const city = await startGbCity(t, { brokers: 2, sourceTimeoutSeconds: 3 });
const [a, b] = city.brokers as [(typeof city.brokers)[0], (typeof city.brokers)[0]];
const rtpServers = async () => (await city.node.control('GET', '/load')).body.rtpServers as number;
/** The session ends in the store first, then its audit entry is written: tests wait for the entry, never race it. */
const sourceFailedAudited = async (sessionId: string) => {
  const ended = await api(b.url, 'GET', '/audit?action=stream.source-failed', city.adminToken);
  return (ended.body.items as Array<{ target: string }>).some((e) => e.target === `session:${sessionId}`);
};
const sessionGone = async (id: string) => (await api(b.url, 'GET', `/streams/${id}`, city.operatorToken)).status === 404;
const granted = (res: { status: number; body: unknown }) => (res.status === 201 ? 'granted on the first picture' : JSON.stringify(res.body));

t.test('a device registered with A plays when the request comes to B; ending at B makes A send BYE and frees the port', async (t) => {
  const { channelId, sim } = await city.device(a);
  const opened = await city.open(b, channelId);
  t.equal(opened.status, 201, granted(opened));
  t.equal(sim.seen.invites, 1, 'the device got one INVITE (from A, the broker it registered with)');
  const rtp = await city.node.control('GET', `/rtp-servers/${channelId}`);
  t.equal(rtp.status, 200, 'B opened the RTP port on the media node');
  t.ok(rtp.body.accepted > 0 && rtp.body.wrongSsrc === 0, 'the device sends to it with the SSRC B was given');

  const player = await playHttpFlv(opened.body.urls.flv);
  t.equal(player.status, 200);
  await player.videoTags(10);
  t.ok(player.flv.header && player.flv.videoTags >= 10 && !player.flv.malformed, `FLV video arrives at B's viewer (${player.flv.videoTags} video tags)`);
  player.stop();

  t.equal((await api(b.url, 'DELETE', `/streams/${opened.body.id}`, city.operatorToken)).status, 204);
  await until(t, 'the device gets a BYE (A sends it for B)', () => sim.seen.byes === 1, 10_000);
  t.equal(sim.openCalls, 0, 'the device has no call left');
  await until(t, 'the RTP port closes and its SSRC is freed', async () => (await city.node.control('GET', `/rtp-servers/${channelId}`)).status === 404 && (await rtpServers()) === 0, 10_000);
  t.equal(await city.forwardingUsed(), 0, 'no forwarding slot kept');
});

t.test('the device hangs up on a call A holds for B: B’s session ends source-failed', async (t) => {
  const { channelId, sim } = await city.device(a, { mediaTransport: 'tcp-passive' });
  const opened = await city.open(b, channelId);
  t.equal(opened.status, 201, granted(opened));
  t.equal(await sim.bye(channelId), 200, 'A answers the BYE');
  await until(t, 'B’s session is gone', () => sessionGone(opened.body.id), 10_000);
  await until(t, 'the end audited as stream.source-failed', () => sourceFailedAudited(opened.body.id), 10_000);
  t.ok(await sourceFailedAudited(opened.body.id), 'audited stream.source-failed');
  await until(t, 'the RTP port closes', async () => (await rtpServers()) === 0, 10_000);
});

t.test('a device that never answers A’s INVITE: B answers 504 SOURCE_UNAVAILABLE and keeps no slot', async (t) => {
  const { channelId, sim } = await city.device(a, { behaviour: 'ignore' });
  const before = await city.forwardingUsed();
  const opened = await city.open(b, channelId);
  t.equal(opened.status, 504);
  t.equal(opened.body.error.code, 'SOURCE_UNAVAILABLE');
  t.equal(sim.seen.invites, 1, 'A did INVITE it');
  t.equal(await city.forwardingUsed(), before, 'forwarding capacity used is unchanged');
  await until(t, 'its RTP port closes on the media node', async () => (await rtpServers()) === 0, 10_000);
});

t.test('the broker link is not a way in: forged, malformed, huge and replayed messages are dropped or refused', async (t) => {
  const { id: deviceId, channelId, sim } = await city.device(a);
  const key = busKey(city.controlSecret);
  const attacker = `attacker-${randomBytes(4).toString('hex')}`;
  const publisher = createClient({ url: REDIS_URL });
  const listener = publisher.duplicate();
  await Promise.all([publisher.connect(), listener.connect()]);
  t.teardown(async () => {
    await listener.close();
    await publisher.close();
  });
  const replies: GbBusMessage[] = [];
  await listener.subscribe(`${city.prefix}:broker-link:${attacker}`, (raw) => {
    const reply = decodeBusMessage(key, raw, Date.now());
    if (!('dropped' in reply)) replies.push(reply);
  });
  // Every broker's link channel (the test does not know which instance id is A's): each must refuse.
  const channels = await publisher.pubSubChannels(`${city.prefix}:broker-link:*`);
  const brokerChannels = channels.filter((c) => !c.endsWith(attacker));
  t.equal(brokerChannels.length, 2, 'both brokers listen on the link');
  const invite = (fields: Partial<Record<string, unknown>> = {}) => ({
    v: 1,
    kind: 'invite',
    id: randomUUID(),
    from: attacker,
    at: Date.now(),
    deviceId,
    channelId,
    fence: 1,
    mediaIp: '127.0.0.1',
    mediaPort: 40_000,
    transport: 'udp',
    ssrc: '0100000001',
    ...fields,
  });
  const signed = (message: object) => encodeBusMessage(key, message as GbBusMessage);
  const toAll = (raw: string) => Promise.all(brokerChannels.map((channel) => publisher.publish(channel, raw)));

  const forgedDevice = invite({ deviceId: '44010600001180999999' });
  const outsideAddress = invite({ mediaIp: '8.8.8.8' });
  const dropped = [
    JSON.stringify(invite()), // unsigned
    encodeBusMessage(randomBytes(32), invite() as GbBusMessage), // signed with another key
    signed(invite({ mediaIp: 'evil.example.com' })), // not an address
    signed(invite({ mediaIp: '127.0.0.1\r\na=inject' })),
    signed(invite({ extra: 'field' })),
    signed(invite({ at: Date.now() - 3_600_000 })), // stale
    `${'x'.repeat(43)}.${JSON.stringify({ ...invite(), pad: 'y'.repeat(200_000) })}`, // huge
    'not a message at all',
    signed({ v: 1, kind: 'invite', id: randomUUID(), from: attacker, at: Date.now() }), // fields missing
  ];
  for (const raw of dropped) await toAll(raw);
  await toAll(signed(forgedDevice));
  await toAll(signed(forgedDevice)); // a replay
  await toAll(signed(outsideAddress));
  // Each broker answers the refusals in order: once the last one is in from both, everything before was handled.
  await until(t, 'both brokers refused the last request', () => replies.filter((r) => r.kind === 'invite-failed' && r.re === outsideAddress.id).length === 2, 10_000);

  const reasons = (re: string) => replies.filter((r) => r.kind === 'invite-failed' && r.re === re).map((r) => (r.kind === 'invite-failed' ? r.reason : '')).sort();
  t.same(reasons(forgedDevice.id), ['unknown-device', 'unknown-device'], 'an unknown device id is refused by both, once each (the replay was dropped)');
  t.same(reasons(outsideAddress.id), ['bad-media-address', 'unknown-device'], 'A refuses an RTP address no media node has; B does not hold the device');
  t.equal(replies.length, 4, 'nothing else was answered: the unsigned, malformed, huge and stale messages were dropped');
  t.equal(sim.seen.invites, 0, 'the device was never INVITEd');
  for (const broker of [a, b]) t.equal((await fetch(`${broker.url}/healthz`)).status, 200, 'the brokers are still up');
});

t.test('A dies while it holds B’s call: B’s forward ends source-failed and its port closes', async (t) => {
  const { channelId } = await city.device(a);
  const opened = await city.open(b, channelId);
  t.equal(opened.status, 201, granted(opened));
  await a.kill('SIGKILL');
  await until(t, 'B’s session ends', () => sessionGone(opened.body.id), 15_000);
  await until(t, 'the end audited as stream.source-failed', () => sourceFailedAudited(opened.body.id), 10_000);
  t.ok(await sourceFailedAudited(opened.body.id), 'audited stream.source-failed');
  await until(t, 'the RTP port closes', async () => (await rtpServers()) === 0, 10_000);
});
