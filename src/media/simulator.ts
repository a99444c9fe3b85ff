/**
 * Camera simulator: N synthetic live cameras at rtmp://127.0.0.1:<port>/cam/<n> (n = 1..N), for demos,
 * tests and benchmarks. Cheap by construction: a short test clip is encoded once (H.264 baseline + AAC,
 * 640x360, 25 fps, a keyframe every second), then each camera is an `ffmpeg -re -stream_loop -1 -c copy`
 * publisher into the simulator's own node-media-server (one per process: NMS keeps global state).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import NodeMediaServer from 'node-media-server';
import { captureStderrTail, spawnFfmpeg, stopChild } from './ffmpeg.js';
import { assertPortFree } from './net-ports.js';
import { routeNmsLogs } from './nms-logging.js';

export interface SimulatorOptions {
  cameras: number;
  rtmpPort: number;
  /** Clip length; the loop makes the camera endless. */
  clipSeconds?: number;
  /** How long to wait for every camera to be publishing. */
  readyTimeoutMs?: number;
}

export interface Simulator {
  urls: string[];
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const CAMERA_APP = 'cam';
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

export async function startSimulator(options: SimulatorOptions): Promise<Simulator> {
  const { cameras, rtmpPort } = options;
  if (!Number.isInteger(cameras) || cameras < 1 || cameras > 1000) throw new Error('cameras must be 1..1000');
  await assertPortFree(HOST, rtmpPort);
  const workDir = await mkdtemp(join(tmpdir(), 'camera-simulator-'));
  const clip = join(workDir, 'clip.flv');
  const cleanup = () => rm(workDir, { recursive: true, force: true });
  try {
    await encodeTestClip(clip, options.clipSeconds ?? 4);
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
    publishing.add(session.streamPath);
    if (publishing.size >= cameras) allPublishing();
  });
  await nms.run();

  let stopping = false;
  const publishers = new Map<number, ChildProcess>();
  const urls = Array.from({ length: cameras }, (_, i) => `rtmp://${HOST}:${rtmpPort}/${CAMERA_APP}/${i + 1}`);
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
  return { urls, stop };
}
