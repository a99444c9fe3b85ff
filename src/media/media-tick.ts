/**
 * The media node's one clock for batched I/O. Every MEDIA_TICK_MS (default 100 ms), the paced relay sockets (paced-socket.ts)
 * are read again, and right after those reads, in the same turn of the event loop, every player's gathered
 * writes go out (nms-guard.ts). A tag a camera sent thus waits at most one tick on its way to the players,
 * and each socket sees one read or one write per tick instead of one per packet.
 *
 * Reads resumed in a timer callback complete in the same loop iteration's poll phase (the data is already in
 * the kernel), and `setImmediate` runs after that poll phase: so the flush sees this tick's reads.
 */

/**
 * A forward's added latency is at most one tick; a socket is read or written at most once a tick (MEDIA_TICK_MS).
 * 0 turns pacing and batching off: every read as it comes, every player's writes on the next turn of the loop.
 */
export const DEFAULT_MEDIA_TICK_MS = 100;
export const MAX_MEDIA_TICK_MS = 1000;
let tickMs = DEFAULT_MEDIA_TICK_MS;

/** Set once by the media node as it starts (one node per process: node-media-server's state is global). */
export function setMediaTickMs(ms: number): void {
  if (!Number.isInteger(ms) || ms < 0 || ms > MAX_MEDIA_TICK_MS) throw new RangeError(`media tick must be an integer 0..${MAX_MEDIA_TICK_MS} ms`);
  tickMs = ms;
  if (timer) {
    clearInterval(timer);
    timer = null;
    if (atTick.size > 0 || afterReads.size > 0) start();
  }
}

/** 0 when pacing is off. */
export function mediaTickMs(): number {
  return tickMs;
}

type Task = () => void;
const atTick = new Set<Task>();
const afterReads = new Set<Task>();
let timer: NodeJS.Timeout | null = null;

function runAfterReads(): void {
  const tasks = [...afterReads];
  afterReads.clear();
  for (const task of tasks) task();
}

function tick(): void {
  const tasks = [...atTick];
  atTick.clear();
  for (const task of tasks) task();
  if (tasks.length === 0 && afterReads.size === 0 && timer) {
    clearInterval(timer);
    timer = null;
    return;
  }
  setImmediate(runAfterReads);
}

let immediate: NodeJS.Immediate | null = null;

function start(): void {
  if (tickMs === 0) {
    // Unpaced: what would wait for the tick runs on the next turn of the loop.
    immediate ??= setImmediate(() => {
      immediate = null;
      tick();
    }).unref();
    return;
  }
  timer ??= setInterval(tick, tickMs).unref();
}

/** Runs `task` once, at the next tick (a paced socket resumes reading). */
export function atNextTick(task: Task): void {
  atTick.add(task);
  start();
}

/** Runs `task` once, after the next tick's reads (players' writes go out). */
export function afterNextTickReads(task: Task): void {
  afterReads.add(task);
  start();
}
