/**
 * `npm run simulate -- --cameras N --rtmp-port P`: serve N simulated cameras until SIGINT/SIGTERM.
 * Prints one URL per line on stdout.
 */
import { parseArgs } from 'node:util';
import { startSimulator } from './simulator.js';

function positiveInt(value: string | undefined, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    process.stderr.write(`--${name} must be an integer 1..${max}\n`);
    process.exit(2);
  }
  return n;
}

const { values } = parseArgs({
  options: { cameras: { type: 'string' }, 'rtmp-port': { type: 'string' } },
});
const cameras = positiveInt(values.cameras, 'cameras', 4, 1000);
const rtmpPort = positiveInt(values['rtmp-port'], 'rtmp-port', 1936, 65535);

try {
  const simulator = await startSimulator({ cameras, rtmpPort });
  process.stdout.write(`${simulator.urls.join('\n')}\n`);
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    simulator.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
} catch (error) {
  process.stderr.write(`simulator failed: ${(error as Error).message}\n`);
  process.exit(1);
}
