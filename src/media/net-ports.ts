/**
 * Port checks for processes that embed node-media-server: its `run()` calls `process.exit(1)` when a
 * port is taken, so a media node checks its ports first and fails with a message that names the port.
 * @see node_modules/node-media-server/src/server/rtmp_server.js handleListenError
 */
import { createServer } from 'node:net';

export class PortInUseError extends Error {
  constructor(
    readonly host: string,
    readonly port: number,
    cause: unknown,
  ) {
    super(`port ${host}:${port} is not available (${(cause as Error).message})`);
    this.name = 'PortInUseError';
  }
}

/** Resolves when `host:port` can be bound right now; rejects with PortInUseError otherwise. */
export function assertPortFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err) => reject(new PortInUseError(host, port, err)));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/** A port the OS considers free on `host` (listen on 0, read it, release it). */
export function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen({ host, port: 0, exclusive: true }, () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}
