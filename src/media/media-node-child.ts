/**
 * A media node run as a child of the broker (BROKER_MEDIA=embedded): node-media-server keeps global
 * state, so it lives in its own process. Started with the same Node binary, from src/ through tsx when
 * the broker itself runs from .ts files, from dist/ otherwise. Restarted with backoff when it dies;
 * it exits by itself if the broker dies (its stdin closes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { MediaNodeClient } from './media-node-client.js';

export interface MediaNodeChildOptions {
  /** MEDIA_* variables of media-node-main.ts. */
  env: Record<string, string>;
  client: MediaNodeClient;
  logger: Logger;
  /** Delay before each successive restart; the last one repeats. */
  restartDelaysMs?: number[];
  startTimeoutMs?: number;
  onDown: () => void;
  onUp: () => void;
}

const HEALTH_POLL_MS = 100;
/** A child that lived this long gets its restart backoff reset. */
const STABLE_MS = 30_000;
const STOP_GRACE_MS = 5000;

/**
 * `node <entry>` from dist/, `node --import <tsx> <entry>.ts` from src/. A broker run from src/ with
 * `BROKER_MEDIA_NODE_COMPILED=1` starts the compiled node from dist/ instead (the tests do: they run the
 * broker in-process from sources, and tsx costs each child about a second of CPU).
 */
export function mediaNodeCommand(): string[] {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return [fileURLToPath(new URL('./media-node-main.js', self))];
  if (process.env.BROKER_MEDIA_NODE_COMPILED === '1') return [fileURLToPath(new URL('../../dist/media/media-node-main.js', self))];
  return ['--import', import.meta.resolve('tsx'), fileURLToPath(new URL('./media-node-main.ts', self))];
}

export class MediaNodeChild {
  #child: ChildProcess | null = null;
  #up = false;
  #stopping = false;
  #restarts = 0;
  #restartTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: MediaNodeChildOptions) {}

  get up(): boolean {
    return this.#up;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Resolves once the first child answers /healthz; rejects if it cannot start. */
  async start(): Promise<void> {
    await this.#launch();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    const child = this.#child;
    this.#up = false;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  async #launch(): Promise<void> {
    const child = spawn(process.execPath, mediaNodeCommand(), {
      env: { ...process.env, ...this.options.env, MEDIA_EXIT_WITH_PARENT: '1' },
      stdio: ['pipe', 'inherit', 'inherit'],
    });
    this.#child = child;
    const startedAt = Date.now();
    let exited = false;
    child.once('exit', (code, signal) => {
      exited = true;
      if (this.#child !== child) return;
      const wasUp = this.#up;
      this.#up = false;
      if (this.#stopping) return;
      this.options.logger.error({ code, signal, pid: child.pid }, 'media node exited');
      if (wasUp) this.options.onDown();
      if (Date.now() - startedAt >= STABLE_MS) this.#restarts = 0;
      this.#scheduleRestart();
    });

    const deadline = Date.now() + (this.options.startTimeoutMs ?? 30_000);
    while (!exited && !this.#stopping && Date.now() < deadline) {
      if (await this.options.client.healthy()) {
        this.#up = true;
        this.options.logger.info({ pid: child.pid }, 'media node up');
        this.options.onUp();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, HEALTH_POLL_MS));
    }
    if (!exited) child.kill('SIGKILL');
    throw new Error('media node did not become healthy');
  }

  #scheduleRestart(): void {
    const delays = this.options.restartDelaysMs ?? [500, 1000, 2000, 5000, 10_000];
    const delay = delays[Math.min(this.#restarts, delays.length - 1)];
    this.#restarts += 1;
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      if (this.#stopping) return;
      this.#launch().catch((error: unknown) =>
        this.options.logger.error({ err: (error as Error).message }, 'media node restart failed'),
      );
    }, delay);
  }
}
