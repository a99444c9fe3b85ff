/**
 * Real processes for the media tests: media nodes and simulators as children on free loopback ports,
 * plus small HTTP-FLV / WS-FLV players. Every start registers its stop with t.teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { WebSocket } from 'ws';
import { FlvTagReader, type FlvTag } from '../../src/media/flv-publisher.js';
import { findFreePort } from '../../src/media/net-ports.js';
import { nodeArgs } from '../helper.js';

interface Tap {
  teardown(fn: () => unknown): void;
}

export interface MediaNodeProcess {
  child: ChildProcess;
  controlUrl: string;
  playBaseUrl: string;
  wsBaseUrl: string;
  rtmpPort: number;
  controlSecret: string;
  playSecret: string;
  control(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

export function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Resolves with the first stdout line matching `pattern`; rejects if the child exits first. */
export function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms`)), timeoutMs);
    const onExit = (code: number | null) => reject(new Error(`child exited (${code}) before printing ${pattern}`));
    child.once('exit', onExit);
    lines.on('line', (line) => {
      if (!pattern.test(line)) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      lines.close();
      resolve(line);
    });
  });
}

export async function startMediaNodeProcess(
  t: Tap,
  options: {
    sourceTimeoutMs?: number;
    nodeId?: string;
    controlSecret?: string;
    playSecret?: string;
    /** Extra MEDIA_* variables (registry, networks). */
    env?: Record<string, string>;
  } = {},
): Promise<MediaNodeProcess> {
  const [rtmpPort, httpPort, controlPort] = [await findFreePort(), await findFreePort(), await findFreePort()];
  const controlSecret = options.controlSecret ?? randomBytes(24).toString('hex');
  const playSecret = options.playSecret ?? randomBytes(24).toString('hex');
  const child = spawn(process.execPath, nodeArgs('src/media/media-node-main.ts'), {
    env: {
      ...process.env,
      MEDIA_NODE_ID: options.nodeId ?? 'test-node',
      MEDIA_RTMP_PORT: String(rtmpPort),
      MEDIA_HTTP_PORT: String(httpPort),
      MEDIA_CONTROL_PORT: String(controlPort),
      MEDIA_CONTROL_SECRET: controlSecret,
      MEDIA_PLAY_SECRET: playSecret,
      MEDIA_SOURCE_TIMEOUT_MS: String(options.sourceTimeoutMs ?? 8000),
      MEDIA_LOG_LEVEL: 'warn',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => stopProcess(child));
  await waitForLine(child, /"event":"ready"/);
  const controlUrl = `http://127.0.0.1:${controlPort}`;
  return {
    child,
    controlUrl,
    playBaseUrl: `http://127.0.0.1:${httpPort}`,
    wsBaseUrl: `ws://127.0.0.1:${httpPort}`,
    rtmpPort,
    controlSecret,
    playSecret,
    async control(method, path, body) {
      const res = await fetch(`${controlUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${controlSecret}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
    stop: () => stopProcess(child),
  };
}

export interface SimulatorProcess {
  /** The H.264 cameras' RTMP URLs. */
  urls: string[];
  /** H.265 cameras' RTMP URLs (`--h265-cameras`). */
  h265Urls: string[];
  /** RTSP URLs (with `rtsp: true`): H.264 cameras, then H.265 ones. */
  rtspUrls: { h264: string[]; h265: string[] };
  child: ChildProcess;
}

export async function startSimulatorProcess(
  t: Tap,
  cameras: number,
  options: { h265Cameras?: number; rtsp?: boolean } = {},
): Promise<SimulatorProcess> {
  const rtmpPort = await findFreePort();
  const rtspPort = options.rtsp ? await findFreePort() : undefined;
  const h265 = options.h265Cameras ?? 0;
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs('src/media/simulator-main.ts'), '--cameras', String(cameras), '--rtmp-port', String(rtmpPort),
      ...(h265 > 0 ? ['--h265-cameras', String(h265)] : []),
      ...(rtspPort ? ['--rtsp-port', String(rtspPort)] : []),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => stopProcess(child));
  await waitForLine(child, new RegExp(`^rtmp://.*/cam/${cameras}$`), 60_000);
  const list = (base: string, app: string, n: number) => Array.from({ length: n }, (_, i) => `${base}/${app}/${i + 1}`);
  const rtsp = `rtsp://127.0.0.1:${rtspPort}`;
  return {
    urls: list(`rtmp://127.0.0.1:${rtmpPort}`, 'cam', cameras),
    h265Urls: list(`rtmp://127.0.0.1:${rtmpPort}`, 'cam265', h265),
    rtspUrls: rtspPort ? { h264: list(rtsp, 'cam', cameras), h265: list(rtsp, 'cam265', h265) } : { h264: [], h265: [] },
    child,
  };
}

/** GStreamer's RTSP server (an independent implementation) serving /h264 and /h265 with AAC audio. */
export async function startGstRtspCamera(t: Tap): Promise<{ h264: string; h265: string; child: ChildProcess }> {
  const port = await findFreePort();
  const child = spawn('/usr/bin/python3', ['test/media/gst-rtsp-camera.py', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => stopProcess(child));
  await waitForLine(child, /^ready$/, 30_000);
  return { h264: `rtsp://127.0.0.1:${port}/h264`, h265: `rtsp://127.0.0.1:${port}/h265`, child };
}

/** Plays HTTP-FLV and returns its tags, parsed strictly (flv-publisher's reader), once `videoTags` video tags came. */
export function readFlvTags(url: string, videoTags: number, timeoutMs = 30_000): Promise<FlvTag[]> {
  return new Promise((resolve, reject) => {
    const reader = new FlvTagReader();
    const tags: FlvTag[] = [];
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`only ${tags.filter((tag) => tag.type === 9).length} video tags within ${timeoutMs} ms`));
    }, timeoutMs);
    const req = request(url, (res) => {
      if (res.statusCode !== 200) {
        clearTimeout(timer);
        req.destroy();
        reject(new Error(`HTTP ${res.statusCode}`));
        return;
      }
      res.on('data', (chunk: Buffer) => {
        try {
          tags.push(...reader.push(chunk));
        } catch (error) {
          clearTimeout(timer);
          req.destroy();
          reject(error as Error);
          return;
        }
        if (tags.filter((tag) => tag.type === 9).length >= videoTags) {
          clearTimeout(timer);
          req.destroy();
          resolve(tags);
        }
      });
    });
    req.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end();
  });
}

export interface HttpPlay {
  status: number;
  /** The first bytes of the body (up to 3), once some arrived or the response ended. */
  firstBytes: Promise<Buffer>;
  /** Resolves when the response ends or its socket closes. */
  closed: Promise<void>;
  destroy(): void;
}

export function playHttpFlv(url: string): Promise<HttpPlay> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      let received = Buffer.alloc(0);
      let gotFirst: (b: Buffer) => void = () => undefined;
      const firstBytes = new Promise<Buffer>((r) => (gotFirst = r));
      const closed = new Promise<void>((r) => {
        res.once('close', () => r());
        res.once('end', () => r());
      });
      res.on('data', (chunk: Buffer) => {
        if (received.length < 3) received = Buffer.concat([received, chunk]).subarray(0, 3);
        if (received.length >= 3) gotFirst(received);
      });
      void closed.then(() => gotFirst(received));
      resolve({ status: res.statusCode ?? 0, firstBytes, closed, destroy: () => req.destroy() });
    });
    req.once('error', reject);
    req.end();
  });
}

export interface WsPlay {
  /** First binary message (or empty when the socket closed before any). */
  firstMessage: Promise<Buffer>;
  closed: Promise<number>;
  close(): void;
}

export function playWsFlv(url: string): WsPlay {
  const ws = new WebSocket(url);
  ws.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  const firstMessage = new Promise<Buffer>((resolve) => {
    ws.once('message', (data) => resolve(Buffer.from(data as Buffer)));
    void closed.then(() => resolve(Buffer.alloc(0)));
  });
  return { firstMessage, closed, close: () => ws.terminate() };
}
