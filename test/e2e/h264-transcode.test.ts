/**
 * Issue 10 point 3: `codec: "h264"` on POST /streams, through a broker and its embedded media node (real
 * processes, real ffmpeg). An H.265 channel asked as H.264 plays AVC from one transcode shared by all its
 * H.264 viewers, which stops with the last of them; the node's budget (BROKER_MEDIA_MAX_TRANSCODES=1 here)
 * answers 503 TRANSCODE_CAPACITY_EXHAUSTED and keeps no slot; an H.264 channel asked as H.264 plays its
 * source, and pass-through sessions run no ffmpeg. Attacks: a junk codec is a 400, and an H.264 URL's token
 * opens nothing of another channel.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import type { FlvTag } from '../../src/media/flv-publisher.js';
import { auth, buildTestBroker, embeddedMediaEnv, until, type TestBroker } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { playHttpFlv, readFlvTags, startSimulatorProcess } from '../media/helpers.js';

const cameras = await startSimulatorProcess(t, 1, { h265Cameras: 2, rtsp: true });
const channels = {
  h265: makeChannel(1, 1, 'video', { sourceUrl: cameras.rtspUrls.h265[0] }),
  otherH265: makeChannel(2, 1, 'video', { sourceUrl: cameras.h265Urls[1] }),
  h264: makeChannel(3, 1, 'video', { sourceUrl: cameras.urls[0] }),
};
const tb: TestBroker = await buildTestBroker(t, {
  env: { ...(await embeddedMediaEnv()), BROKER_SOURCE_TIMEOUT_SECONDS: '10', BROKER_MEDIA_MAX_TRANSCODES: '1' },
  start: true,
});
await tb.broker.catalog.seed(Object.values(channels));
const city = await tb.agency({ id: 'city-police' });

const api = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) => {
  const res = await tb.app.inject({ method, url: `/api/v1${url}`, headers: auth(city.operatorToken), ...(payload && { payload }) });
  return { status: res.statusCode, body: res.body ? res.json() : null };
};
const open = (channelId: string, codec?: unknown) => api('POST', '/streams', { channelId, purpose: 'H.264 fallback check', ...(codec !== undefined && { codec }) });

const nodePid = (tb.broker.media as unknown as { nodePid(): number | undefined }).nodePid()!;
/** The media node's child processes (ps exits 1 when it lists none; its output is what counts). */
const nodeChildren = () => spawnSync('ps', ['-o', 'args=', '--ppid', String(nodePid)]).stdout.toString().trim().split('\n').filter(Boolean);
const ffmpegChildren = () => nodeChildren().filter((args) => /ffmpeg/.test(args));

/** Classic FLV AVC: CodecID 7, and the first video tag is the AVC sequence header (AVCPacketType 0). */
function assertAvc(t: Test, tags: FlvTag[]) {
  const video = tags.filter((tag) => tag.type === 9);
  t.equal(video[0].data[0] & 0x80, 0, 'classic FLV video, not enhanced');
  t.ok(video.every((tag) => (tag.data[0] & 0x0f) === 7), 'every video tag is CodecID 7 (AVC)');
  t.equal(video[0].data[1], 0, 'the first is the AVC sequence header');
  t.equal(video[0].data[5], 1, 'AVCDecoderConfigurationRecord version 1');
  t.ok(video.slice(1).every((tag) => tag.data[1] === 1), 'then NALUs');
}

const capacityUsed = async () => (await api('GET', '/capacity')).body.forwarding.used as number;
const sessions: Record<string, { id: string; urls: { flv: string } }> = {};

t.test('codec "h264" on an H.265 channel plays AVC from the transcoded stream', async (t) => {
  const res = await open(channels.h265.id, 'h264');
  t.equal(res.status, 201, JSON.stringify(res.body));
  t.equal(res.body.codec, 'h264', 'the session says what its URLs play');
  t.match(res.body.urls.flv, `/live/${channels.h265.id}_h264.flv?token=`, 'the URL names the transcoded stream key');
  t.match(res.body.urls.wsFlv, `/live/${channels.h265.id}_h264.flv?token=`);
  sessions.first = res.body;
  assertAvc(t, await readFlvTags(res.body.urls.flv, 15));
  t.equal((await api('GET', `/channels/${channels.h265.id}`)).body.codec, 'h265', 'the channel still shows what its camera sends');
  t.equal(ffmpegChildren().length, 1, 'the node runs one ffmpeg: the transcoder');

  const audit = await tb.app.inject({ url: `/api/v1/audit?action=stream.grant&channelId=${channels.h265.id}`, headers: auth(tb.adminToken) });
  const grant = audit.json().items[0];
  t.equal(grant.target, `session:${res.body.id}`);
  t.match(grant, { details: { requestedCodec: 'h264', codec: 'h264', transcoded: true } }, 'the audit records the session codec');
});

t.test('a second H.264 viewer shares the transcode; a source viewer gets hvc1 beside it', async (t) => {
  const second = await open(channels.h265.id, 'h264');
  t.equal(second.status, 201);
  t.equal(second.body.shared, true, 'joins the forward');
  t.match(second.body.urls.flv, `${channels.h265.id}_h264.flv`);
  sessions.second = second.body;
  assertAvc(t, await readFlvTags(second.body.urls.flv, 5));
  t.equal(ffmpegChildren().length, 1, 'still one ffmpeg for the channel');

  const source = await open(channels.h265.id);
  t.equal(source.status, 201);
  t.equal(source.body.codec, 'h265', 'a source session plays what the camera sends');
  t.match(source.body.urls.flv, `/live/${channels.h265.id}.flv?token=`);
  sessions.source = source.body;
  const first = (await readFlvTags(source.body.urls.flv, 3)).find((tag) => tag.type === 9)!.data;
  t.equal(first.toString('latin1', 1, 5), 'hvc1', 'enhanced FLV hvc1');
  const heartbeat = await api('POST', `/streams/${second.body.id}/heartbeat`);
  t.match(heartbeat.body.urls.flv, `${channels.h265.id}_h264.flv`, 'a heartbeat hands out fresh URLs of the same rendition');
  t.equal((await api('GET', `/streams/${second.body.id}`)).body.codec, 'h264');
});

t.test('the budget spent: 503 TRANSCODE_CAPACITY_EXHAUSTED and no slot or session kept', async (t) => {
  const before = await capacityUsed();
  const res = await open(channels.otherH265.id, 'h264');
  t.equal(res.status, 503);
  t.equal(res.body.error.code, 'TRANSCODE_CAPACITY_EXHAUSTED');
  t.equal(await capacityUsed(), before, 'GET /capacity: used unchanged');
  const mine = (await api('GET', '/streams?scope=mine')).body.items as Array<{ channelId: string }>;
  t.notOk(mine.some((s) => s.channelId === channels.otherH265.id), 'no session of the refused request');
  t.equal(ffmpegChildren().length, 1, 'no second transcoder');
  const denied = await tb.app.inject({ url: `/api/v1/audit?action=stream.deny&channelId=${channels.otherH265.id}`, headers: auth(tb.adminToken) });
  t.equal(denied.json().items[0]?.reason, 'transcode-capacity', 'the refusal is on record');
});

t.test('an H.264 channel asked as H.264 plays its source, with no ffmpeg', async (t) => {
  const res = await open(channels.h264.id, 'h264');
  t.equal(res.status, 201);
  t.equal(res.body.codec, 'h264');
  t.match(res.body.urls.flv, `/live/${channels.h264.id}.flv?token=`, 'the source stream key');
  sessions.h264 = res.body;
  assertAvc(t, await readFlvTags(res.body.urls.flv, 5));
  t.equal(ffmpegChildren().length, 1, 'only the H.265 channel has a transcoder');
});

t.test('an H.264 URL token opens no stream of another channel', async (t) => {
  const token = new URL(sessions.first.urls.flv).searchParams.get('token')!;
  for (const stream of [`${channels.h264.id}_h264`, channels.h264.id, `${channels.otherH265.id}_h264`]) {
    const url = new URL(sessions.first.urls.flv);
    url.pathname = `/live/${stream}.flv`;
    url.searchParams.set('token', token);
    const play = await playHttpFlv(url.toString());
    const bytes = await play.firstBytes;
    play.destroy();
    t.ok(play.status === 403 || play.status === 401 || bytes.length === 0, `${stream}: refused (HTTP ${play.status}, ${bytes.length} bytes)`);
  }
});

t.test('a junk codec is a 400 with the validation error code', async (t) => {
  const before = await capacityUsed();
  for (const codec of ['h265', 'H264', '', 'source ', 42, null, ['h265'], { h264: true }]) {
    const res = await open(channels.h265.id, codec);
    t.equal(res.status, 400, `codec ${JSON.stringify(codec)}`);
    t.equal(res.body.error.code, 'BAD_REQUEST');
  }
  t.equal(await capacityUsed(), before, 'nothing taken');
});

t.test('the transcode stops with its last H.264 viewer; pass-through sessions run no ffmpeg', async (t) => {
  t.equal((await api('DELETE', `/streams/${sessions.first.id}`)).status, 204);
  t.equal(ffmpegChildren().length, 1, 'the other H.264 viewer still holds it');
  assertAvc(t, await readFlvTags(sessions.second.urls.flv, 3));
  t.equal((await api('DELETE', `/streams/${sessions.second.id}`)).status, 204);
  await until(t, 'the transcoder to exit', () => ffmpegChildren().length === 0);
  t.same(nodeChildren(), [], 'while the source and H.264 pass-through sessions play, the node has no child process');
  const stillPlaying = await readFlvTags(sessions.source.urls.flv, 3);
  t.ok(stillPlaying.length > 0, 'the source session plays on');

  const freed = await open(channels.otherH265.id, 'h264');
  t.equal(freed.status, 201, 'the freed budget takes another channel');
  assertAvc(t, await readFlvTags(freed.body.urls.flv, 5));
});
