/**
 * node-media-server prints with console.log through its own logger module, at 'debug' from its
 * constructor on. Route it into pino instead (or drop it), so a media process writes structured logs only.
 * @see node_modules/node-media-server/src/core/logger.js
 */
import { createRequire } from 'node:module';
import type { Logger } from 'pino';

type NmsLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

const nmsLogger = createRequire(import.meta.url)('node-media-server/src/core/logger.js') as {
  log: (message: string, level?: NmsLevel) => void;
};

const RANK: Record<NmsLevel, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };

/** Call before constructing NodeMediaServer; `logger` null drops everything. */
export function routeNmsLogs(logger: Logger | null, minLevel: NmsLevel = 'warn'): void {
  nmsLogger.log = (message, level = 'info') => {
    if (logger && RANK[level] >= RANK[minLevel]) logger[level]({ component: 'node-media-server' }, message);
  };
}
