import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FLV_TAG_VIDEO, FlvTagReader, type FlvTag } from '../../src/media/flv-publisher.js';
import {
  FlvVideoMuxer,
  avcDecoderConfigurationRecord,
  hevcDecoderConfigurationRecord,
  nalType,
  parseHevcSps,
  splitAnnexB,
  type AccessUnit,
} from '../../src/media/flv-mux.js';
import { makeTempDir, runScript } from '../helper.js';
import { ffmpeg, ffprobeJson, makeClip, type Clip } from './clips.js';

/** An FLV file (video only) around the tags, as NMS would serve them. */
function flvFile(tags: FlvTag[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0x46, 0x4c, 0x56, 1, 1, 0, 0, 0, 9, 0, 0, 0, 0])];
  for (const tag of tags) {
    const head = Buffer.alloc(11);
    head[0] = tag.type;
    head.writeUIntBE(tag.data.length, 1, 3);
    head.writeUIntBE(tag.timestamp & 0xffffff, 4, 3);
    head[7] = tag.timestamp >>> 24;
    const tail = Buffer.alloc(4);
    tail.writeUInt32BE(11 + tag.data.length);
    parts.push(head, tag.data, tail);
  }
  return Buffer.concat(parts);
}

function muxAll(clip: Clip): FlvTag[] {
  const muxer = new FlvVideoMuxer(clip.codec);
  return clip.units.flatMap((unit) => muxer.push(unit));
}

/** Length-prefixed NAL units of a frame tag's payload, read back. */
function readLengthPrefixed(data: Buffer): Buffer[] {
  const nalus: Buffer[] = [];
  for (let offset = 0; offset < data.length; ) {
    const length = data.readUInt32BE(offset);
    nalus.push(data.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return nalus;
}

t.test('the Annex-B splitter finds NAL units behind 3- and 4-byte start codes', async (t) => {
  const cases: Array<[string, string, string[]]> = [
    ['4-byte start codes', '00000001 6742 00000001 68ce', ['6742', '68ce']],
    ['3-byte start codes', '000001 6742 000001 68ce', ['6742', '68ce']],
    ['mixed, trailing zeros dropped', '00000001 65aa0000 000001 41bb 0000', ['65aa', '41bb']],
    ['garbage before the first start code', 'ffee 000001 0901', ['0901']],
    ['an emulation-prevented 000003 is not a start code', '000001 65 000003 01 ff', ['6500000301ff']],
    ['no start code at all', 'ffeeddcc', []],
    ['empty NAL units skipped', '000001 000001 6588', ['6588']],
    ['nothing', '', []],
  ];
  for (const [what, hex, expected] of cases) {
    const nalus = splitAnnexB(Buffer.from(hex.replace(/ /g, ''), 'hex'));
    t.same(nalus.map((n) => n.toString('hex')), expected, what);
  }
});

t.test('H.264: an ffmpeg clip muxes to FLV that ffprobe reads back with every timestamp and keyframe', async (t) => {
  const dir = await makeTempDir(t);
  const clip = await makeClip(dir, 'h264');
  const tags = muxAll(clip);
  const sps = clip.units[0].nalus.find((n) => nalType('h264', n) === 7)!;
  const pps = clip.units[0].nalus.find((n) => nalType('h264', n) === 8)!;

  t.equal(tags[0].type, FLV_TAG_VIDEO);
  t.same([...tags[0].data.subarray(0, 5)], [0x17, 0, 0, 0, 0], 'the first tag is the AVC sequence header, keyframe, CTS 0');
  const record = tags[0].data.subarray(5);
  t.same([...record.subarray(0, 6)], [1, sps[1], sps[2], sps[3], 0xff, 0xe1], 'version, profile/compat/level from the SPS, 4-byte lengths, 1 SPS');
  t.same(record, avcDecoderConfigurationRecord(sps, pps));
  t.equal(record.readUInt16BE(6), sps.length);
  t.same(record.subarray(8, 8 + sps.length), sps);
  t.equal(record[8 + sps.length], 1, 'one PPS');
  t.same(record.subarray(11 + sps.length), pps);

  const frames = tags.slice(1);
  t.equal(frames.length, clip.units.length, 'one tag per access unit (the SPS/PPS ride in the header)');
  t.same(frames.map((tag) => tag.data[0] >> 4), clip.keyframes.map((k) => (k ? 1 : 2)), 'frame types follow the IDRs');
  for (const [i, tag] of frames.entries()) {
    const nalus = readLengthPrefixed(tag.data.subarray(5));
    const expected = clip.units[i].nalus.filter((n) => ![7, 8, 9].includes(nalType('h264', n)));
    if (!t.same(nalus, expected, `frame ${i}: the NAL units, length-prefixed, without SPS/PPS/AUD`)) break;
  }

  const flv = join(dir, 'out.flv');
  await writeFile(flv, flvFile(tags));
  const probe = (await ffprobeJson(['-show_entries', 'packet=pts,dts,flags:stream=codec_name,width,height', flv])) as {
    packets: Array<{ pts: number; dts: number; flags: string }>;
    streams: Array<{ codec_name: string; width: number; height: number }>;
  };
  t.same(probe.streams[0], { codec_name: 'h264', width: 320, height: 240 });
  t.same(
    probe.packets.map((p) => [p.dts, p.pts, p.flags.startsWith('K')]),
    clip.units.map((u, i) => [Math.round(u.dts / 90), Math.round(u.pts / 90), clip.keyframes[i]]),
    'ffprobe reads every DTS, PTS (DTS + composition time) and keyframe flag back',
  );
  // A full decode: ffmpeg -xerror stops at the first broken frame.
  await t.resolves(ffmpeg(['-xerror', '-i', flv, '-f', 'null', '-']), 'the FLV decodes without an error');
});

t.test('H.265: an ffmpeg clip muxes to enhanced FLV (hvc1) that mpegts.js demuxes frame for frame', async (t) => {
  const dir = await makeTempDir(t);
  const clip = await makeClip(dir, 'h265');
  const tags = muxAll(clip);
  const find = (type: number) => clip.units[0].nalus.find((n) => nalType('h265', n) === type)!;
  const [vps, sps, pps] = [find(32), find(33), find(34)];

  const header = tags[0].data;
  t.equal(header[0], 0x90, 'IsExHeader, keyframe, PacketType SequenceStart');
  t.equal(header.toString('latin1', 1, 5), 'hvc1');
  const record = header.subarray(5);
  t.same(record, hevcDecoderConfigurationRecord(vps, sps, pps));
  const info = parseHevcSps(sps);
  t.same([info.width, info.height, info.chromaFormatIdc, info.bitDepthLuma, info.bitDepthChroma], [320, 240, 1, 8, 8], 'the SPS read');
  t.equal(record[0], 1, 'configurationVersion');
  t.equal(record[1] & 0x1f, 1, 'general_profile_idc Main');
  t.same(record.subarray(1, 13), info.generalProfileTierLevel, 'profile/tier/level bytes are the SPS general_profile_tier_level');
  t.equal(record[16] & 3, 1, 'chromaFormat 4:2:0');
  t.equal(record[21] & 3, 3, 'lengthSizeMinusOne 3');
  t.equal(record[22], 3, 'three arrays');
  let offset = 23;
  for (const [type, nalu] of [[32, vps], [33, sps], [34, pps]] as const) {
    t.equal(record[offset] & 0x3f, type, `array of NAL type ${type}`);
    t.equal(record.readUInt16BE(offset + 1), 1);
    t.equal(record.readUInt16BE(offset + 3), nalu.length);
    t.same(record.subarray(offset + 5, offset + 5 + nalu.length), nalu);
    offset += 5 + nalu.length;
  }
  t.equal(offset, record.length, 'nothing after the arrays');

  // ffmpeg's own hvcC (in the MP4 it wrote) carries the same profile, tier, level and format fields.
  const mp4 = await readFile(clip.mp4);
  const at = mp4.indexOf('hvcC', 0, 'latin1') + 4;
  t.ok(at > 4, 'the MP4 has an hvcC box');
  t.same(record.subarray(0, 13), mp4.subarray(at, at + 13), 'version, profile space/tier/idc, compatibility, constraints, level as ffmpeg writes them');
  t.same([...record.subarray(16, 19)], [...mp4.subarray(at + 16, at + 19)], 'chroma format and bit depths as ffmpeg writes them');
  t.equal(record[21] & 0x3f, mp4[at + 21] & 0x3f, 'temporal layers, nesting and length size as ffmpeg writes them');

  const frames = tags.slice(1);
  t.equal(frames.length, clip.units.length);
  for (const [i, tag] of frames.entries()) {
    const packetType = tag.data[0] & 0x0f;
    const ok =
      (tag.data[0] & 0x80) === 0x80 &&
      tag.data[0] >> 4 === (clip.keyframes[i] ? 0x9 : 0xa) &&
      tag.data.toString('latin1', 1, 5) === 'hvc1' &&
      packetType === (clip.units[i].pts === clip.units[i].dts ? 3 : 1) &&
      tag.timestamp === Math.round(clip.units[i].dts / 90);
    if (!t.ok(ok, `frame ${i}: ExHeader, frame type, FourCC, CodedFrames(X), DTS`)) break;
    if (packetType === 1) t.equal(tag.data.readIntBE(5, 3), Math.round((clip.units[i].pts - clip.units[i].dts) / 90), `frame ${i} composition time`);
  }

  const flv = join(dir, 'out.flv');
  await writeFile(flv, flvFile(tags));
  const run = await runScript('test/media/mpegts-flv-probe.ts', [flv]);
  t.equal(run.code, 0, run.stderr);
  const seen = JSON.parse(run.stdout) as {
    match: boolean;
    length: number;
    consumed: number;
    errors: unknown[];
    warnings: string[];
    metadata: { codec?: string; codecWidth?: number; codecHeight?: number };
    samples: Array<{ dts: number; pts: number; isKeyframe: boolean }>;
  };
  const { metadata, samples } = seen;
  t.ok(seen.match, 'mpegts.js recognises the FLV');
  t.equal(seen.consumed, seen.length, 'mpegts.js consumed every tag');
  t.same(seen.errors, [], 'mpegts.js reported no error');
  t.same(seen.warnings, [], 'nor logged a warning');
  t.match(metadata, { codecWidth: 320, codecHeight: 240 }, 'mpegts.js read the size from the HEVCDecoderConfigurationRecord');
  t.match(metadata.codec, /^hvc1\.1\./, 'and a Main-profile hvc1 codec string');
  t.same(
    samples.map((s) => [s.dts, s.pts, s.isKeyframe]),
    clip.units.map((u, i) => [Math.round(u.dts / 90), Math.round(u.dts / 90) + Math.round((u.pts - u.dts) / 90), clip.keyframes[i]]),
    'mpegts.js reads every frame with its DTS, PTS and keyframe flag',
  );
});

t.test('the muxer waits for a keyframe with parameter sets, resends a changed header, and keeps time across a wrap', async (t) => {
  const dir = await makeTempDir(t);
  const clip = await makeClip(dir, 'h264', { seconds: 1, bframes: 0 });
  const muxer = new FlvVideoMuxer('h264');
  const interFrames = clip.units.slice(1, 4);
  t.same(interFrames.flatMap((u) => muxer.push(u)), [], 'inter frames before any keyframe are dropped');
  const keyOnly: AccessUnit = { ...clip.units[0], nalus: clip.units[0].nalus.filter((n) => ![7, 8].includes(nalType('h264', n))) };
  t.same(muxer.push(keyOnly), [], 'an IDR without SPS/PPS cannot start a stream');
  const started = muxer.push(clip.units[0]);
  t.same(started.map((tag) => tag.data[1]), [0, 1], 'the first keyframe with SPS/PPS: sequence header, then the frame');
  t.same(muxer.push(clip.units[0]).map((tag) => tag.data[1]), [1], 'the same parameter sets again: no new header');
  const changed = clip.units[0].nalus.map((n) => (nalType('h264', n) === 8 ? Buffer.concat([n, Buffer.from([0x80])]) : n));
  t.same(muxer.push({ ...clip.units[0], nalus: changed }).map((tag) => tag.data[1]), [0, 1], 'a changed PPS: a new header first');

  const wrap = new FlvVideoMuxer('h264');
  const near = 2 ** 33 - 3600;
  const stamps = [0, 1, 2].flatMap((i) =>
    wrap.push({ ...clip.units[i], pts: (near + i * 3600) % 2 ** 33, dts: (near + i * 3600) % 2 ** 33 }).map((tag) => tag.timestamp),
  );
  t.same(stamps, [0, 0, 40, 80], 'DTS keeps counting through the 33-bit wrap');
  const back = new FlvVideoMuxer('h264');
  const backStamps = [
    [0, 36000],
    [1, 18000],
  ].flatMap(([i, dts]) => back.push({ ...clip.units[i], pts: dts, dts }).map((tag) => tag.timestamp));
  t.same(backStamps, [0, 0, 0], 'a DTS going backwards does not make FLV time go backwards');
});

t.test('a broken SPS does not throw: the stream waits for a readable one', async (t) => {
  const muxer = new FlvVideoMuxer('h265');
  const nalus = [Buffer.from([0x40, 0x01, 0x0c]), Buffer.from([0x42, 0x01, 0x01]), Buffer.from([0x44, 0x01, 0xc0]), Buffer.from([0x26, 0x01, 0xaf])];
  t.same(muxer.push({ nalus, pts: 0, dts: 0 }), []);
  const h264 = new FlvVideoMuxer('h264');
  t.same(h264.push({ nalus: [Buffer.from([0x67]), Buffer.from([0x68]), Buffer.from([0x65, 0x88])], pts: 0, dts: 0 }), [], 'a 1-byte SPS');
});

t.test('tags the muxer makes pass the FLV reader the publisher uses', async (t) => {
  const dir = await makeTempDir(t);
  for (const codec of ['h264', 'h265'] as const) {
    const clip = await makeClip(dir, codec, { seconds: 1 });
    const tags = muxAll(clip);
    const back = new FlvTagReader().push(flvFile(tags));
    t.same(back.map((tag) => [tag.timestamp, tag.data.length]), tags.map((tag) => [tag.timestamp, tag.data.length]), codec);
  }
});

t.test('two relays never share a tag slab: a GOP kept for one channel keeps none of another channel', async (t) => {
  const dir = await makeTempDir(t);
  const clip = await makeClip(dir, 'h264', { seconds: 1, bframes: 0 });
  const [a, b] = [new FlvVideoMuxer('h264'), new FlvVideoMuxer('h264')];
  const [readerA, readerB] = [new FlvTagReader(), new FlvTagReader()];
  const tagsA: FlvTag[] = [];
  const tagsB: FlvTag[] = [];
  // Interleaved, as relays run: if the slab were shared, consecutive small tags of A and B would be views of it.
  for (const unit of clip.units) {
    tagsA.push(...a.push(unit));
    tagsB.push(...b.push(unit));
  }
  const file = flvFile(tagsA);
  for (let at = 0; at < file.length; at += 4096) {
    tagsA.push(...readerA.push(file.subarray(at, at + 4096)));
    tagsB.push(...readerB.push(file.subarray(at, at + 4096)));
  }
  const slabsOf = (tags: FlvTag[]) => new Set(tags.flatMap((tag) => (tag.encoded ? [tag.encoded.buffer] : [])));
  const [slabsA, slabsB] = [slabsOf(tagsA), slabsOf(tagsB)];
  t.ok(slabsA.size > 0 && slabsB.size > 0, `tags are cut from slabs (${slabsA.size} and ${slabsB.size})`);
  t.equal([...slabsA].filter((slab) => slabsB.has(slab)).length, 0, 'no slab holds tags of both');
});
