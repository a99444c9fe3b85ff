/**
 * GB/T 28181 channel codes and the validation of channel records (import, PATCH).
 *
 * A channel id is the 20-digit device code of GB/T 28181-2016 Annex D: administrative division (6),
 * grassroots unit (2), industry (2), device type (3), network (1), serial (6).
 * @see GB/T 28181-2016 附录 D (编码规则 A)
 * @see ../../../shared/API.md "Channels"
 */
import { CHANNEL_STATUSES, VIDEO_CODECS, type Channel, type ChannelClass, type ChannelStatus, type GeoPoint, type Network } from './model.js';

/** Device types (digits 11-13) a channel may carry. Other codes (alarm inputs, platforms, users...) are no channels. */
export const CHANNEL_DEVICE_TYPES: Readonly<Record<string, string>> = {
  '111': 'DVR',
  '113': 'encoder',
  '118': 'NVR',
  '131': 'camera',
  '132': 'IP camera',
};

/**
 * Province-level prefixes of GB/T 2260 (digits 1-2 of the division). A division outside this list is a typo or
 * a made-up code, not a place.
 * @see GB/T 2260 中华人民共和国行政区划代码
 */
const PROVINCE_CODES = new Set([
  '11', '12', '13', '14', '15', '21', '22', '23', '31', '32', '33', '34', '35', '36', '37',
  '41', '42', '43', '44', '45', '46', '50', '51', '52', '53', '54', '61', '62', '63', '64', '65', '71', '81', '82',
]);

export type ParsedChannelId =
  | {
      ok: true;
      /** Digits 1-6: administrative division. */
      district: string;
      /** Digits 7-8: grassroots unit (基层接入单位). */
      grassroots: string;
      /** Digits 9-10: industry (行业编码). */
      industry: string;
      /** Digits 11-13. */
      deviceType: string;
      /** Digit 14 as a number. */
      networkDigit: number;
      network: Network;
      /** Digits 15-20. */
      serial: string;
    }
  | { ok: false; reason: string };

/** Digit 14: 0-4 video surveillance private network, 5 police, 6 government, 7 Internet, 8 social-resource interconnect, 9 reserved. */
export function networkOfDigit(digit: number): Network | undefined {
  if (digit >= 0 && digit <= 4) return 'video';
  if (digit === 5) return 'police';
  if (digit === 6) return 'gov';
  if (digit === 8) return 'interconnect';
  // 7 (public Internet) and 9 (reserved) never carry channels the platform shares.
  return undefined;
}

export function parseChannelId(id: string): ParsedChannelId {
  if (typeof id !== 'string' || id.length !== 20) return { ok: false, reason: 'a channel id has exactly 20 digits' };
  if (!/^[0-9]{20}$/.test(id)) return { ok: false, reason: 'a channel id has digits only' };
  const district = id.slice(0, 6);
  const districtProblem = divisionProblem(district);
  if (districtProblem) return { ok: false, reason: districtProblem };
  const deviceType = id.slice(10, 13);
  if (!(deviceType in CHANNEL_DEVICE_TYPES)) {
    return { ok: false, reason: `device type ${deviceType} (digits 11-13) is not a channel type (131, 132, 111, 118, 113)` };
  }
  const networkDigit = id.charCodeAt(13) - 48;
  const network = networkOfDigit(networkDigit);
  if (!network) return { ok: false, reason: `network digit ${networkDigit} (digit 14) is not accepted (0-6 or 8)` };
  return {
    ok: true,
    district,
    grassroots: id.slice(6, 8),
    industry: id.slice(8, 10),
    deviceType,
    networkDigit,
    network,
    serial: id.slice(14),
  };
}

function divisionProblem(division: string): string | undefined {
  if (!PROVINCE_CODES.has(division.slice(0, 2))) return `division ${division} (digits 1-6) names no province`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Guangzhou, the site of the demo catalog.
// ---------------------------------------------------------------------------------------------

export interface DistrictInfo {
  code: string;
  name: string;
  /** Approximate bounding box [minLon, minLat, maxLon, maxLat] (WGS-84, rounded to 0.01°). */
  bbox: readonly [number, number, number, number];
  /** Approximate centre of the built-up area. */
  centre: GeoPoint;
}

/** The 11 districts of Guangzhou (GB/T 2260 codes 4401xx). Boxes are rough outlines, good for demo data and maps. */
export const GUANGZHOU_DISTRICTS: readonly DistrictInfo[] = [
  { code: '440103', name: '荔湾', bbox: [113.17, 23.04, 113.27, 23.16], centre: { lat: 23.125, lon: 113.244 } },
  { code: '440104', name: '越秀', bbox: [113.24, 23.11, 113.32, 23.16], centre: { lat: 23.129, lon: 113.267 } },
  { code: '440105', name: '海珠', bbox: [113.23, 23.04, 113.41, 23.11], centre: { lat: 23.084, lon: 113.317 } },
  { code: '440106', name: '天河', bbox: [113.30, 23.11, 113.44, 23.25], centre: { lat: 23.135, lon: 113.361 } },
  { code: '440111', name: '白云', bbox: [113.15, 23.15, 113.50, 23.43], centre: { lat: 23.198, lon: 113.273 } },
  { code: '440112', name: '黄埔', bbox: [113.40, 23.03, 113.60, 23.42], centre: { lat: 23.106, lon: 113.459 } },
  { code: '440113', name: '番禺', bbox: [113.25, 22.87, 113.55, 23.07], centre: { lat: 22.938, lon: 113.384 } },
  { code: '440114', name: '花都', bbox: [112.95, 23.30, 113.45, 23.62], centre: { lat: 23.404, lon: 113.220 } },
  { code: '440115', name: '南沙', bbox: [113.30, 22.56, 113.68, 22.91], centre: { lat: 22.802, lon: 113.525 } },
  { code: '440117', name: '从化', bbox: [113.28, 23.37, 114.05, 23.94], centre: { lat: 23.548, lon: 113.587 } },
  { code: '440118', name: '增城', bbox: [113.54, 23.08, 114.00, 23.62], centre: { lat: 23.261, lon: 113.811 } },
];

export const GUANGZHOU_DISTRICT_BY_CODE: ReadonlyMap<string, DistrictInfo> = new Map(
  GUANGZHOU_DISTRICTS.map((d) => [d.code, d]),
);

// ---------------------------------------------------------------------------------------------
// Channel records: what import lines and PATCH bodies may contain.
// ---------------------------------------------------------------------------------------------

export type ChannelValidation =
  | { ok: true; channel: Channel }
  | { ok: false; code: 'BAD_REQUEST'; message: string };

export type ChannelChanges = Partial<Pick<Channel, 'name' | 'status' | 'sourceUrl' | 'location' | 'tags'>>;

export type ChannelPatchValidation =
  | { ok: true; changes: ChannelChanges }
  | { ok: false; code: 'BAD_REQUEST'; message: string };

export interface ValidateChannelOptions {
  /** Import lines must say where the video comes from; other writers may leave it out. */
  requireSourceUrl?: boolean;
}

const CHANNEL_FIELDS = new Set([
  'id', 'name', 'class', 'district', 'network', 'location', 'status', 'ownerAgency', 'tags', 'sourceUrl',
  'source', 'deviceId', 'codec',
]);
const PATCH_FIELDS = new Set(['name', 'status', 'sourceUrl', 'location', 'tags']);
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const AGENCY_ID = /^[a-z][a-z0-9-]{1,31}$/;
const SOURCE_SCHEMES = new Set(['rtmp:', 'rtsp:', 'http:', 'https:']);
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

const MAX_NAME_CHARS = 100;
const MAX_TAGS = 20;
const MAX_TAG_CHARS = 32;
const MAX_SOURCE_URL_CHARS = 512;

/** Raised inside the validators and turned into a {ok: false} result; never escapes this module. */
class FieldError extends Error {}

/**
 * Checks an untrusted channel record (an import line, a JSON body) and returns a normalised Channel:
 * district and network derived from the id, status defaulting to `online` (an import describes the catalog;
 * live status is set afterwards by PATCH).
 */
export function validateChannel(input: unknown, options: ValidateChannelOptions = {}): ChannelValidation {
  try {
    const record = plainRecord(input, CHANNEL_FIELDS);
    if (typeof record.id !== 'string') throw new FieldError('id is required (20-digit GB/T 28181 code)');
    const parsed = parseChannelId(record.id);
    if (!parsed.ok) throw new FieldError(`id ${JSON.stringify(record.id)}: ${parsed.reason}`);
    if (record.district !== undefined && record.district !== parsed.district) {
      throw new FieldError(`district ${JSON.stringify(record.district)} disagrees with the id (${parsed.district})`);
    }
    if (record.network !== undefined && record.network !== parsed.network) {
      throw new FieldError(`network ${JSON.stringify(record.network)} disagrees with the id (${parsed.network})`);
    }
    const channel: Channel = {
      id: record.id,
      name: checkName(record.name),
      class: checkClass(record.class),
      district: parsed.district,
      network: parsed.network,
      location: checkLocation(record.location),
      status: record.status === undefined ? 'online' : checkStatus(record.status),
    };
    if (record.ownerAgency !== undefined) channel.ownerAgency = checkOwnerAgency(record.ownerAgency);
    if (record.tags !== undefined) channel.tags = checkTags(record.tags);
    if (record.sourceUrl !== undefined) channel.sourceUrl = checkSourceUrl(record.sourceUrl);
    else if (options.requireSourceUrl) throw new FieldError('sourceUrl is required');
    if (record.source !== undefined) {
      if (record.source !== 'url' && record.source !== 'gb28181') throw new FieldError('source is "url" or "gb28181"');
      channel.source = record.source;
    }
    if (record.deviceId !== undefined) {
      if (typeof record.deviceId !== 'string' || !/^[0-9]{20}$/.test(record.deviceId)) throw new FieldError('deviceId is a 20-digit GB/T 28181 code');
      channel.deviceId = record.deviceId;
    }
    if (record.codec !== undefined) {
      if (!(VIDEO_CODECS as readonly unknown[]).includes(record.codec)) throw new FieldError('codec is "h264" or "h265"');
      channel.codec = record.codec as Channel['codec'];
    }
    return { ok: true, channel };
  } catch (error) {
    if (error instanceof FieldError) return { ok: false, code: 'BAD_REQUEST', message: error.message };
    throw error;
  }
}

/** Checks a PATCH /channels/:id body: only name, status, sourceUrl, location and tags may change. */
export function validateChannelPatch(input: unknown): ChannelPatchValidation {
  try {
    const record = plainRecord(input, PATCH_FIELDS);
    const changes: ChannelChanges = {};
    if (record.name !== undefined) changes.name = checkName(record.name);
    if (record.status !== undefined) changes.status = checkStatus(record.status);
    if (record.sourceUrl !== undefined) changes.sourceUrl = checkSourceUrl(record.sourceUrl);
    if (record.location !== undefined) changes.location = checkLocation(record.location);
    if (record.tags !== undefined) changes.tags = checkTags(record.tags);
    return { ok: true, changes };
  } catch (error) {
    if (error instanceof FieldError) return { ok: false, code: 'BAD_REQUEST', message: error.message };
    throw error;
  }
}

function plainRecord(input: unknown, allowed: ReadonlySet<string>): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new FieldError('a channel is a JSON object');
  // Own keys only: JSON.parse turns "__proto__" into an own property, which a later spread would promote.
  for (const key of Object.keys(input)) {
    if (FORBIDDEN_KEYS.has(key)) throw new FieldError(`field ${JSON.stringify(key)} is not allowed`);
    if (!allowed.has(key)) throw new FieldError(`unknown field ${JSON.stringify(key)}`);
  }
  return input as Record<string, unknown>;
}

function checkName(value: unknown): string {
  if (typeof value !== 'string') throw new FieldError('name is required (text)');
  const chars = [...value].length;
  if (chars < 1 || chars > MAX_NAME_CHARS) throw new FieldError(`name has 1 to ${MAX_NAME_CHARS} characters`);
  if (CONTROL_CHARS.test(value)) throw new FieldError('name contains control characters');
  if (value.trim() !== value) throw new FieldError('name has leading or trailing spaces');
  return value;
}

function checkClass(value: unknown): ChannelClass {
  if (value === 1 || value === 2 || value === 3) return value;
  throw new FieldError('class is 1, 2 or 3');
}

function checkStatus(value: unknown): ChannelStatus {
  if (typeof value === 'string' && (CHANNEL_STATUSES as readonly string[]).includes(value)) return value as ChannelStatus;
  throw new FieldError(`status is one of ${CHANNEL_STATUSES.join(', ')}`);
}

function checkLocation(value: unknown): GeoPoint {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FieldError('location is required ({lat, lon})');
  }
  for (const key of Object.keys(value)) {
    if (key !== 'lat' && key !== 'lon') throw new FieldError(`unknown field location.${key}`);
  }
  const { lat, lon } = value as Record<string, unknown>;
  if (typeof lat !== 'number' || !Number.isFinite(lat) || lat < -90 || lat > 90) {
    throw new FieldError('location.lat is a number from -90 to 90');
  }
  if (typeof lon !== 'number' || !Number.isFinite(lon) || lon < -180 || lon > 180) {
    throw new FieldError('location.lon is a number from -180 to 180');
  }
  return { lat, lon };
}

function checkOwnerAgency(value: unknown): string {
  if (typeof value === 'string' && AGENCY_ID.test(value)) return value;
  throw new FieldError('ownerAgency is an agency id (^[a-z][a-z0-9-]{1,31}$)');
}

function checkTags(value: unknown): string[] {
  if (!Array.isArray(value)) throw new FieldError('tags is a list of strings');
  if (value.length > MAX_TAGS) throw new FieldError(`at most ${MAX_TAGS} tags`);
  return value.map((tag) => {
    if (typeof tag !== 'string' || tag.length < 1 || [...tag].length > MAX_TAG_CHARS || CONTROL_CHARS.test(tag)) {
      throw new FieldError(`each tag is text of 1 to ${MAX_TAG_CHARS} characters`);
    }
    return tag;
  });
}

function checkSourceUrl(value: unknown): string {
  if (typeof value !== 'string' || value.length > MAX_SOURCE_URL_CHARS || /\s/.test(value) || CONTROL_CHARS.test(value)) {
    throw new FieldError(`sourceUrl is a URL of at most ${MAX_SOURCE_URL_CHARS} characters`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new FieldError('sourceUrl is not a URL');
  }
  if (!SOURCE_SCHEMES.has(url.protocol) || url.hostname === '') {
    throw new FieldError('sourceUrl is an rtmp://, rtsp://, http:// or https:// URL with a host');
  }
  return value;
}
