/**
 * `npm run simulate -- --cameras N [--h265-cameras M] --rtmp-port P [--rtsp-port Q]`: serve N H.264 and M
 * H.265 simulated cameras (RTMP, and RTSP when Q is given) until SIGINT/SIGTERM. Prints one URL per line on
 * stdout: RTSP and H.265 URLs first, the H.264 cameras' RTMP URLs last (tests wait for the last one).
 * `npm run simulate -- --gb28181 …`: GB/T 28181 devices instead (src/gb28181/simulator-cli.ts).
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

if (process.argv.includes('--gb28181')) {
  const { runGbSimulatorCli } = await import('../gb28181/simulator-cli.js');
  await runGbSimulatorCli(process.argv.slice(2).filter((a) => a !== '--gb28181'));
} else {
  await serveCameras();
}

async function serveCameras(): Promise<void> {
  const { values } = parseArgs({
    options: { cameras: { type: 'string' }, 'h265-cameras': { type: 'string' }, 'rtmp-port': { type: 'string' }, 'rtsp-port': { type: 'string' } },
  });
  const cameras = positiveInt(values.cameras, 'cameras', 4, 1000);
  const h265Cameras = values['h265-cameras'] === '0' ? 0 : positiveInt(values['h265-cameras'], 'h265-cameras', 0, 1000);
  const rtmpPort = positiveInt(values['rtmp-port'], 'rtmp-port', 1936, 65535);
  const rtspPort = values['rtsp-port'] === undefined ? undefined : positiveInt(values['rtsp-port'], 'rtsp-port', 8554, 65535);

  try {
    const simulator = await startSimulator({ cameras, h265Cameras, rtmpPort, rtspPort });
    const others = simulator.cameras.flatMap((camera) => [camera.rtmp, camera.rtsp]).filter((url): url is string => url !== undefined && !simulator.urls.includes(url));
    process.stdout.write(`${[...others, ...simulator.urls].join('\n')}\n`);
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
}
