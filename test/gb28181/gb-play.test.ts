/**
 * API.md "GB/T 28181 access", Play, end to end: a simulated device registers, its catalog lands, an operator's
 * POST /streams opens an RTP port on the embedded media node, INVITEs the device, the device sends PS over RTP, the
 * first picture answers 201 and the URL plays FLV; idle close BYEs the device; the device's BYE ends the session
 * `source-failed`; a device that does not answer gets 504 and no slot is kept.
 */
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { auth, embeddedMediaEnv, makeTempDir, until } from '../helper.js';
import { answerGbInvite, encodeGbClip, loadGbClip, type GbClip } from '../../src/media/gb-media-sender.js';
import { playHttpFlv } from '../e2e/flv-player.js';
import { buildGbBroker, type GbTestBroker } from './helpers.js';
import type { VideoCodec } from '../../src/media/flv-mux.js';

async function clipOf(dir: string, codec: VideoCodec): Promise<GbClip> {
  const file = join(dir, `clip.${codec}`);
  await encodeGbClip(file, codec, 2, '320x240');
  return loadGbClip(file, codec);
}

let serial = Math.floor(Math.random() * 900_000);

async function gbChannel(t: Test, tb: GbTestBroker, clip: GbClip, mediaTransport: 'udp' | 'tcp-passive', behaviour: 'answer' | 'ignore' = 'answer') {
  const device = await tb.device({ mediaTransport });
  const sim = await tb.simulator({
    deviceId: device.id,
    password: device.password,
    // A channel of its own (the generated catalog derives ids from the device id, which tests share a prefix of).
    channels: [{ deviceId: `44010600001310${String((serial += 1)).padStart(6, '0')}`, name: '天河路口摄像机', status: 'ON', civilCode: '440106', parentId: device.id }],
    inviteBehaviour: behaviour,
    onInvite: async (offer) => answerGbInvite(clip, offer, '127.0.0.1'),
  });
  await until(t, 'the catalog lands', () => tb.broker.catalog.channelsOfDevice(device.id).length === 1, 20_000);
  return { device, sim, channelId: tb.broker.catalog.channelsOfDevice(device.id)[0].id };
}


t.test('GB/T 28181 channels play end to end', async (t) => {
  const dir = await makeTempDir(t);
  const clips = { h264: await clipOf(dir, 'h264'), h265: await clipOf(dir, 'h265') };
  const tb = await buildGbBroker(t, { env: { ...(await embeddedMediaEnv()), BROKER_SOURCE_TIMEOUT_SECONDS: '4', BROKER_IDLE_CLOSE_SECONDS: '1' } });
  tb.broker.start();
  const agency = await tb.agency({ id: 'agency-gb' });
  const open = (channelId: string) =>
    tb.app.inject({ method: 'POST', url: '/api/v1/streams', headers: auth(agency.operatorToken), payload: { channelId, purpose: 'GB/T 28181 play test' } });

  for (const [codec, transport] of [
    ['h264', 'udp'],
    ['h265', 'tcp-passive'],
  ] as const) {
    t.test(`${codec} over ${transport}: 201 on the first picture, FLV plays, idle close sends BYE`, async (t) => {
      const { sim, channelId } = await gbChannel(t, tb, clips[codec], transport);
      const opened = await open(channelId);
      t.equal(opened.statusCode, 201, opened.body);
      const stream = opened.json() as { id: string; urls: { flv: string } };
      t.equal(sim.seen.invites, 1, 'the device was INVITEd');
      t.equal(sim.seen.acks, 1, 'and ACKed');
      const player = await playHttpFlv(stream.urls.flv);
      t.equal(player.status, 200);
      await player.videoTags(25);
      t.ok(player.flv.videoTags >= 25 && !player.flv.malformed, `FLV plays (${player.flv.videoTags} video tags)`);
      player.stop();
      t.equal((await tb.app.inject({ method: 'DELETE', url: `/api/v1/streams/${stream.id}`, headers: auth(agency.operatorToken) })).statusCode, 204);
      await until(t, 'the idle close BYEs the device', () => sim.seen.byes === 1, 15_000);
      await until(t, 'the RTP port is closed and its SSRC freed', async () => (await tb.broker.media.nodes())[0].forwards === 0, 15_000);
    });
  }

  t.test('the device hangs up: the session ends source-failed', async (t) => {
    const { sim, channelId } = await gbChannel(t, tb, clips.h264, 'udp');
    const opened = await open(channelId);
    t.equal(opened.statusCode, 201, opened.body);
    const stream = opened.json() as { id: string };
    t.equal(await sim.bye(channelId), 200, 'the broker answers the BYE');
    await until(t, 'the session ends source-failed', async () => {
      const res = await tb.app.inject({ method: 'GET', url: `/api/v1/streams/${stream.id}`, headers: auth(agency.operatorToken) });
      return res.statusCode === 404 || (res.json() as { endReason?: string; state?: string }).endReason === 'source-failed';
    }, 15_000);
  });

  t.test('a device that does not answer the INVITE: 504 SOURCE_UNAVAILABLE, no slot kept', async (t) => {
    const { channelId } = await gbChannel(t, tb, clips.h264, 'udp', 'ignore');
    const opened = await open(channelId);
    t.equal(opened.statusCode, 504, opened.body);
    t.match(opened.json(), { error: { code: 'SOURCE_UNAVAILABLE' } });
    t.notOk(await tb.broker.slots.forwardOf(channelId), 'no forward slot kept');
    await until(t, 'its RTP port is closed on the media node', async () => (await tb.broker.media.nodes())[0].forwards === 0, 15_000);
  });
});
