/**
 * Issue 10: a camera (or whoever answers at its address) is not trusted by the in-process relays. Hostile RTSP
 * and RTMP servers, real sockets, against a real media node process: garbage, endless or huge headers, an
 * absurd SDP, floods of interleaved frames and never-ending fragments, a server that dies mid-stream. Each
 * forward fails (504 before it went live, or a recorded failure after), and the node answers on.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { findFreePort } from '../../src/media/net-ports.js';
import { rtmpHandshake, rtmpSetChunkSize } from './media-attacks.js';
import { startMediaNodeProcess, startSimulatorProcess, stopProcess } from '../media/helpers.js';
import { until } from '../helper.js';

const SOURCE_TIMEOUT_MS = 3000;
const node = await startMediaNodeProcess(t, { sourceTimeoutMs: SOURCE_TIMEOUT_MS });

async function hostileServer(t: { teardown(fn: () => unknown): void }, onConnection: (socket: Socket) => void): Promise<number> {
  const port = await findFreePort();
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return port;
}

const VALID_SDP = [
  'v=0', 'o=- 0 0 IN IP4 127.0.0.1', 's=x', 't=0 0',
  'm=video 0 RTP/AVP 96', 'a=rtpmap:96 H264/90000', 'a=control:trackID=0', '',
].join('\r\n');

/** An RTSP server that answers DESCRIBE with `sdp`, SETUP and PLAY, then runs `afterPlay` on the socket. */
function scriptedRtsp(sdp: string, afterPlay: (socket: Socket) => void) {
  return (socket: Socket) => {
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      let end: number;
      while ((end = pending.indexOf('\r\n\r\n')) !== -1) {
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        const cseq = /CSeq: (\d+)/i.exec(head)?.[1] ?? '0';
        const method = head.split(' ')[0];
        if (method === 'DESCRIBE') socket.write(`RTSP/1.0 200 OK\r\nCSeq: ${cseq}\r\nContent-Length: ${Buffer.byteLength(sdp)}\r\n\r\n${sdp}`);
        else if (method === 'SETUP') socket.write(`RTSP/1.0 200 OK\r\nCSeq: ${cseq}\r\nSession: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n`);
        else if (method === 'PLAY') {
          socket.write(`RTSP/1.0 200 OK\r\nCSeq: ${cseq}\r\nSession: 1\r\n\r\n`);
          afterPlay(socket);
        } else socket.write(`RTSP/1.0 200 OK\r\nCSeq: ${cseq}\r\n\r\n`);
      }
    });
  };
}

/** Writes `make()` until the socket closes or `totalBytes` went out, respecting backpressure. */
function flood(socket: Socket, make: () => Buffer, totalBytes: number): void {
  let sent = 0;
  const pump = () => {
    while (!socket.destroyed && sent < totalBytes) {
      const chunk = make();
      sent += chunk.length;
      if (!socket.write(chunk)) {
        socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

function interleaved(rtp: Buffer): Buffer {
  const head = Buffer.from([0x24, 0, 0, 0]);
  head.writeUInt16BE(rtp.length, 2);
  return Buffer.concat([head, rtp]);
}

function rtp(seq: number, payload: Buffer, marker = false): Buffer {
  const header = Buffer.alloc(12);
  header[0] = 0x80;
  header[1] = (marker ? 0x80 : 0) | 96;
  header.writeUInt16BE(seq & 0xffff, 2);
  header.writeUInt32BE(1000, 4);
  return Buffer.concat([header, payload]);
}

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:')) ?? '';
  return Number(/(\d+)/.exec(line)?.[1] ?? 0) * 1024;
}

const rtspCases: Array<[string, (socket: Socket) => void]> = [
  ['garbage instead of RTSP', (socket) => flood(socket, () => randomBytes(16 * 1024), 4 * 1024 * 1024)],
  ['an endless response header', (socket) => {
    socket.write('RTSP/1.0 200 OK\r\nCSeq: 1\r\nX-Padding: ');
    flood(socket, () => Buffer.alloc(16 * 1024, 'a'), 64 * 1024 * 1024);
  }],
  ['a Content-Length of a gigabyte', (socket) => socket.once('data', () => {
    socket.write('RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 1000000000\r\n\r\n');
    flood(socket, () => Buffer.alloc(16 * 1024, 'v'), 64 * 1024 * 1024);
  })],
  ['silence after the connection', () => undefined],
  ['an SDP with absurd values', scriptedRtsp(
    ['v=0', 'm=video 99999999 RTP/AVP 4294967296', 'a=rtpmap:4294967296 H264/-90000', 'a=fmtp:4294967296 sprop-parameter-sets=' + 'A'.repeat(30_000), 'm=audio 0 RTP/AVP 97', 'a=rtpmap:97 MPEG4-GENERIC/0/99999', ''].join('\r\n'),
    () => undefined,
  )],
  ['an H.264 SDP with a 40 KiB parameter set', scriptedRtsp(
    VALID_SDP.replace('a=control', `a=fmtp:96 sprop-parameter-sets=${randomBytes(30_000).toString('base64')}\r\na=control`),
    (socket) => flood(socket, () => interleaved(rtp(1, randomBytes(1200))), 8 * 1024 * 1024),
  )],
  ['a flood of garbage interleaved frames', scriptedRtsp(VALID_SDP, (socket) => flood(socket, () => interleaved(randomBytes(65_535)), 64 * 1024 * 1024))],
  ['a fragment that never ends (64 MiB of FU-A)', scriptedRtsp(VALID_SDP, (socket) => {
    let seq = 0;
    flood(socket, () => {
      seq += 1;
      const fu = Buffer.concat([Buffer.from([0x7c, seq === 1 ? 0x85 : 0x05]), randomBytes(60_000)]);
      return interleaved(rtp(seq, fu));
    }, 64 * 1024 * 1024);
  })],
  ['frames of absurd RTP headers (CSRC counts, extensions past the end)', scriptedRtsp(VALID_SDP, (socket) => {
    flood(socket, () => {
      const packet = randomBytes(64);
      packet[0] = 0x80 | 0x10 | 0x0f;
      return interleaved(packet);
    }, 4 * 1024 * 1024);
  })],
];

// All at once (each waits out the source timeout; one after the other they took half a minute), each on its own
// channel: every forward is refused, the node answers throughout, and its memory followed none of the floods.
t.test('RTSP sources sending hostile bytes fail their forwards, and the node lives', async (t) => {
  const rssBefore = rssBytes(node.child.pid!);
  await Promise.all(rtspCases.map(async ([name, behave], i) => {
    const port = await hostileServer(t, behave);
    const channelId = `4401060000132000${String(9100 + i).padStart(4, '0')}`;
    const res = await node.control('POST', '/forwards', { channelId, sourceUrl: `rtsp://127.0.0.1:${port}/cam`, fence: Date.now() });
    t.equal(res.status, 504, `${name}: refused as a source that sent no media (${JSON.stringify(res.body)})`);
    t.equal((await fetch(`${node.controlUrl}/healthz`)).status, 200, `${name}: the node still answers`);
  }));
  t.equal((await node.control('GET', '/load')).body.forwards, 0, 'the node holds no forward');
  t.ok(rssBytes(node.child.pid!) - rssBefore < 256 * 1024 * 1024, 'its memory did not follow the floods');
});

t.test('an RTMP source sending garbage, or a chunk size of 0, fails its forward and the node lives', async (t) => {
  const garbage = await hostileServer(t, (socket) => {
    socket.once('data', () => {
      socket.write(rtmpHandshake());
      flood(socket, () => randomBytes(16 * 1024), 8 * 1024 * 1024);
    });
  });
  const zeroChunk = await hostileServer(t, (socket) => {
    socket.once('data', () => {
      socket.write(rtmpHandshake());
      const message = rtmpSetChunkSize(128);
      message.writeUInt32BE(0, message.length - 4);
      socket.write(message);
      flood(socket, () => randomBytes(4096), 4 * 1024 * 1024);
    });
  });
  for (const port of [garbage, zeroChunk]) {
    const res = await node.control('POST', '/forwards', { channelId: '44010600001320009002', sourceUrl: `rtmp://127.0.0.1:${port}/live/cam`, fence: Date.now() });
    t.equal(res.status, 504, `refused (${JSON.stringify(res.body)})`);
    t.equal((await fetch(`${node.controlUrl}/healthz`)).status, 200, 'the node still answers');
  }
});

t.test('an RTSP camera that dies mid-stream: retried, then reported failed; the node lives', async (t) => {
  const camera = await startSimulatorProcess(t, 1, { rtsp: true });
  const channelId = '44010600001320009003';
  const fence = Date.now();
  const res = await node.control('POST', '/forwards', { channelId, sourceUrl: camera.rtspUrls.h264[0], fence });
  t.equal(res.status, 200, 'live first');
  await stopProcess(camera.child);
  await until(t, 'the failure recorded', async () => {
    const load = await node.control('GET', '/load');
    return load.body.failed.some((f: { channelId: string; fence: number }) => f.channelId === channelId && f.fence === fence);
  }, 60_000);
  t.pass('the failure is recorded for the broker');
  t.equal((await fetch(`${node.controlUrl}/healthz`)).status, 200, 'the node still answers');
});
