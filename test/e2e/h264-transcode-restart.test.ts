/**
 * A crashed transcoder (issue 10 point 3): the H.265 → H.264 ffmpeg child of an H.265 channel dies (SIGKILL)
 * while an H.264 viewer plays. The node restarts it after a short backoff and the same player's stream
 * comes back, AVC again, on the same connection; past MEDIA_TRANSCODE_MAX_RESTARTS deaths within
 * MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS (1 per 60 s here) the transcode is given up and the H.264 session
 * ends `source-failed`, as on a failed source, while the channel's source (H.265) session plays on.
 * Real processes: a broker with its embedded media node, the camera simulator, ffmpeg.
 */
import t from 'tap';
import { request } from 'node:http';
import { spawnSync } from 'node:child_process';
import { FlvTagReader, type FlvTag } from '../../src/media/flv-publisher.js';
import { auth, buildTestBroker, embeddedMediaEnv, until, type TestBroker } from '../helper.js';
import { makeChannel } from '../fixtures.js';
import { readFlvTags, startSimulatorProcess } from '../media/helpers.js';

// The media node child inherits the broker's environment: the restart limit, low enough to reach.
process.env.MEDIA_TRANSCODE_MAX_RESTARTS = '1';
process.env.MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS = '60';
t.teardown(() => {
  delete process.env.MEDIA_TRANSCODE_MAX_RESTARTS;
  delete process.env.MEDIA_TRANSCODE_RESTART_WINDOW_SECONDS;
});

const cameras = await startSimulatorProcess(t, 1, { h265Cameras: 1, rtsp: true });
const channel = makeChannel(1, 1, 'video', { sourceUrl: cameras.rtspUrls.h265[0] });
const tb: TestBroker = await buildTestBroker(t, {
  env: { ...(await embeddedMediaEnv()), BROKER_SOURCE_TIMEOUT_SECONDS: '10', BROKER_MEDIA_MAX_TRANSCODES: '1' },
  start: true,
});
await tb.broker.catalog.seed([channel]);
const city = await tb.agency({ id: 'city-police' });

const api = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) => {
  const res = await tb.app.inject({ method, url: `/api/v1${url}`, headers: auth(city.operatorToken), ...(payload && { payload }) });
  return { status: res.statusCode, body: res.body ? res.json() : null };
};

const nodePid = (tb.broker.media as unknown as { nodePid(): number | undefined }).nodePid()!;
/** Process ids of the media node's ffmpeg children (the transcoder; pass-through runs none). */
const transcoderPids = () =>
  spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(nodePid)]).stdout.toString().trim().split('\n')
    .filter((line) => /ffmpeg/.test(line))
    .map((line) => Number(line.trim().split(/\s+/)[0]));

/** One player that keeps reading: every tag with its arrival, and whether the node closed it. */
function keepPlaying(url: string) {
  const tags: Array<FlvTag & { at: number }> = [];
  const reader = new FlvTagReader();
  let closed = false;
  let error: Error | undefined;
  const req = request(url, (res) => {
    res.on('data', (chunk: Buffer) => {
      try {
        for (const tag of reader.push(chunk)) tags.push({ ...tag, at: Date.now() });
      } catch (e) {
        error = e as Error;
        req.destroy();
      }
    });
    res.once('close', () => (closed = true));
  });
  req.once('error', () => (closed = true));
  req.end();
  t.teardown(() => void req.destroy());
  /** AVC keyframes (classic FLV, CodecID 7, frame type 1, NALU packet) that arrived after `since`. */
  const avcKeyframesAfter = (since: number) =>
    tags.filter((tag) => tag.at > since && tag.type === 9 && tag.data[0] === 0x17 && tag.data[1] === 1).length;
  return { tags, avcKeyframesAfter, isClosed: () => closed, error: () => error };
}

t.test('a killed transcoder is restarted and the H.264 viewer’s stream comes back; past the limit its session ends source-failed', async (t) => {
  const source = await api('POST', '/streams', { channelId: channel.id, purpose: 'source beside a crashing transcode' });
  t.equal(source.status, 201, 'a source (H.265) session opens');
  const h264 = await api('POST', '/streams', { channelId: channel.id, purpose: 'H.264 viewer of a crashing transcode', codec: 'h264' });
  t.equal(h264.status, 201, 'an H.264 session opens');
  t.equal(h264.body.codec, 'h264');

  const player = keepPlaying(h264.body.urls.flv);
  await until(t, 'the H.264 player to get an AVC keyframe', () => player.avcKeyframesAfter(0) > 0, 15_000);
  const [first] = transcoderPids();
  t.ok(first, 'one transcoder runs');

  // Crash 1: within the limit (1 restart per 60 s).
  const killedAt = Date.now();
  process.kill(first!, 'SIGKILL');
  await until(t, 'a new transcoder process', () => transcoderPids().some((pid) => pid !== first), 10_000);
  await until(t, 'AVC keyframes again on the same connection', () => player.avcKeyframesAfter(killedAt) >= 2, 15_000);
  t.notOk(player.isClosed(), 'the player stayed connected through the restart');
  t.equal(player.error(), undefined, 'its FLV stream parsed strictly throughout');
  t.equal((await api('GET', `/streams/${h264.body.id}`)).status, 200, 'the H.264 session lives on');

  // Crash 2 within the window: past the limit, given up.
  const [second] = transcoderPids();
  t.ok(second !== undefined && second !== first, 'the restarted transcoder is another process');
  process.kill(second!, 'SIGKILL');
  await until(t, 'the H.264 session to end', async () => (await api('GET', `/streams/${h264.body.id}`)).status === 404, 15_000);
  await until(t, 'its end on record', async () => {
    const audit = await tb.app.inject({ url: `/api/v1/audit?action=stream.source-failed`, headers: auth(tb.adminToken) });
    return audit.json().items.some((e: { target: string }) => e.target === `session:${h264.body.id}`);
  });
  await until(t, 'the H.264 player to be cut', () => player.isClosed(), 5_000);
  t.same(transcoderPids(), [], 'no transcoder is restarted after the limit');

  t.equal((await api('GET', `/streams/${source.body.id}`)).status, 200, 'the source session on the same channel lives on');
  const stillPlaying = await readFlvTags(source.body.urls.flv, 3);
  t.equal(stillPlaying.find((tag) => tag.type === 9)!.data.toString('latin1', 1, 5), 'hvc1', 'and still plays H.265');
});
