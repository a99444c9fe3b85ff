/**
 * The ffmpeg binary shipped by the npm package @ffmpeg-installer/ffmpeg (a static build), so
 * `npm install` alone brings it. Its version (2018, 4.x era) decides the option names used here:
 * `-stimeout` for RTSP socket timeouts (renamed `-timeout` in ffmpeg 5) and `-rw_timeout` elsewhere.
 */
import ffmpegInstaller from '@ffmpeg-installer/ffmpeg';
import { spawn, type ChildProcess } from 'node:child_process';

export const ffmpegPath: string = ffmpegInstaller.path;

/** `scheme://user:password@host` → `scheme://***@host`: ffmpeg echoes its input URL in error messages. */
export function redactUrlCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi, '$1***@');
}

/** Keeps the last few kilobytes of a child's stderr, for the log line when it fails (URL credentials redacted). */
export function captureStderrTail(child: ChildProcess, maxBytes = 2048): () => string {
  let tail = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-maxBytes);
  });
  return () => redactUrlCredentials(tail.trim());
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

/** `stdout: true` pipes ffmpeg's stdout (FLV to `pipe:1`), `stdin: true` its stdin (`pipe:0`); otherwise discarded. */
export function spawnFfmpeg(args: string[], options: { stdout?: boolean; stdin?: boolean } = {}): ChildProcess {
  return spawn(ffmpegPath, ['-hide_banner', '-nostdin', '-loglevel', 'error', ...args], {
    stdio: [options.stdin ? 'pipe' : 'ignore', options.stdout ? 'pipe' : 'ignore', 'pipe'],
  });
}
