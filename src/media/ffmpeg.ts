/**
 * The ffmpeg binary shipped by the npm package @ffmpeg-installer/ffmpeg (a static build), so
 * `npm install` alone brings it. Its version (2018, 4.x era) decides the option names used here:
 * `-stimeout` for RTSP socket timeouts (renamed `-timeout` in ffmpeg 5) and `-rw_timeout` elsewhere.
 */
import ffmpegInstaller from '@ffmpeg-installer/ffmpeg';
import { spawn, type ChildProcess } from 'node:child_process';

export const ffmpegPath: string = ffmpegInstaller.path;

/** Keeps the last few kilobytes of a child's stderr, for the log line when it fails. */
export function captureStderrTail(child: ChildProcess, maxBytes = 2048): () => string {
  let tail = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-maxBytes);
  });
  return () => tail.trim();
}

/** SIGTERM lets ffmpeg close its output cleanly; SIGKILL follows if it has not exited in time. */
export function stopChild(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const killTimer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(killTimer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export function spawnFfmpeg(args: string[]): ChildProcess {
  return spawn(ffmpegPath, ['-hide_banner', '-nostdin', '-loglevel', 'error', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}
