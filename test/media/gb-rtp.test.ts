import t from 'tap';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { request } from 'node:http';
import { join } from 'node:path';
import { FlvTagReader, type FlvTag } from '../../src/media/flv-publisher.js';
import { encodeGbClip, loadGbClip, sendGbMedia, type GbClip } from '../../src/media/gb-media-sender.js';
import { signPlayToken } from '../../src/media/play-token.js';
import { buildRtpPacket, frameRfc4571, parseRtpPacket, Rfc4571Reader, RtpReorderBuffer, type RtpPacket } from '../../src/media/rtp-receiver.js';
import type { VideoCodec } from '../../src/media/flv-mux.js';
import { makeTempDir, until } from '../helper.js';
import { startMediaNodeProcess, type MediaNodeProcess } from './helpers.js';

const SSRC_PREFIX = '044010';

function packet(sequence: number, payload = Buffer.from([sequence & 0xff])): RtpPacket {
  return { marker: false, payloadType: 96, sequence, timestamp: 0, ssrc: 1, payload };
}

t.test('RTP headers: CSRCs, extension and padding are stepped over; anything malformed is refused', async (t) => {
  const base = buildRtpPacket({ marker: true, payloadType: 96, sequence: 65535, timestamp: 0xfffffff0, ssrc: 440100001, payload: Buffer.from('ps') });
  t.match(parseRtpPacket(base), { marker: true, payloadType: 96, sequence: 65535, timestamp: 0xfffffff0, ssrc: 440100001 });
  t.same(parseRtpPacket(base)?.payload, Buffer.from('ps'));
  const withAll = Buffer.concat([Buffer.from([0xb2, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9]), Buffer.alloc(8, 7), Buffer.from([0xbe, 0xde, 0, 1, 1, 2, 3, 4]), Buffer.from('ps'), Buffer.from([0, 0, 3])]);
  t.same(parseRtpPacket(withAll)?.payload, Buffer.from('ps'), '2 CSRCs, a 1-word extension, 3 padding bytes');
  const cases: Array<[string, Buffer]> = [
    ['shorter than a header', base.subarray(0, 11)],
    ['version 1', Buffer.concat([Buffer.from([0x40]), base.subarray(1)])],
    ['CSRCs past the end', Buffer.concat([Buffer.from([0x8f]), base.subarray(1, 12)])],
    ['an extension past the end', Buffer.concat([Buffer.from([0x90]), base.subarray(1, 12), Buffer.from([0, 0, 0xff, 0xff])])],
    ['padding longer than the packet', Buffer.concat([Buffer.from([0xa0]), base.subarray(1), Buffer.from([200])])],
    ['padding count 0', Buffer.concat([Buffer.from([0xa0]), base.subarray(1), Buffer.from([0])])],
  ];
  for (const [what, bytes] of cases) t.equal(parseRtpPacket(bytes), undefined, what);
});

t.test('RFC 4571 framing: any chunking, empty frames skipped, a 65535-byte frame whole', async (t) => {
  const frames = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(65535, 1), Buffer.from('bc')];
  const stream = Buffer.concat(frames.map(frameRfc4571));
  for (const size of [1, 3, 1400, stream.length]) {
    const reader = new Rfc4571Reader();
    const out: Buffer[] = [];
    for (let i = 0; i < stream.length; i += size) out.push(...reader.push(stream.subarray(i, i + size)));
    t.same(out.map((b) => b.length), [1, 65535, 2], `chunks of ${size}`);
  }
});

t.test('the reorder buffer restores order, drops late packets and turns a lasting gap into a discontinuity', async (t) => {
  const reorder = new RtpReorderBuffer({ windowPackets: 4 });
  const order = [65534, 0, 65535, 1, 3, 2, 1, 4];
  const out = order.flatMap((seq) => reorder.push(packet(seq)));
  t.same(out.map((o) => o.packet.sequence), [65534, 65535, 0, 1, 2, 3, 4], 'in order across the 16-bit wrap; the duplicate 1 dropped');
  t.equal(reorder.stats.late, 1);
  t.ok(out.every((o) => !o.discontinuity));
  const gap = [6, 7, 8, 9].flatMap((seq) => reorder.push(packet(seq)));
  t.same(gap, [], 'packets after a gap wait');
  const flushed = reorder.push(packet(10));
  t.same(flushed.map((o) => [o.packet.sequence, o.discontinuity]), [[6, true], [7, false], [8, false], [9, false], [10, false]], 'past the window: a loss, marked once');
  t.equal(reorder.stats.lost, 1);
  t.same(reorder.push(packet(5)), [], 'the lost packet arriving late is dropped');
  reorder.push(packet(12));
  t.same(reorder.flushGap().map((o) => [o.packet.sequence, o.discontinuity]), [[12, true]], 'the timer gives up on a gap too');
});

async function clipOf(dir: string, codec: VideoCodec): Promise<GbClip> {
  const file = join(dir, `clip.${codec}`);
  await encodeGbClip(file, codec, 2, '320x240');
  return loadGbClip(file, codec);
}

/** Reads FLV tags from an HTTP-FLV play until `enough` says stop (or the stream ends). */
function readFlv(url: string, enough: (tags: FlvTag[]) => boolean, timeoutMs = 20_000): Promise<{ status: number; tags: FlvTag[] }> {
  return new Promise((resolve, reject) => {
    const tags: FlvTag[] = [];
    const reader = new FlvTagReader();
    const req = request(url, (res) => {
      const done = () => {
        clearTimeout(timer);
        req.destroy();
        resolve({ status: res.statusCode ?? 0, tags });
      };
      const timer = setTimeout(done, timeoutMs);
      res.on('data', (chunk: Buffer) => {
        tags.push(...reader.push(chunk));
        if (enough(tags)) done();
      });
      res.on('end', done);
      res.on('close', done);
    });
    req.on('error', reject);
    req.end();
  });
}

function playUrl(node: MediaNodeProcess, channelId: string, fence: number): string {
  const token = signPlayToken({ sessionId: `s-${channelId}`, channelId, nodeId: 'test-node', fence, expiresAt: Date.now() + 60_000 }, node.playSecret);
  return `${node.playBaseUrl}/live/${channelId}.flv?token=${encodeURIComponent(token)}`;
}

const isVideoKeyframe = (tag: FlvTag) => tag.type === 9 && (tag.data[0] & 0x70) === 0x10;
const isSequenceHeader = (tag: FlvTag) => tag.type === 9 && (tag.data[0] & 0x80 ? (tag.data[0] & 0x0f) === 0 : tag.data[1] === 0);

t.test('GB/T 28181 media on a real media node', async (t) => {
  const dir = await makeTempDir(t);
  const clips = { h264: await clipOf(dir, 'h264'), h265: await clipOf(dir, 'h265') };
  const node = await startMediaNodeProcess(t, { sourceTimeoutMs: 4000, env: { MEDIA_RTP_SILENCE_MS: '1500' } });
  let fence = 1;
  const open = async (channelId: string, transport: 'udp' | 'tcp-passive') => {
    const res = await node.control('POST', '/rtp-servers', { channelId, fence: (fence += 1), transport, ssrcPrefix: SSRC_PREFIX });
    t.equal(res.status, 200, `POST /rtp-servers ${channelId}`);
    return { ...(res.body as { host: string; port: number; ssrc: string }), fence };
  };

  for (const codec of ['h264', 'h265'] as const) {
    for (const transport of ['udp', 'tcp-passive'] as const) {
      t.test(`${codec} over ${transport}: first picture → await answers, FLV plays with the right codec, SSRC freed on close`, async (t) => {
        const channelId = `gb-${codec}-${transport}`;
        const server = await open(channelId, transport);
        t.match(server, { host: '127.0.0.1', ssrc: /^044010[0-9]{4}$/ });
        const sender = sendGbMedia(clips[codec], { ip: server.host, port: server.port, transport: transport === 'udp' ? 'udp' : 'tcp', ssrc: server.ssrc });
        t.teardown(() => sender.stop());
        const ready = await node.control('POST', `/forwards/${channelId}/await`, { fence: server.fence });
        t.equal(ready.status, 200, 'the forward is live once the first picture is published');
        const play = await readFlv(playUrl(node, channelId, server.fence), (tags) => tags.filter((tag) => tag.type === 9).length >= 30);
        t.equal(play.status, 200);
        const video = play.tags.filter((tag) => tag.type === 9);
        t.ok(video.length >= 30, `${video.length} video tags played`);
        t.ok(isSequenceHeader(video[0]), 'a sequence header first');
        if (codec === 'h265') t.equal(video[0].data.toString('latin1', 1, 5), 'hvc1', 'enhanced FLV, hvc1');
        else t.equal(video[0].data[0] & 0x0f, 7, 'AVC');
        t.ok(isVideoKeyframe(video[1]), 'then a keyframe');
        const stats = (await node.control('GET', `/rtp-servers/${channelId}`)).body as { accepted: number; codec: string; lost: number };
        t.equal(stats.codec, codec);
        t.ok(stats.accepted > 30);
        t.equal(stats.lost, 0);
        const before = ((await node.control('GET', '/load')).body as { rtpServers: number }).rtpServers;
        t.equal((await node.control('DELETE', `/forwards/${channelId}?fence=${server.fence}`)).status, 200);
        const after = ((await node.control('GET', '/load')).body as { rtpServers: number }).rtpServers;
        t.equal(after, before - 1, 'the SSRC is freed');
        t.equal((await node.control('GET', `/rtp-servers/${channelId}`)).status, 404, 'and the port closed');
      });
    }
  }

  t.test('RTP from a wrong SSRC or another address never reaches viewers', async (t) => {
    const channelId = 'gb-inject-udp';
    const server = await open(channelId, 'udp');
    // A stranger first: garbage, then well-formed RTP with a wrong SSRC (H.265, so it would show).
    const stranger = createSocket('udp4');
    t.teardown(() => stranger.close());
    await new Promise<void>((r) => stranger.bind(0, '127.0.0.1', () => r()));
    for (let i = 0; i < 20; i += 1) stranger.send(Buffer.alloc(100 + i, i), server.port, server.host);
    const wrong = sendGbMedia(clips.h265, { ip: server.host, port: server.port, transport: 'udp', ssrc: '1234567890' });
    t.teardown(() => wrong.stop());
    await until(t, 'the wrong-SSRC packets arrive', async () => ((await node.control('GET', `/rtp-servers/${channelId}`)).body as { wrongSsrc: number }).wrongSsrc > 20);
    wrong.stop();
    const device = sendGbMedia(clips.h264, { ip: server.host, port: server.port, transport: 'udp', ssrc: server.ssrc });
    t.teardown(() => device.stop());
    t.equal((await node.control('POST', `/forwards/${channelId}/await`, { fence: server.fence })).status, 200, 'the device goes live despite them');
    // Now an injector with the right SSRC from another address, sending H.265.
    const injector = sendGbMedia(clips.h265, { ip: server.host, port: server.port, transport: 'udp', ssrc: server.ssrc });
    t.teardown(() => injector.stop());
    const play = await readFlv(playUrl(node, channelId, server.fence), (tags) => tags.filter((tag) => tag.type === 9).length >= 40);
    const video = play.tags.filter((tag) => tag.type === 9);
    t.ok(video.length >= 40);
    t.ok(video.every((tag) => (tag.data[0] & 0x80) === 0 && (tag.data[0] & 0x0f) === 7), 'every tag a viewer got is the device\'s H.264');
    const stats = (await node.control('GET', `/rtp-servers/${channelId}`)).body as { wrongPeer: number; wrongSsrc: number; malformed: number };
    t.ok(stats.wrongPeer > 10, `the injector's packets were refused (${stats.wrongPeer})`);
    t.ok(stats.malformed >= 20, 'the garbage counted as malformed');
    await node.control('DELETE', `/forwards/${channelId}?fence=${server.fence}`);
  });

  t.test('TCP: a stranger connected first with empty, huge and garbage frames does not keep the device out', async (t) => {
    const channelId = 'gb-inject-tcp';
    const server = await open(channelId, 'tcp-passive');
    const stranger = connect({ host: server.host, port: server.port });
    t.teardown(() => stranger.destroy());
    await new Promise<void>((r) => stranger.once('connect', () => r()));
    stranger.write(Buffer.from([0, 0, 0, 0])); // two empty frames
    stranger.write(frameRfc4571(Buffer.alloc(65535, 0x11))); // the largest frame, not RTP
    stranger.write(frameRfc4571(buildRtpPacket({ marker: true, payloadType: 96, sequence: 1, timestamp: 0, ssrc: 42, payload: Buffer.alloc(500) })));
    await until(t, 'the stranger\'s frames are read', async () => {
      const stats = (await node.control('GET', `/rtp-servers/${channelId}`)).body as { malformed: number; wrongSsrc: number };
      return stats.malformed >= 1 && stats.wrongSsrc >= 1;
    });
    const closed = new Promise<void>((r) => stranger.once('close', () => r()));
    const device = sendGbMedia(clips.h265, { ip: server.host, port: server.port, transport: 'tcp', ssrc: server.ssrc });
    t.teardown(() => device.stop());
    t.equal((await node.control('POST', `/forwards/${channelId}/await`, { fence: server.fence })).status, 200, 'the device goes live');
    await closed;
    t.pass('the stranger was cut once the device proved itself');
    const late = connect({ host: server.host, port: server.port });
    const lateClosed = await new Promise<boolean>((r) => {
      late.once('close', () => r(true));
      late.once('error', () => undefined);
    });
    t.ok(lateClosed, 'a second connection after the device is refused');
    await node.control('DELETE', `/forwards/${channelId}?fence=${server.fence}`);
  });

  t.test('a device that stops sending: the live forward fails after the RTP silence and frees its SSRC', async (t) => {
    const channelId = 'gb-silent';
    const server = await open(channelId, 'udp');
    const device = sendGbMedia(clips.h264, { ip: server.host, port: server.port, transport: 'udp', ssrc: server.ssrc });
    t.equal((await node.control('POST', `/forwards/${channelId}/await`, { fence: server.fence })).status, 200);
    device.stop();
    await until(t, 'the forward is reported failed', async () => {
      const load = (await node.control('GET', '/load')).body as { failed: Array<{ channelId: string; fence: number }> };
      return load.failed.some((f) => f.channelId === channelId && f.fence === server.fence);
    });
    t.equal((await node.control('GET', `/rtp-servers/${channelId}`)).status, 404, 'the port is closed');
  });

  t.test('a device that never sends: await answers 504, and nothing is kept', async (t) => {
    const channelId = 'gb-never';
    const before = ((await node.control('GET', '/load')).body as { rtpServers: number }).rtpServers;
    const server = await open(channelId, 'udp');
    const ready = await node.control('POST', `/forwards/${channelId}/await`, { fence: server.fence });
    t.equal(ready.status, 504);
    t.match(ready.body, { error: 'SOURCE_UNAVAILABLE' });
    const load = (await node.control('GET', '/load')).body as { rtpServers: number; forwardsList: Array<{ channelId: string }> };
    t.equal(load.rtpServers, before, 'its SSRC is free again');
    t.notOk(load.forwardsList.some((f) => f.channelId === channelId), 'no forward left');
  });

  t.test('bad requests get a 4xx with a code', async (t) => {
    const cases: Array<[string, unknown, number, string]> = [
      ['no transport', { channelId: 'gb-bad', fence: 1, ssrcPrefix: SSRC_PREFIX }, 400, 'BAD_REQUEST'],
      ['transport tcp-active', { channelId: 'gb-bad', fence: 1, transport: 'tcp-active', ssrcPrefix: SSRC_PREFIX }, 400, 'BAD_REQUEST'],
      ['a 5-digit prefix', { channelId: 'gb-bad', fence: 1, transport: 'udp', ssrcPrefix: '04401' }, 400, 'BAD_REQUEST'],
      ['a prefix starting with 2', { channelId: 'gb-bad', fence: 1, transport: 'udp', ssrcPrefix: '244010' }, 400, 'BAD_REQUEST'],
      ['an unknown field', { channelId: 'gb-bad', fence: 1, transport: 'udp', ssrcPrefix: SSRC_PREFIX, port: 5000 }, 400, 'BAD_REQUEST'],
      ['a bad channel id', { channelId: '../x', fence: 1, transport: 'udp', ssrcPrefix: SSRC_PREFIX }, 400, 'BAD_REQUEST'],
    ];
    for (const [what, body, status, code] of cases) {
      const res = await node.control('POST', '/rtp-servers', body);
      t.equal(res.status, status, what);
      t.match(res.body, { error: code }, what);
    }
    const stale = await node.control('POST', '/rtp-servers', { channelId: 'gb-h264-udp', fence: 1, transport: 'udp', ssrcPrefix: SSRC_PREFIX });
    t.equal(stale.status, 409, 'an older fence than the channel had');
    const unauthenticated = await fetch(`${node.controlUrl}/rtp-servers`, { method: 'POST', body: '{}' });
    t.equal(unauthenticated.status, 401, 'no control secret');
    t.equal((await node.control('POST', '/forwards/gb-none/await', { fence: 99 })).status, 409, 'await for a forward that does not exist');
  });
});
