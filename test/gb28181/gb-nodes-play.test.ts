/**
 * API.md "GB/T 28181 access", Play, with the city's media plane (BROKER_MEDIA=nodes): a broker process on Redis asks
 * the registered `npm run media-node` process for an RTP port over its control API (UDP, or TCP passive), INVITEs
 * the simulated device to it, and answers 201 on the first picture; the play URL gives FLV video from that node.
 * Ending the stream BYEs the device and closes the RTP port (its SSRC freed); the device's BYE, or RTP silence on
 * the node, ends the session `source-failed` (and silence BYEs the device, which still thinks it is sending).
 */
import t from 'tap';
import { until } from '../helper.js';
import { api } from '../process/helpers.js';
import { playHttpFlv } from '../e2e/flv-player.js';
import { startGbCity } from './city.js';

// A short silence limit on the node (the default is API.md's 10 s): the silence test need not wait that long.
const city = await startGbCity(t, { brokers: 1, rtpSilenceMs: 3000 });
const [broker] = city.brokers as [(typeof city.brokers)[0]];
const rtpServers = async () => (await city.node.control('GET', '/load')).body.rtpServers as number;
/** The session ends in the store first, its audit entry is written next: tests wait for the entry, never race it. */
const sourceFailedAudited = async (sessionId: string) => {
  const ended = await api(broker.url, 'GET', `/audit?action=stream.source-failed`, city.adminToken);
  return (ended.body.items as Array<{ target: string }>).some((e) => e.target === `session:${sessionId}`);
};

for (const mediaTransport of ['udp', 'tcp-passive'] as const) {
  t.test(`over ${mediaTransport}: the media node opens the RTP port, FLV video plays from it, the end BYEs and frees it`, async (t) => {
    const { channelId, sim } = await city.device(broker, { mediaTransport });
    const opened = await city.open(broker, channelId);
    t.equal(opened.status, 201, opened.status === 201 ? 'granted on the first picture' : JSON.stringify(opened.body));
    t.equal(sim.seen.invites, 1, 'the device was INVITEd once');
    t.ok(opened.body.urls.flv.startsWith(`${city.node.playBaseUrl}/`), 'the stream plays from the media node');
    const rtp = await city.node.control('GET', `/rtp-servers/${channelId}`);
    t.equal(rtp.status, 200, 'the RTP port is open on the media node');
    t.match(rtp.body.ssrc, /^0[0-9]{9}$/, 'with a live SSRC of the standard');
    t.ok(rtp.body.accepted > 0, `and takes the device's packets (${rtp.body.accepted})`);

    const player = await playHttpFlv(opened.body.urls.flv);
    t.equal(player.status, 200);
    await player.videoTags(10);
    t.ok(player.flv.header && player.flv.videoTags >= 10 && !player.flv.malformed, `FLV video arrives (${player.flv.videoTags} video tags)`);
    player.stop();

    t.equal((await api(broker.url, 'DELETE', `/streams/${opened.body.id}`, city.operatorToken)).status, 204);
    await until(t, 'the device gets its BYE', () => sim.seen.byes === 1, 10_000);
    await until(t, 'the RTP port closes and its SSRC is freed', async () => (await city.node.control('GET', `/rtp-servers/${channelId}`)).status === 404 && (await rtpServers()) === 0, 10_000);
    t.equal(await city.forwardingUsed(), 0, 'no forwarding slot kept');
  });
}

t.test('the device hangs up: the session ends source-failed and the RTP port closes', async (t) => {
  const { channelId, sim } = await city.device(broker);
  const opened = await city.open(broker, channelId);
  t.equal(opened.status, 201, opened.status === 201 ? 'granted on the first picture' : JSON.stringify(opened.body));
  t.equal(await sim.bye(channelId), 200, 'the broker answers the BYE');
  await until(t, 'the session is gone', async () => (await api(broker.url, 'GET', `/streams/${opened.body.id}`, city.operatorToken)).status === 404, 10_000);
  await until(t, 'its end audited stream.source-failed', () => sourceFailedAudited(opened.body.id), 10_000);
  t.ok(await sourceFailedAudited(opened.body.id), 'its end is audited stream.source-failed');
  await until(t, 'the RTP port closes', async () => (await rtpServers()) === 0, 10_000);
});

t.test('the device goes silent without hanging up: the node reports it, the session ends source-failed, the device gets a BYE', async (t) => {
  const { channelId, sim, stopMedia } = await city.device(broker);
  const opened = await city.open(broker, channelId);
  t.equal(opened.status, 201, opened.status === 201 ? 'granted on the first picture' : JSON.stringify(opened.body));
  stopMedia();
  await until(t, 'the session is gone', async () => (await api(broker.url, 'GET', `/streams/${opened.body.id}`, city.operatorToken)).status === 404, 15_000);
  await until(t, 'its end audited stream.source-failed', () => sourceFailedAudited(opened.body.id), 10_000);
  t.ok(await sourceFailedAudited(opened.body.id), 'its end is audited stream.source-failed');
  await until(t, 'the device gets its BYE', () => sim.seen.byes === 1, 10_000);
  t.equal(sim.openCalls, 0, 'the device has no call left');
  t.equal(await rtpServers(), 0, 'the RTP port is closed');
});
