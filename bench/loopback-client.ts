/**
 * A load generator's HTTP client for 127.0.0.1: node:http with a keep-alive agent whose socket pool is
 * as large as the wanted concurrency, so N requests in flight really are N connections at once (the
 * global fetch's pool would quietly serialise them). Latency is measured from the moment a request
 * was due, not from when a socket was free, so a stalled server cannot hide its own backlog.
 */
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface Answer {
  status: number;
  body: string;
  /** From the due time to the last byte of the answer. */
  ms: number;
}

export interface LoopbackClient {
  /**
   * Opens `count` connections ahead of the load, a batch at a time. Without it, thousands of
   * simultaneous connects overflow the server's accept queue (Node listens with a backlog of 511)
   * and the kernel's 1 s / 3 s SYN retransmits, not the server, set the latency.
   */
  preconnect(count: number, batch?: number): Promise<void>;
  send(method: string, path: string, options?: { token?: string; json?: unknown; dueAt?: number }): Promise<Answer>;
  /** Closes every socket. */
  close(): void;
}

export function loopbackClient(port: number, maxSockets: number): LoopbackClient {
  const agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  const ready: Socket[] = [];
  const open = (): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(socket)).once('error', reject);
    });
  // The agent asks for a connection only when it has no free one: hand it a pre-opened one first.
  const createConnection = agent.createConnection.bind(agent);
  agent.createConnection = (options, callback) => ready.pop() ?? createConnection(options, callback);
  return {
    async preconnect(count, batch = 250) {
      while (ready.length < count) {
        ready.push(...(await Promise.all(Array.from({ length: Math.min(batch, count - ready.length) }, open))));
      }
    },
    send(method, path, { token, json, dueAt = performance.now() } = {}) {
      const body = json === undefined ? undefined : JSON.stringify(json);
      const headers: Record<string, string> = {};
      if (token) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(Buffer.byteLength(body));
      }
      return new Promise<Answer>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - dueAt }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
      });
    },
    close() {
      agent.destroy();
      for (const socket of ready.splice(0)) socket.destroy();
    },
  };
}

/** Nearest-rank percentile of latencies in ms (sorts a copy). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[rank]! * 10) / 10;
}
