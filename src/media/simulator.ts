/**
 * Camera simulator: N synthetic live H.264 cameras at rtmp://127.0.0.1:<port>/cam/<n> (n = 1..N), and M
 * H.265 cameras at rtmp://…/cam265/<m>, for demos, tests and benchmarks; with an RTSP port, every camera is
 * also rtsp://127.0.0.1:<rtspPort>/cam/<n> (or /cam265/<m>), TCP interleaved and UDP alike.
 * Cheap by construction: a short test clip is encoded once (H.264 baseline + AAC, 640x360, 25 fps, a
 * keyframe every second), then each RTMP H.264 camera is an `ffmpeg -re -stream_loop -1 -c copy` publisher
 * into the simulator's own node-media-server (one per process: NMS keeps global state). The RTSP cameras and
 * the H.265 cameras are played from Annex-B clips inside this process (simulated-cameras.ts).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import NodeMediaServer, { type NmsSession } from 'node-media-server';
import { captureStderrTail, spawnFfmpeg, stopChild } from './ffmpeg.js';
import type { VideoCodec } from './flv-mux.js';
import type { NmsPacket } from './nms-guard.js';
import { readClipUnits, SimulatedCameraServer, type SimulatedCamera } from './simulated-cameras.js';
import { assertPortFree } from './net-ports.js';
import { routeNmsLogs } from './nms-logging.js';

export interface SimulatorOptions {
  /** H.264 cameras. */
  cameras: number;
  /** H.265 cameras (default 0). */
  h265Cameras?: number;
  rtmpPort: number;
  /** Serve every camera over RTSP too (TCP and UDP); absent → RTMP only. */
  rtspPort?: number;
  /** Clip length; the loop makes the camera endless. */
  clipSeconds?: number;
  /** How long to wait for every camera to be publishing. */
  readyTimeoutMs?: number;
}

export interface SimulatorCamera {
  codec: VideoCodec;
  rtmp: string;
  rtsp?: string;
}

export interface Simulator {
  /** The H.264 cameras' RTMP URLs (as before H.265 and RTSP cameras existed). */
  urls: string[];
  cameras: SimulatorCamera[];
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const CAMERA_APP = 'cam';
const H265_APP = 'cam265';
const nmsRequire = createRequire(import.meta.url);
const Flv = nmsRequire('node-media-server/src/protocol/flv.js') as {
  parserTag(type: number, time: number, size: number, data: Buffer): NmsPacket;
};
const BaseSession = nmsRequire('node-media-server/src/session/base_session.js') as new () => NmsSession;
const BroadcastServer = nmsRequire('node-media-server/src/server/broadcast_server.js') as new (path: string) => {
  postPublish(session: NmsSession): string | null;
  donePublish(session: NmsSession): void;
  broadcastMessage(packet: NmsPacket): void;
};
const nmsContext = nmsRequire('node-media-server/src/core/context.js') as { broadcasts: Map<string, InstanceType<typeof BroadcastServer>> };
const RESPAWN_DELAY_MS = 1000;
/** DejaVu ships with most Linux images; without it the clip simply has no label. */
const LABEL_FONTS = ['/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf', '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf'];


function runToEnd(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawnFfmpeg(args);
    const stderrTail = captureStderrTail(child);
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`ffmpeg exited with ${code}: ${stderrTail()}`)),
    );
  });
}

/** Encodes the shared clip once: testsrc2 + a sine tone, labelled when a font is available. */
export async function encodeTestClip(file: string, seconds: number): Promise<void> {
  const font = LABEL_FONTS.find((path) => existsSync(path));
  const label = font
    ? [
        '-vf',
        `drawtext=fontfile=${font}:text='Sharp Eyes camera simulator %{pts\\:hms}':fontsize=22:fontcolor=white:box=1:boxcolor=black@0.6:x=12:y=12`,
      ]
    : [];
  await runToEnd([
    '-y',
    ...['-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=25:duration=${seconds}`],
    ...['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=44100:duration=${seconds}`],
    ...label,
    ...['-c:v', 'libx264', '-profile:v', 'baseline', '-preset', 'veryfast', '-pix_fmt', 'yuv420p'],
    ...['-b:v', '500k', '-maxrate', '500k', '-bufsize', '1000k'],
    ...['-g', '25', '-keyint_min', '25', '-sc_threshold', '0'],
    ...['-c:a', 'aac', '-b:a', '64k', '-ar', '44100'],
    ...['-f', 'flv', file],
  ]);
}

/**
 * The same picture as an Annex-B elementary stream with an access unit delimiter before each picture and the
 * parameter sets before each keyframe, which is what an RTP camera sends (no audio).
 */
export async function encodeAnnexBClip(file: string, codec: VideoCodec, seconds: number): Promise<void> {
  const encoder = codec === 'h264'
    ? ['-c:v', 'libx264', '-profile:v', 'baseline', '-preset', 'veryfast', '-x264-params', 'aud=1:repeat-headers=1', '-f', 'h264']
    : ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'aud=1:repeat-headers=1:bframes=0:keyint=25:min-keyint=25:scenecut=0:open-gop=0:log-level=error', '-f', 'hevc'];
  await runToEnd([
    '-y',
    ...['-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=25:duration=${seconds}`],
    '-pix_fmt', 'yuv420p', '-b:v', '500k', '-g', '25', '-keyint_min', '25', '-sc_threshold', '0',
    ...encoder,
    file,
  ]);
}

/** Publishes an H.265 camera's tags into the simulator's NMS in-process, as an RTMP publisher would. */
function openInProcessPublish(app: string, name: string): { write: (type: number, timestamp: number, data: Buffer) => void; close: () => void } {
  const streamPath = `/${app}/${name}`;
  const session = new BaseSession();
  session.protocol = 'rtmp';
  session.streamApp = app;
  session.streamName = name;
  session.streamPath = streamPath;
  session.isPublisher = true;
  const broadcast = nmsContext.broadcasts.get(streamPath) ?? new BroadcastServer(streamPath);
  nmsContext.broadcasts.set(streamPath, broadcast);
  const error = broadcast.postPublish(session);
  if (error) throw new Error(`cannot publish ${streamPath}: ${error}`);
  return {
    write: (type, timestamp, data) => broadcast.broadcastMessage(Flv.parserTag(type, timestamp, data.length, data)),
    close: () => broadcast.donePublish(session),
  };
}

export async function startSimulator(options: SimulatorOptions): Promise<Simulator> {
  const { cameras, rtmpPort } = options;
  const h265Cameras = options.h265Cameras ?? 0;
  if (!Number.isInteger(cameras) || cameras < 1 || cameras > 1000) throw new Error('cameras must be 1..1000');
  if (!Number.isInteger(h265Cameras) || h265Cameras < 0 || h265Cameras > 1000) throw new Error('h265 cameras must be 0..1000');
  await assertPortFree(HOST, rtmpPort);
  if (options.rtspPort !== undefined) await assertPortFree(HOST, options.rtspPort);
  const workDir = await mkdtemp(join(tmpdir(), 'camera-simulator-'));
  const clip = join(workDir, 'clip.flv');
  const cleanup = () => rm(workDir, { recursive: true, force: true });
  const seconds = options.clipSeconds ?? 4;
  const units = new Map<VideoCodec, Buffer[][]>();
  try {
    const encodes: Array<Promise<void>> = [encodeTestClip(clip, seconds)];
    const annexB = (codec: VideoCodec) => join(workDir, `clip.${codec}`);
    const codecs: VideoCodec[] = [...(options.rtspPort !== undefined ? (['h264'] as const) : []), ...(h265Cameras > 0 ? (['h265'] as const) : [])];
    for (const codec of codecs) encodes.push(encodeAnnexBClip(annexB(codec), codec, seconds).then(async () => void units.set(codec, await readClipUnits(annexB(codec), codec))));
    await Promise.all(encodes);
  } catch (error) {
    await cleanup();
    throw error;
  }

  routeNmsLogs(null);
  const nms = new NodeMediaServer({
    bind: HOST,
    rtmp: { port: rtmpPort },
    webadmin: { enable: false },
    store: { path: join(workDir, 'nms-store'), maxHistory: 10 },
  });
  nms.store.options.signals = false;
  const publishing = new Set<string>();
  let allPublishing: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (allPublishing = resolve));
  nms.on('postPublish', (session) => {
    if (!session.streamPath.startsWith(`/${CAMERA_APP}/`)) return;
    publishing.add(session.streamPath);
    if (publishing.size >= cameras) allPublishing();
  });
  await nms.run();

  let stopping = false;
  const publishers = new Map<number, ChildProcess>();
  const urls = Array.from({ length: cameras }, (_, i) => `rtmp://${HOST}:${rtmpPort}/${CAMERA_APP}/${i + 1}`);
  const simulated = new Map<string, SimulatedCamera>();
  const all: SimulatorCamera[] = [];
  const rtspBase = options.rtspPort === undefined ? undefined : `rtsp://${HOST}:${options.rtspPort}`;
  for (let n = 1; n <= cameras; n += 1) {
    const path = `/${CAMERA_APP}/${n}`;
    const h264 = units.get('h264');
    if (h264) simulated.set(path, { path, codec: 'h264', units: h264 });
    all.push({ codec: 'h264', rtmp: urls[n - 1], ...(rtspBase ? { rtsp: rtspBase + path } : {}) });
  }
  const inProcess: Array<{ close: () => void }> = [];
  const server = new SimulatedCameraServer(simulated);
  for (let n = 1; n <= h265Cameras; n += 1) {
    const path = `/${H265_APP}/${n}`;
    const camera: SimulatedCamera = { path, codec: 'h265', units: units.get('h265')! };
    simulated.set(path, camera);
    const publish = openInProcessPublish(H265_APP, String(n));
    inProcess.push(publish);
    server.publishTags(camera, (tag) => publish.write(tag.type, tag.timestamp, tag.data));
    all.push({ codec: 'h265', rtmp: `rtmp://${HOST}:${rtmpPort}${path}`, ...(rtspBase ? { rtsp: rtspBase + path } : {}) });
  }
  await server.listen(HOST, options.rtspPort ?? 0);
  const publish = (camera: number) => {
    if (stopping) return;
    const child = spawnFfmpeg(['-re', '-stream_loop', '-1', '-i', clip, '-c', 'copy', '-f', 'flv', urls[camera - 1]]);
    publishers.set(camera, child);
    child.once('exit', () => {
      if (!stopping) setTimeout(() => publish(camera), RESPAWN_DELAY_MS).unref();
    });
  };
  for (let camera = 1; camera <= cameras; camera += 1) publish(camera);

  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await Promise.all([...publishers.values()].map((child) => stopChild(child)));
    for (const publish of inProcess) publish.close();
    await server.close();
    await nms.stop();
    await cleanup();
  };

  const timeoutMs = options.readyTimeoutMs ?? 15_000;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  const outcome = await Promise.race([ready.then(() => 'ready' as const), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    await stop();
    throw new Error(`only ${publishing.size} of ${cameras} simulated cameras published within ${timeoutMs} ms`);
  }
  return { urls, cameras: all, stop };
}
