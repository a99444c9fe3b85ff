/**
 * Test clips made by the bundled ffmpeg (libx264/libx265) in a temp dir: an MP4 (the timestamps ffprobe reads back
 * as ground truth) and its Annex-B elementary stream with access unit delimiters, split into access units.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ffmpegPath } from '../../src/media/ffmpeg.js';
import { nalType, splitAnnexB, type AccessUnit, type VideoCodec } from '../../src/media/flv-mux.js';

const run = promisify(execFile);
/** Debian's ffprobe (5.1), a reader independent of the code under test. */
export const FFPROBE = '/usr/bin/ffprobe';

export interface Clip {
  codec: VideoCodec;
  mp4: string;
  annexB: Buffer;
  units: AccessUnit[];
  keyframes: boolean[];
}

export async function ffmpeg(args: string[]): Promise<void> {
  await run(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args], { maxBuffer: 64 * 1024 * 1024 });
}

export async function ffprobeJson(args: string[]): Promise<unknown> {
  const { stdout } = await run(FFPROBE, ['-v', 'error', '-of', 'json', ...args], { maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout) as unknown;
}

/**
 * `seconds` of testsrc at 25 fps, 1 s GOP, with B-frames unless `bframes: 0` (so composition times are non-zero);
 * `noise` makes every picture several kilobytes (as a camera's are), not the few bytes a static pattern costs.
 */
export async function makeClip(
  dir: string,
  codec: VideoCodec,
  options: { seconds?: number; bframes?: number; size?: string; noise?: boolean } = {},
): Promise<Clip> {
  const seconds = options.seconds ?? 2;
  const bframes = options.bframes ?? 2;
  const name = `${codec}-${seconds}s-b${bframes}-${options.size ?? 'qvga'}${options.noise ? '-noise' : ''}`;
  const mp4 = join(dir, `${name}.mp4`);
  const es = join(dir, `${name}.${codec === 'h264' ? '264' : '265'}`);
  const encoder =
    codec === 'h264'
      ? ['-c:v', 'libx264', '-preset', 'veryfast', '-g', '25', '-sc_threshold', '0', '-bf', String(bframes), '-pix_fmt', 'yuv420p']
      : ['-c:v', 'libx265', '-preset', 'veryfast', '-x265-params', `keyint=25:min-keyint=25:scenecut=0:bframes=${bframes}:log-level=error`, '-pix_fmt', 'yuv420p', '-tag:v', 'hvc1'];
  await ffmpeg(['-f', 'lavfi', '-i', `testsrc=size=${options.size ?? '320x240'}:rate=25`, '-t', String(seconds), ...(options.noise ? ['-vf', 'noise=alls=30:allf=t'] : []), ...encoder, mp4]);
  const bsf = codec === 'h264' ? 'h264_mp4toannexb,h264_metadata=aud=insert' : 'hevc_mp4toannexb,hevc_metadata=aud=insert';
  await ffmpeg(['-i', mp4, '-c', 'copy', '-bsf:v', bsf, '-f', codec === 'h264' ? 'h264' : 'hevc', es]);
  const annexB = await readFile(es);
  const probe = (await ffprobeJson(['-select_streams', 'v', '-show_entries', 'packet=pts,dts,flags:stream=time_base', mp4])) as {
    packets: Array<{ pts: number; dts: number; flags: string }>;
    streams: Array<{ time_base: string }>;
  };
  const [num, den] = probe.streams[0].time_base.split('/').map(Number);
  const aud = codec === 'h264' ? 9 : 35;
  const groups: Buffer[][] = [];
  for (const nalu of splitAnnexB(annexB)) {
    if (nalType(codec, nalu) === aud) groups.push([]);
    groups.at(-1)?.push(nalu);
  }
  if (groups.length !== probe.packets.length) throw new Error(`${groups.length} access units but ${probe.packets.length} packets`);
  // Shifted so the first DTS is 0 (MP4 starts B-frame streams at a negative DTS).
  const shift = -probe.packets[0].dts;
  const ticks = (value: number) => Math.round(((value + shift) * num * 90_000) / den);
  return {
    codec,
    mp4,
    annexB,
    units: groups.map((nalus, i) => ({ nalus, pts: ticks(probe.packets[i].pts), dts: ticks(probe.packets[i].dts) })),
    keyframes: probe.packets.map((packet) => packet.flags.startsWith('K')),
  };
}
