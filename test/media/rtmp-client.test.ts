/**
 * The lean RTMP pull client (src/media/rtmp-client.ts) against real peers: the camera simulator (H.264 with
 * AAC, and H.265 over enhanced RTMP), and a plain node-media-server fed by a real ffmpeg publish. Then a
 * scripted RTMP server that plays by the spec but chunks hard (chunk size 128, messages interleaved chunk by
 * chunk, type 1/2/3 headers, extended timestamps, aggregate messages), and hostile ones: garbage after the
 * handshake, a chunk size of 1, a 16 MB message, a truncated stream, too many large messages in progress, a
 * refused play, a bad handshake. Each hostile source ends its relay (relays.ts startRelay) with a reason; the
 * test process itself is the proof that nothing was thrown out of a socket handler.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { decodeAmf0Values, encodeAmf0Values, type Amf0Value } from '../../src/media/amf0.js';
import { ffmpegPath } from '../../src/media/ffmpeg.js';
import { MAX_FLV_TAG_BYTES, type FlvTag } from '../../src/media/flv-publisher.js';
import { findFreePort } from '../../src/media/net-ports.js';
import { startRelay } from '../../src/media/relays.js';
import { pullRtmp } from '../../src/media/rtmp-client.js';
import { startSimulatorProcess, stopProcess, waitForLine } from './helpers.js';
import { until } from '../helper.js';

interface Message {
  type: number;
  timestamp: number;
  payload: Buffer;
}

/** Pulls `url` until `videoMessages` video messages came (or the pull ended). */
function pull(url: string, videoMessages: number, timeoutMs = 20_000): Promise<{ messages: Message[]; ended?: string }> {
  return new Promise((resolve) => {
    const messages: Message[] = [];
    let video = 0;
    const timer = setTimeout(() => done(`no ${videoMessages} video messages within ${timeoutMs} ms`), timeoutMs);
    const done = (ended?: string) => {
      clearTimeout(timer);
      client.close();
      resolve({ messages, ended });
    };
    const client = pullRtmp({
      url,
      onMessage: (type, timestamp, payload) => {
        messages.push({ type, timestamp, payload: Buffer.from(payload) });
        if (type === 9 && ++video >= videoMessages) done();
      },
      onEnd: (reason) => done(reason),
    });
  });
}

function checkTimeline(tt: Test, messages: Message[]) {
  for (const type of [8, 9]) {
    const times = messages.filter((m) => m.type === type).map((m) => m.timestamp);
    tt.ok(times.every((time, i) => i === 0 || time >= times[i - 1]!), `type ${type} timestamps do not go back`);
  }
}

t.test('the camera simulator: H.264 + AAC, and H.265 over enhanced RTMP', async (tt) => {
  const simulator = await startSimulatorProcess(tt, 1, { h265Cameras: 1 });
  const h264 = await pull(simulator.urls[0]!, 30);
  tt.equal(h264.ended, undefined, 'the pull ran');
  const video = h264.messages.filter((m) => m.type === 9);
  tt.equal(video[0]!.payload[0], 0x17, 'first video: AVC keyframe');
  tt.equal(video[0]!.payload[1], 0, 'its AVC sequence header');
  tt.ok(video.some((m, i) => i > 0 && m.payload[0] === 0x17 && m.payload[1] === 1), 'then a coded keyframe');
  tt.ok(h264.messages.some((m) => m.type === 8 && (m.payload[0]! >> 4) === 10), 'and AAC audio');
  checkTimeline(tt, h264.messages);

  const h265 = await pull(simulator.h265Urls[0]!, 30);
  tt.equal(h265.ended, undefined, 'the H.265 pull ran');
  const first = h265.messages.find((m) => m.type === 9)!.payload;
  tt.ok((first[0]! & 0x80) !== 0, 'enhanced RTMP video');
  tt.equal(first.toString('latin1', 1, 5), 'hvc1', 'FourCC hvc1');
  tt.equal(first[0]! & 0x0f, 0, 'SequenceStart first');
  tt.ok(h265.messages.filter((m) => m.type === 9).some((m) => [1, 3].includes(m.payload[0]! & 0x0f)), 'then coded frames');
  checkTimeline(tt, h265.messages);
});

t.test('a plain node-media-server fed by a real ffmpeg publish', async (tt) => {
  const port = await findFreePort();
  const nms = spawn(
    process.execPath,
    ['-e', `const N = require('node-media-server'); new N({ bind: '127.0.0.1', rtmp: { port: ${port} }, webadmin: { enable: false } }).run().then(() => console.log('ready'));`],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  tt.teardown(() => stopProcess(nms));
  await waitForLine(nms, /^ready$/);
  const url = `rtmp://127.0.0.1:${port}/live/ff`;
  const publisher = spawn(ffmpegPath, [
    '-hide_banner', '-loglevel', 'error', '-nostdin', '-re',
    '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '64k',
    '-f', 'flv', url,
  ], { stdio: 'ignore' });
  tt.teardown(() => stopProcess(publisher));
  // A play before the publish waits for it (NMS keeps the subscriber).
  const result = await pull(url, 40, 30_000);
  tt.equal(result.ended, undefined, 'the pull ran');
  const video = result.messages.filter((m) => m.type === 9);
  tt.equal(video[0]!.payload[1], 0, 'AVC sequence header first');
  tt.ok(video.some((m) => m.payload[0] === 0x17 && m.payload[1] === 1), 'a coded keyframe');
  tt.ok(result.messages.some((m) => m.type === 8), 'audio');
  tt.ok(result.messages.some((m) => m.type === 18), 'metadata');
  checkTimeline(tt, result.messages);
});

// ---- a scripted RTMP server

/** One message as chunks: a type-0 header on `csid`, type-3 continuations every `chunkSize` bytes. */
function chunked(csid: number, type: number, timestamp: number, payload: Buffer, chunkSize = 128, streamId = 1): Buffer[] {
  const extended = timestamp >= 0xffffff;
  const header = Buffer.alloc(12 + (extended ? 4 : 0));
  header[0] = csid;
  header.writeUIntBE(extended ? 0xffffff : timestamp, 1, 3);
  header.writeUIntBE(payload.length, 4, 3);
  header[7] = type;
  header.writeUInt32LE(streamId, 8);
  if (extended) header.writeUInt32BE(timestamp, 12);
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < payload.length || offset === 0; offset += chunkSize) {
    const piece = payload.subarray(offset, offset + chunkSize);
    const basic = offset === 0 ? header : Buffer.concat([Buffer.from([0xc0 | csid]), extended ? header.subarray(12) : Buffer.alloc(0)]);
    chunks.push(Buffer.concat([basic, piece]));
    if (payload.length === 0) break;
  }
  return chunks;
}

const command = (streamId: number, ...values: Amf0Value[]) => Buffer.concat(chunked(3, 20, 0, encodeAmf0Values(values), 128, streamId));
const control = (type: number, payload: Buffer) => Buffer.concat(chunked(2, type, 0, payload, 128, 0));
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

interface Script {
  /** Answer the handshake with this first byte (3 is RTMP). */
  version?: number;
  /** Before connect is answered: bytes right after the handshake. */
  afterHandshake?: (socket: Socket) => void;
  /** Play answered with this onStatus code. */
  playStatus?: string;
  /** Once playing. */
  playing?: (socket: Socket) => void | Promise<void>;
}

async function scriptedServer(tt: Test, script: Script): Promise<string> {
  const server: Server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    let buffer = Buffer.alloc(0);
    let state: 'c0c1' | 'c2' | 'chunks' = 'c0c1';
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (state === 'c0c1' && buffer.length >= 1537) {
        const s1 = randomBytes(1536);
        socket.write(Buffer.concat([Buffer.from([script.version ?? 3]), s1, buffer.subarray(1, 1537)]));
        buffer = buffer.subarray(1537);
        state = 'c2';
      }
      if (state === 'c2' && buffer.length >= 1536) {
        buffer = buffer.subarray(1536);
        state = 'chunks';
        if (script.afterHandshake) {
          script.afterHandshake(socket);
          return;
        }
      }
      // The client's chunks: type-0 headers on csid < 64, one chunk each (its chunk size is 4096).
      while (state === 'chunks' && buffer.length >= 12) {
        const length = buffer.readUIntBE(4, 3);
        if (buffer.length < 12 + length) break;
        const type = buffer[7]!;
        const payload = buffer.subarray(12, 12 + length);
        buffer = buffer.subarray(12 + length);
        if (type !== 20) continue;
        const [name, id] = decodeAmf0Values(payload);
        if (name === 'connect') {
          socket.write(control(5, u32(2_500_000)));
          socket.write(command(0, '_result', id!, { fmsVer: 'FMS/3,0,1,123' }, { level: 'status', code: 'NetConnection.Connect.Success' }));
        } else if (name === 'createStream') {
          socket.write(command(0, '_result', id!, null, 1));
        } else if (name === 'play') {
          socket.write(command(1, 'onStatus', 0, null, { level: script.playStatus ? 'error' : 'status', code: script.playStatus ?? 'NetStream.Play.Start' }));
          void script.playing?.(socket);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  tt.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address() as { port: number };
  return `rtmp://127.0.0.1:${address.port}/live/test`;
}

/** A relay of `url` (the path media-node forwards take): its tags, and why it ended. */
function relay(url: string, timeoutMs = 10_000): Promise<{ tags: FlvTag[]; reason: string }> {
  return new Promise((resolve) => {
    const tags: FlvTag[] = [];
    startRelay(url, { timeoutMs, rtspTransport: 'tcp' }, {
      output: () => ({ writeTag: (tag) => void tags.push(tag), feed: () => undefined }),
      onExit: (reason) => resolve({ tags, reason }),
    });
  });
}

t.test('a server that chunks hard: every message arrives whole and timed', async (tt) => {
  const big = randomBytes(10_000);
  big[0] = 0x17;
  const audio = Array.from({ length: 5 }, (_, i) => Buffer.from([0xaf, 1, i, i, i]));
  const expected: Array<[number, number, Buffer]> = [];
  const url = await scriptedServer(tt, {
    playing: async (socket) => {
      const out: Buffer[] = [];
      // A 10 KB video message in 128-byte chunks on csid 6, audio messages on csid 4 between its chunks.
      const videoChunks = chunked(6, 9, 40, big);
      videoChunks.forEach((chunk, i) => {
        out.push(chunk);
        if (i < audio.length) out.push(...chunked(4, 8, 40 + i * 23, audio[i]!));
      });
      audio.forEach((a, i) => expected.push([8, 40 + i * 23, a]));
      expected.push([9, 40, big]);
      // Type 1 (delta 40, new length), type 2 (delta 40), type 3 (a new message: the delta again).
      const p1 = randomBytes(300);
      const h1 = Buffer.from([0x40 | 6, 0, 0, 40, 0, 0x01, 0x2c, 9]);
      out.push(Buffer.concat([h1, p1.subarray(0, 128)]), Buffer.concat([Buffer.from([0xc6]), p1.subarray(128, 256)]), Buffer.concat([Buffer.from([0xc6]), p1.subarray(256)]));
      expected.push([9, 80, p1]);
      const p2 = randomBytes(300);
      out.push(Buffer.concat([Buffer.from([0x80 | 6, 0, 0, 40]), p2.subarray(0, 128)]), Buffer.concat([Buffer.from([0xc6]), p2.subarray(128, 256)]), Buffer.concat([Buffer.from([0xc6]), p2.subarray(256)]));
      expected.push([9, 120, p2]);
      const p3 = randomBytes(300);
      out.push(Buffer.concat([Buffer.from([0xc6]), p3.subarray(0, 128)]), Buffer.concat([Buffer.from([0xc6]), p3.subarray(128, 256)]), Buffer.concat([Buffer.from([0xc6]), p3.subarray(256)]));
      expected.push([9, 160, p3]);
      // An extended timestamp (past 24 bits), its continuation chunks carrying it too.
      const p4 = randomBytes(200);
      out.push(...chunked(7, 9, 0x1234567, p4));
      expected.push([9, 0x1234567, p4]);
      // An aggregate message: two FLV tags, timed relative to the first.
      const a1 = Buffer.from([0xaf, 1, 9, 9]);
      const v1 = Buffer.from([0x27, 1, 0, 0, 0, 7, 7]);
      const tag = (type: number, time: number, body: Buffer) => {
        const head = Buffer.alloc(11);
        head[0] = type;
        head.writeUIntBE(body.length, 1, 3);
        head.writeUIntBE(time, 4, 3);
        return Buffer.concat([head, body, u32(11 + body.length)]);
      };
      out.push(...chunked(8, 22, 1000, Buffer.concat([tag(8, 500, a1), tag(9, 520, v1)])));
      expected.push([8, 1000, a1], [9, 1020, v1]);
      // A larger chunk size from now on, then one message in a single chunk.
      out.push(control(1, u32(4096)));
      const p5 = randomBytes(3000);
      out.push(...chunked(6, 9, 2000, p5, 4096));
      expected.push([9, 2000, p5]);
      // Written in small pieces, so headers and payloads are cut across reads.
      const all = Buffer.concat(out);
      for (let offset = 0; offset < all.length; offset += 97) {
        socket.write(all.subarray(offset, offset + 97));
        await new Promise((r) => setTimeout(r, 1));
      }
      socket.end();
    },
  });
  const { tags, reason } = await relay(url);
  tt.equal(reason, 'the source closed the connection', 'ends when the server closes');
  tt.equal(tags.length, expected.length, 'every message');
  tags.forEach((tag, i) => {
    const [type, timestamp, payload] = expected[i]!;
    tt.same([tag.type, tag.timestamp], [type, timestamp], `message ${i}: type and time`);
    tt.ok(tag.data.equals(payload), `message ${i}: its bytes`);
  });
});

const hostile: Array<[string, Script, RegExp]> = [
  ['garbage after the handshake', { afterHandshake: (s) => s.write('GET / HTTP/1.1\r\nHost: camera\r\n\r\n') }, /malformed RTMP.*starts without a full header/],
  ['random bytes after the handshake', { afterHandshake: (s) => s.write(Buffer.concat([Buffer.from([0x47]), randomBytes(4096)])) }, /malformed RTMP/],
  ['a chunk size of 1', { playing: (s) => void s.write(control(1, u32(1))) }, /RTMP chunk size 1$/],
  ['a chunk size of 0', { playing: (s) => void s.write(control(1, u32(0))) }, /RTMP chunk size 0$/],
  [
    'a message of 16 MB',
    { playing: (s) => void s.write(Buffer.concat([Buffer.from([6, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0]), randomBytes(128)])) },
    /RTMP message of 16777215 bytes/,
  ],
  [
    'large messages in progress on many chunk streams',
    {
      playing: (s) => {
        for (let csid = 10; csid < 14; csid++) {
          const header = Buffer.from([csid, 0, 0, 0, 0, 0, 0, 9, 1, 0, 0, 0]);
          header.writeUIntBE(MAX_FLV_TAG_BYTES, 4, 3);
          s.write(Buffer.concat([header, randomBytes(128)]));
        }
      },
    },
    /messages in progress exceed the bound/,
  ],
  [
    'a truncated stream',
    { playing: (s) => s.end(Buffer.concat([Buffer.from([6, 0, 0, 0, 0, 0x13, 0x88, 9, 1, 0, 0, 0]), randomBytes(128), Buffer.from([0xc6]), randomBytes(50)])) },
    /^the source closed the connection$/,
  ],
  ['a refused play', { playStatus: 'NetStream.Play.StreamNotFound' }, /refused the play: NetStream.Play.StreamNotFound/],
  ['a handshake of another version', { version: 6 }, /RTMP version 6/],
  ['a new header inside a message', { playing: (s) => void s.write(Buffer.concat([chunked(6, 9, 0, randomBytes(300))[0]!, chunked(6, 9, 0, randomBytes(10))[0]!])) }, /a new message header inside a message/],
];

for (const [name, script, reason] of hostile) {
  t.test(`hostile source: ${name} ends the relay with a reason`, async (tt) => {
    const url = await scriptedServer(tt, script);
    const result = await relay(url);
    tt.match(result.reason, reason);
  });
}

t.test('a source that stays silent after play ends on the first-data timeout', async (tt) => {
  const url = await scriptedServer(tt, {});
  const result = await relay(url, 1500);
  tt.match(result.reason, /sent nothing for 1500 ms/);
  tt.equal(result.tags.length, 0);
});

t.test('an unreachable source ends with the connection error', async (tt) => {
  const result = await relay(`rtmp://127.0.0.1:${await findFreePort()}/live/x`);
  tt.match(result.reason, /ECONNREFUSED/);
});

t.test('hostile sources one after another leave no memory behind', async (tt) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // Each declares a largest-tag message, sends a little of it and closes: the buffer is dropped with the relay.
  const url = await scriptedServer(tt, {
    playing: (s) => {
      const header = Buffer.from([6, 0, 0, 0, 0, 0, 0, 9, 1, 0, 0, 0]);
      header.writeUIntBE(MAX_FLV_TAG_BYTES, 4, 3);
      s.end(Buffer.concat([header, randomBytes(128)]));
    },
  });
  gc();
  const before = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < 20; i++) tt.match((await relay(url)).reason, /closed the connection/);
  // V8 frees array buffers' memory on a background thread after the collection, and a paced socket's resume
  // may wait for the next media tick: so the count is read until it settles (a leak never does), not once.
  let grown = Number.POSITIVE_INFINITY;
  await until(tt, 'the dropped messages to be freed', async () => {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
    grown = process.memoryUsage().arrayBuffers - before;
    return grown < 4 * MAX_FLV_TAG_BYTES;
  }, 10_000).catch(() => undefined);
  tt.ok(grown < 4 * MAX_FLV_TAG_BYTES, `array buffers grew by ${grown} bytes over 20 such sources`);
});
