/**
 * The simulator's RTSP cameras start every new session on a keyframe, sent at once after PLAY, as the IP
 * cameras they stand for do (Hikvision, Dahua: each new RTSP session begins with an IDR), and then play on
 * in real time. Checked with our RTSP client against the simulator's server in this process, on a synthetic
 * clip (no encoder needed): an IDR with its parameter sets every 25 pictures.
 */
import t from 'tap';
import { pullRtsp } from '../../src/media/rtsp-client.js';
import { parseRtp, VideoDepacketizer } from '../../src/media/rtp-depacketizer.js';
import { isKeyframe } from '../../src/media/flv-mux.js';
import { FRAME_MS, sessionOffset, SimulatedCameraServer, type SimulatedCamera } from '../../src/media/simulated-cameras.js';
import { findFreePort } from '../../src/media/net-ports.js';

const nal = (type: number, index: number) => Buffer.from([type, 0x80 | (index & 0x7f), index >> 7, 0x01]);
const GOP = 25;
const units = Array.from({ length: 100 }, (_, i) =>
  i % GOP === 0 ? [nal(0x67, i), nal(0x68, i), nal(0x65, i)] : [nal(0x41, i)],
);
const camera: SimulatedCamera = { path: '/cam/1', codec: 'h264', units };

t.test('sessionOffset puts the joining frame on the last keyframe at or before the clock', async (t) => {
  for (const frame of [0, 1, 24, 25, 26, 99, 100, 137, 1234]) {
    const index = (frame + sessionOffset(camera, frame)) % units.length;
    t.equal(index % GOP, 0, `frame ${frame}: clip index ${index} is a keyframe`);
    t.ok((frame % units.length) - index < GOP && (frame % units.length) >= index, `frame ${frame}: the GOP the clock is in`);
  }
});

t.test('every new RTSP session (TCP and UDP) gets a keyframe first, and pictures in order after it', async (t) => {
  const server = new SimulatedCameraServer(new Map([[camera.path, camera]]));
  const port = await findFreePort();
  await server.listen('127.0.0.1', port);
  t.teardown(() => server.close());
  for (const [i, transport] of (['tcp', 'udp', 'tcp', 'udp', 'tcp'] as const).entries()) {
    // Join at different points of the clock's GOP.
    await new Promise((r) => setTimeout(r, FRAME_MS * (3 + i * 7)));
    const depacketizer = new VideoDepacketizer('h264', 90_000);
    const seen: Array<{ keyframe: boolean; index: number }> = [];
    let done!: () => void;
    const enough = new Promise<void>((resolve) => (done = resolve));
    const pull = await pullRtsp({
      url: `rtsp://127.0.0.1:${port}/cam/1`,
      transport,
      timeoutMs: 5000,
      onRtp: (_track, raw) => {
        const packet = parseRtp(raw);
        if (!packet) return;
        for (const unit of depacketizer.push(packet)) {
          const last = unit.nalus[unit.nalus.length - 1]!;
          seen.push({ keyframe: isKeyframe('h264', unit.nalus), index: (last[1]! & 0x7f) | (last[2]! << 7) });
          if (seen.length >= 3) done();
        }
      },
      onEnd: () => undefined,
    });
    await enough;
    pull.close();
    t.ok(seen[0]!.keyframe, `${transport} session ${i + 1}: the first picture is a keyframe (clip index ${seen[0]!.index})`);
    t.same(seen.slice(1, 3).map((s) => s.index), [seen[0]!.index + 1, seen[0]!.index + 2], 'then the pictures after it, in order');
  }
});
