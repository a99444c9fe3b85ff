/**
 * Reads an FLV file with mpegts.js's own FLV demuxer (the code the console's player runs) and prints what it saw as
 * JSON. A separate process run under tsx: mpegts.js ships its demuxer as ES module sources that tap's loader cannot
 * require. Usage: `node --import tsx test/media/mpegts-flv-probe.ts file.flv`.
 */
import { readFile } from 'node:fs/promises';
// @ts-expect-error mpegts.js publishes no types for its demuxer sources
import FLVDemuxer from 'mpegts.js/src/demux/flv-demuxer.js';
// @ts-expect-error as above
import Log from 'mpegts.js/src/utils/logger.js';

interface Sample {
  dts: number;
  pts: number;
  isKeyframe: boolean;
}

const bytes = await readFile(process.argv[2]);
const arrayBuffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
// Its warnings and errors are collected (a malformed tag is only logged), not printed.
const warnings: string[] = [];
Log.ENABLE_CALLBACK = true;
Log.ENABLE_ERROR = Log.ENABLE_WARN = Log.ENABLE_INFO = Log.ENABLE_DEBUG = Log.ENABLE_VERBOSE = false;
Log.emitter.on('log', (level: string, text: string) => {
  if (level === 'warn' || level === 'error') warnings.push(text);
});
const probe = FLVDemuxer.probe(arrayBuffer);
const demuxer = new FLVDemuxer(probe, {});
const errors: unknown[] = [];
let metadata: unknown = null;
const samples: Sample[] = [];
demuxer.onError = (...args: unknown[]) => errors.push(args);
demuxer.onMediaInfo = () => {};
demuxer.onTrackMetadata = (type: string, meta: unknown) => {
  if (type === 'video') metadata = meta;
};
demuxer.onDataAvailable = (_audio: unknown, video: { samples: Sample[] }) => {
  samples.push(...video.samples.map((s) => ({ dts: s.dts, pts: s.pts, isKeyframe: s.isKeyframe })));
  video.samples = [];
};
const consumed: number = demuxer.parseChunks(arrayBuffer, 0);
process.stdout.write(JSON.stringify({ match: Boolean((probe as { match?: boolean }).match), length: bytes.length, consumed, errors, warnings, metadata, samples }));
