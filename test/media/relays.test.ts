/**
 * Issue 10: in-process relays against real sources. An H.264 and an H.265 camera over RTSP/TCP, RTSP/UDP and
 * RTMP (the simulator), and GStreamer's RTSP server (an independent implementation) over TCP and UDP, each
 * relayed by a real media node process and played over HTTP-FLV; the FLV is parsed tag by tag. While they
 * play, the media node has no child process.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import type { FlvTag } from '../../src/media/flv-publisher.js';
import { signPlayToken } from '../../src/media/play-token.js';
import { readFlvTags, startGstRtspCamera, startMediaNodeProcess, startSimulatorProcess } from './helpers.js';

const node = await startMediaNodeProcess(t, { sourceTimeoutMs: 10_000, env: { MEDIA_MAX_TRANSCODES: '1' } });
const [simulator, gst] = await Promise.all([startSimulatorProcess(t, 1, { h265Cameras: 1, rtsp: true }), startGstRtspCamera(t)]);

const FOURCC_HVC1 = 'hvc1';

/** What the video tags say: codec, the sequence header, and frame types in order. */
function describeVideo(tags: FlvTag[]) {
  const video = tags.filter((tag) => tag.type === 9);
  const first = video[0].data;
  const enhanced = (first[0] & 0x80) !== 0;
  return {
    enhanced,
    fourcc: enhanced ? first.toString('latin1', 1, 5) : undefined,
    codecId: enhanced ? undefined : first[0] & 0x0f,
    /** Enhanced: ExVideoTagHeader PacketType; classic AVC: AVCPacketType. */
    packetTypes: video.map((tag) => ((tag.data[0] & 0x80) !== 0 ? tag.data[0] & 0x0f : tag.data[1])),
    frameTypes: video.map((tag) => (tag.data[0] >> 4) & 0x07),
    /** The decoder configuration record of the sequence header. */
    record: enhanced ? first.subarray(5) : first.subarray(5),
    timestamps: video.map((tag) => tag.timestamp),
  };
}

let channelSerial = 0;
const channels = new Map<string, string>();
const playUrl = (stream: string, channelId: string) => {
  const token = signPlayToken({ sessionId: `s-${stream}`, channelId, nodeId: 'test-node', fence: 1, expiresAt: Date.now() + 60_000 }, node.playSecret);
  return `${node.playBaseUrl}/live/${stream}.flv?token=${encodeURIComponent(token)}`;
};
async function relayAndRead(sourceUrl: string) {
  channelSerial += 1;
  const channelId = `4401060000132000${String(channelSerial).padStart(4, '0')}`;
  const started = await node.control('POST', '/forwards', { channelId, sourceUrl, fence: 1 });
  channels.set(sourceUrl, channelId);
  const token = signPlayToken({ sessionId: `s-${channelSerial}`, channelId, nodeId: 'test-node', fence: 1, expiresAt: Date.now() + 60_000 }, node.playSecret);
  const tags = started.status === 200 ? await readFlvTags(`${node.playBaseUrl}/live/${channelId}.flv?token=${encodeURIComponent(token)}`, 30) : [];
  return { channelId, started, tags };
}

const sources: Array<[string, () => string, 'h264' | 'h265']> = [
  ['simulator H.264 over RTSP/TCP', () => simulator.rtspUrls.h264[0], 'h264'],
  ['simulator H.264 over RTSP/UDP', () => `${simulator.rtspUrls.h264[0]}#transport=udp`, 'h264'],
  ['simulator H.264 over RTMP', () => simulator.urls[0], 'h264'],
  ['simulator H.265 over RTSP/TCP', () => simulator.rtspUrls.h265[0], 'h265'],
  ['simulator H.265 over RTSP/UDP', () => `${simulator.rtspUrls.h265[0]}#transport=udp`, 'h265'],
  ['simulator H.265 over RTMP (enhanced)', () => simulator.h265Urls[0], 'h265'],
  ['GStreamer H.265 over RTSP/TCP', () => gst.h265, 'h265'],
  ['GStreamer H.265 over RTSP/UDP', () => `${gst.h265}#transport=udp`, 'h265'],
  ['GStreamer H.264 over RTSP/UDP', () => `${gst.h264}#transport=udp`, 'h264'],
];

for (const [name, url, codec] of sources) {
  t.test(`${name} plays as ${codec === 'h265' ? 'enhanced-FLV hvc1' : 'AVC'}`, async (t) => {
    const { started, tags } = await relayAndRead(url());
    t.equal(started.status, 200, 'the forward starts');
    t.equal(started.body.codec, codec, 'the node learnt the codec');
    const video = describeVideo(tags);
    if (codec === 'h265') {
      t.ok(video.enhanced, 'ExVideoTagHeader');
      t.equal(video.fourcc, FOURCC_HVC1, 'FourCC hvc1');
      t.equal(video.packetTypes[0], 0, 'first video tag: PacketType SequenceStart');
      t.equal(video.record[0], 1, 'HEVCDecoderConfigurationRecord version 1');
      t.equal(video.record[22], 3, 'with VPS, SPS and PPS arrays');
      t.ok(video.packetTypes.slice(1).every((type) => type === 1 || type === 3), 'then CodedFrames(X) only');
      t.ok(tags.filter((tag) => tag.type === 9).slice(1).every((tag) => tag.data.toString('latin1', 1, 5) === FOURCC_HVC1), 'every frame hvc1');
    } else {
      t.notOk(video.enhanced, 'classic FLV video');
      t.equal(video.codecId, 7, 'CodecID 7 (AVC)');
      t.equal(video.packetTypes[0], 0, 'first video tag: AVC sequence header');
      t.equal(video.record[0], 1, 'AVCDecoderConfigurationRecord version 1');
      t.ok(video.packetTypes.slice(1).every((type) => type === 1), 'then NALUs only');
    }
    t.equal(video.frameTypes[1], 1, 'the first frame is a keyframe');
    const steps = video.timestamps.slice(2).map((ts, i) => ts - video.timestamps[i + 1]);
    t.ok(steps.every((step) => step >= 0 && step < 1000), `timestamps advance (${video.timestamps.slice(0, 6).join(', ')} …)`);
  });
}

t.test('the node relays all of them in-process: no child process', async (t) => {
  const load = await node.control('GET', '/load');
  t.equal(load.body.forwards, sources.length, 'every forward is still there');
  t.ok(load.body.forwardsList.every((f: { state: string }) => f.state === 'live'), 'and live');
  t.same(
    load.body.forwardsList.map((f: { codec: string }) => f.codec).sort(),
    sources.map(([, , codec]) => codec).sort(),
    'each with its codec',
  );
  // ps exits 1 when it lists nothing; its output is what counts.
  const children = spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(node.child.pid)]).stdout.toString().trim();
  t.equal(children, '', `the media node has no child process (${children})`);
});

t.test('an H.265 channel gets one shared H.264 transcode, within the node budget', async (t) => {
  const h265 = channels.get(simulator.rtspUrls.h265[0])!;
  const res = await node.control('POST', '/transcodes', { channelId: h265 });
  t.equal(res.status, 200, 'the transcode starts');
  t.equal(res.body.stream, `${h265}_h264`);
  const tags = await readFlvTags(playUrl(res.body.stream, h265), 20);
  const video = describeVideo(tags);
  t.notOk(video.enhanced, 'classic FLV');
  t.equal(video.codecId, 7, 'the rendition is AVC');
  t.equal(video.packetTypes[0], 0, 'with its sequence header first');
  const again = await node.control('POST', '/transcodes', { channelId: h265 });
  t.equal(again.status, 200, 'a second viewer shares it');
  t.equal((await node.control('GET', '/load')).body.transcodes, 1, 'one transcode for the channel');

  const other = channels.get(gst.h265)!;
  const spent = await node.control('POST', '/transcodes', { channelId: other });
  t.equal(spent.status, 503, 'another H.265 channel finds the budget (1) spent');
  t.equal(spent.body.error, 'TRANSCODE_CAPACITY_EXHAUSTED');
  const h264 = await node.control('POST', '/transcodes', { channelId: channels.get(simulator.urls[0])! });
  t.equal(h264.status, 409, 'an H.264 channel has nothing to transcode');
  const children = spawnSync('ps', ['-o', 'args=', '--ppid', String(node.child.pid)]).stdout.toString().trim().split('\n');
  t.equal(children.length, 1, 'the transcoder is the one child');
  t.match(children[0], /ffmpeg/);
});
