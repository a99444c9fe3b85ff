/**
 * The media node's one clock for batched I/O. Every MEDIA_TICK_MS, the paced relay sockets (paced-socket.ts)
 * are read again, and right after those reads, in the same turn of the event loop, every player's gathered
 * writes go out (nms-guard.ts). A tag a camera sent thus waits at most one tick on its way to the players,
 * and each socket sees one read or one write per tick instead of one per packet.
 *
 * Reads resumed in a timer callback complete in the same loop iteration's poll phase (the data is already in
 * the kernel), and `setImmediate` runs after that poll phase: so the flush sees this tick's reads.
 */

/** A forward's added latency is at most this; a socket is read or written at most this often. */
export const MEDIA_TICK_MS = 100;

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

function start(): void {
  timer ??= setInterval(tick, MEDIA_TICK_MS).unref();
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
