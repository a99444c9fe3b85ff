import t, { type Test as Tap } from 'tap';
import fc from 'fast-check';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PsDemuxer, type VideoAccessUnit } from '../../src/media/ps-demux.js';
import { PsMuxer, crc32Mpeg, programStreamMap } from '../../src/media/ps-mux.js';
import { isKeyframe, type AccessUnit } from '../../src/media/flv-mux.js';
import { makeTempDir } from '../helper.js';
import { ffmpeg, ffprobeJson, makeClip, type Clip } from './clips.js';

function demuxAll(bytes: Buffer, chunk = 1400, demuxer = new PsDemuxer()): VideoAccessUnit[] {
  const units: VideoAccessUnit[] = [];
  for (let i = 0; i < bytes.length; i += chunk) units.push(...demuxer.push(bytes.subarray(i, i + chunk)));
  units.push(...demuxer.flush());
  return units;
}

/** What a unit is, comparably: NAL units as hex and timestamps relative to the first DTS. */
function shape(units: AccessUnit[], base = units[0]?.dts ?? 0) {
  return units.map((u) => ({ nalus: u.nalus.map((n) => n.toString('hex')), pts: u.pts - base, dts: u.dts - base }));
}

function muxPs(clip: Clip, options: ConstructorParameters<typeof PsMuxer>[1] = {}, audioEvery = 0): Buffer {
  const muxer = new PsMuxer(clip.codec, options);
  const parts: Buffer[] = [];
  for (const [i, unit] of clip.units.entries()) {
    parts.push(muxer.picture(unit, clip.keyframes[i]));
    if (audioEvery > 0 && i % audioEvery === 0) parts.push(muxer.audio(Buffer.alloc(320, 0xd5), unit.pts));
  }
  return Buffer.concat(parts);
}

async function ffmpegPs(dir: string, clip: Clip, format: 'mpeg' | 'vob', withAudio: boolean): Promise<Buffer> {
  const out = join(dir, `ffmpeg.${format}`);
  const audio = withAudio ? ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-map', '0:v', '-map', '1:a', '-c:a', 'mp2', '-shortest'] : [];
  await ffmpeg(['-i', clip.mp4, ...audio, '-c:v', 'copy', '-bsf:v', 'h264_mp4toannexb,h264_metadata=aud=insert', '-f', format, out]);
  return readFile(out);
}

t.test('H.264 in the program streams ffmpeg muxes comes out picture for picture', async (t) => {
  const dir = await makeTempDir(t);
  // Pictures of camera size: each starts in a PES of its own, so each has its PTS.
  const clip = await makeClip(dir, 'h264', { noise: true });
  for (const [format, withAudio] of [
    ['mpeg', false],
    ['vob', false],
    ['vob', true],
  ] as const) {
    const ps = await ffmpegPs(dir, clip, format, withAudio);
    const demuxer = new PsDemuxer();
    const units = demuxAll(ps, 1400, demuxer);
    const what = `ffmpeg -f ${format}${withAudio ? ' with MP2 audio' : ''}`;
    t.equal(demuxer.codec, 'h264', `${what}: H.264 recognised without a PSM`);
    t.equal(units.length, clip.units.length, `${what}: every picture`);
    t.same(shape(units), shape(clip.units), `${what}: the same NAL units, PTS and DTS`);
    t.equal(demuxer.stats.resyncs, 0, `${what}: no resync`);
    if (withAudio) t.ok(demuxer.stats.ignoredPackets > 10, `${what}: audio packets dropped (${demuxer.stats.ignoredPackets})`);
  }
  // Tiny pictures: ffmpeg packs several into one PES, and only the first gets a PTS. The others get the next
  // frame interval as DTS; NAL units and every given timestamp stay exact.
  const tiny = await makeClip(dir, 'h264');
  const units = demuxAll(await ffmpegPs(dir, tiny, 'mpeg', false));
  const expected = shape(tiny.units);
  const got = shape(units);
  t.same(got.map((u) => u.nalus), expected.map((u) => u.nalus), 'tiny pictures: the same NAL units');
  t.same(got.map((u) => u.dts), expected.map((u) => u.dts), 'tiny pictures: the same DTS');
  const given = got.filter((u, i) => u.pts === expected[i].pts).length;
  t.ok(given > 0, `tiny pictures: PTS where the stream gave one (${given} of ${got.length})`);
  t.ok(
    got.every((u, i) => u.pts === expected[i].pts || u.pts === u.dts),
    'and PTS = DTS where it did not, never a PTS before its DTS',
  );
});

t.test('hand-made H.265 PS (PSM 0x24, pack stuffing, pictures over many PES, G.711 audio) demuxes exactly', async (t) => {
  const dir = await makeTempDir(t);
  const clip = await makeClip(dir, 'h265');
  const ps = muxPs(clip, { maxPesPayloadBytes: 700, packStuffingBytes: 3, withAudio: true }, 2);
  // ffprobe (Debian's ffmpeg 5.1, an independent reader) agrees this is H.265 PS with every picture.
  const file = join(dir, 'h265.ps');
  await writeFile(file, ps);
  const probe = (await ffprobeJson(['-f', 'mpeg', '-show_entries', 'stream=codec_type,codec_name', file])) as {
    streams: Array<{ codec_type: string; codec_name: string }>;
  };
  t.same(
    probe.streams.map((s) => s.codec_type).sort(),
    ['audio', 'video'],
    'ffprobe finds the video and the audio stream',
  );
  t.equal(probe.streams.find((s) => s.codec_type === 'video')?.codec_name, 'hevc', 'and reads the video as H.265 from the PSM');
  await t.resolves(ffmpeg(['-xerror', '-f', 'mpeg', '-i', file, '-map', '0:v', '-f', 'null', '-']), 'and ffmpeg decodes its video without an error');

  for (const chunk of [1, 13, 188, 1400, 65536]) {
    const demuxer = new PsDemuxer();
    const units = demuxAll(ps, chunk, demuxer);
    t.equal(demuxer.codec, 'h265');
    t.same(shape(units), shape(clip.units), `chunks of ${chunk} bytes: the same NAL units, PTS and DTS`);
    t.equal(demuxer.stats.resyncs, 0);
  }
  t.ok(
    demuxAll(ps).every((u) => u.codec === 'h265'),
    'every unit says its codec',
  );
});

t.test('the PSM carries a valid CRC and decides the codec over sniffing', async (t) => {
  const psm = programStreamMap('h265', false);
  t.equal(crc32Mpeg(psm.subarray(0, -4)), psm.readUInt32BE(psm.length - 4));
  t.equal(crc32Mpeg(psm), 0, 'CRC-32/MPEG-2 over the whole section, CRC included, is 0');
  t.equal(crc32Mpeg(Buffer.from('123456789')), 0x0376e6e7, 'the check value of CRC-32/MPEG-2');
});

t.test('a PS stream for H.264 from our muxer (the simulator\'s) demuxes exactly, with big and small PES', async (t) => {
  const dir = await makeTempDir(t);
  const clip = await makeClip(dir, 'h264', { size: '640x480' });
  for (const maxPesPayloadBytes of [undefined, 4000, 1]) {
    const demuxed = demuxAll(muxPs(clip, { maxPesPayloadBytes }));
    t.same(shape(demuxed), shape(clip.units), `PES payloads up to ${maxPesPayloadBytes ?? 'the maximum'} bytes`);
  }
});

t.test('loss and garbage cost pictures up to the next keyframe, never a wrong picture', async (t) => {
  const dir = await makeTempDir(t);
  const clip = await makeClip(dir, 'h264', { seconds: 3, noise: true });
  const muxer = new PsMuxer('h264', { maxPesPayloadBytes: 1000 });
  const packs = clip.units.map((unit, i) => muxer.picture(unit, clip.keyframes[i]));
  const keyframes = clip.keyframes.flatMap((k, i) => (k ? [i] : []));
  t.same(keyframes, [0, 25, 50], 'a 1 s GOP');
  const expected = shape(clip.units, 0);
  const check = (t: Tap, got: VideoAccessUnit[], from: number, what: string) => {
    t.ok(isKeyframe('h264', got[0]?.nalus ?? []), `${what}: the first picture after it is a keyframe`);
    t.same(shape(got, 0), expected.slice(from), `${what}: then every picture, intact`);
  };

  // Garbage between two packs: skipped to the next pack header.
  {
    const demuxer = new PsDemuxer();
    const before = demuxAll(Buffer.concat(packs.slice(0, 10)), 1400, demuxer).length;
    const got = demuxAll(Buffer.concat([Buffer.from('00000001ffeeddcc000001e0', 'hex'), Buffer.alloc(5000, 0x55), ...packs.slice(10)]), 1400, demuxer);
    t.ok(before >= 9, 'pictures before the garbage came out');
    t.ok(demuxer.stats.resyncs >= 1 && demuxer.stats.skippedBytes >= 5000, 'the garbage was skipped');
    check(t, got, 25, 'garbage');
  }
  // An RTP gap: the receiver says so.
  {
    const demuxer = new PsDemuxer();
    demuxAll(Buffer.concat(packs.slice(0, 10)), 1400, demuxer);
    const cut = packs[10].subarray(200);
    demuxer.discontinuity();
    check(t, demuxAll(Buffer.concat([cut, ...packs.slice(11)]), 1400, demuxer), 25, 'a gap mid-picture');
  }
  // A PES length that lies (65535 where the packet is 1000 bytes): it swallows the next packs.
  {
    const lying = Buffer.from(packs[30]);
    const pesAt = lying.indexOf(Buffer.from([0, 0, 1, 0xe0]));
    lying.writeUInt16BE(0xffff, pesAt + 4);
    const demuxer = new PsDemuxer();
    const got = demuxAll(Buffer.concat([...packs.slice(25, 30), lying, ...packs.slice(31)]), 1400, demuxer);
    t.same(shape(got.slice(0, 5), 0), expected.slice(25, 30), 'pictures before the lie come out');
    check(t, got.slice(5), 50, 'a lying PES length');
    t.ok(demuxer.stats.droppedUnits > 0, 'and the pictures it spoiled were dropped');
  }
  // Truncated anywhere: a prefix of the pictures, nothing invented.
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Buffer.concat(packs).length }), fc.integer({ min: 1, max: 3000 }), (cut, chunk) => {
      const got = demuxAll(Buffer.concat(packs).subarray(0, cut), chunk);
      const full = expected.slice(0, got.length);
      const last = got.length - 1;
      // The last picture may be cut short (its tail is simply missing); every earlier one is whole.
      return last < 0 || JSON.stringify(shape(got.slice(0, last), 0)) === JSON.stringify(full.slice(0, last));
    }),
    { numRuns: 200 },
  );
});

t.test('random and mutated input never throws and never grows without bound', async (t) => {
  const dir = await makeTempDir(t);
  const clip = await makeClip(dir, 'h265', { seconds: 1 });
  const ps = muxPs(clip, { maxPesPayloadBytes: 1500 }, 3);
  const maxAccessUnitBytes = 64 * 1024;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 20_000 }), fc.integer({ min: 1, max: 2000 }), (bytes, chunk) => {
      const got = demuxAll(Buffer.from(bytes), chunk, new PsDemuxer({ maxAccessUnitBytes }));
      return got.every((u) => u.nalus.reduce((n, x) => n + x.length, 0) <= maxAccessUnitBytes);
    }),
    { numRuns: 300 },
  );
  // PS-shaped noise: start codes with random ids and lengths.
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0xb9, max: 0xff }), fc.uint8Array({ maxLength: 300 }))),
      (packets) => {
        const bytes = Buffer.concat(packets.map(([id, body]) => Buffer.concat([Buffer.from([0, 0, 1, id]), Buffer.from(body)])));
        demuxAll(bytes, 97, new PsDemuxer({ maxAccessUnitBytes }));
        return true;
      },
    ),
    { numRuns: 300 },
  );
  // A real stream with bytes flipped: no throw, no empty NAL unit, no flood of invented pictures.
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(ps.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 20 }), (flips) => {
      const mutated = Buffer.from(ps);
      for (const [at, value] of flips) mutated[at] = value;
      const got = demuxAll(mutated, 1400, new PsDemuxer({ maxAccessUnitBytes }));
      return got.length <= clip.units.length + flips.length * 2 && got.every((u) => u.nalus.every((n) => n.length > 0));
    }),
    { numRuns: 300 },
  );
  t.pass('no input threw');
});
