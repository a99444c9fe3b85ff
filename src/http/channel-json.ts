/**
 * The JSON of GET /channels pages, built from each channel's JSON kept after its first answer. Stored channels
 * are frozen and replaced (never changed) when they change, so a channel object's JSON never goes stale: it is
 * kept in a WeakMap on the object and goes with it. The output is byte for byte what the route's response
 * schema (fast-json-stringify over `Channel`) writes: its properties in the schema's order, nothing else.
 */
import type { Channel } from '../core/model.js';
import type { ChannelPage } from '../core/catalog-service.js';

const withSource = new WeakMap<Channel, string>();
const withoutSource = new WeakMap<Channel, string>();

const str = JSON.stringify;

function serialise(c: Channel, showSource: boolean): string {
  let json = `{"id":${str(c.id)},"name":${str(c.name)},"class":${c.class},"district":${str(c.district)},"network":${str(c.network)},"location":{"lat":${c.location.lat},"lon":${c.location.lon}},"status":${str(c.status)}`;
  if (c.ownerAgency !== undefined) json += `,"ownerAgency":${str(c.ownerAgency)}`;
  if (c.tags !== undefined) json += `,"tags":${str(c.tags)}`;
  if (showSource && c.sourceUrl !== undefined) json += `,"sourceUrl":${str(c.sourceUrl)}`;
  // API.md: every channel says where its video comes from; a channel stored before GB/T 28181 came from a URL.
  json += `,"source":${str(c.source ?? 'url')}`;
  if (c.deviceId !== undefined) json += `,"deviceId":${str(c.deviceId)}`;
  if (c.codec !== undefined) json += `,"codec":${str(c.codec)}`;
  return `${json}}`;
}

/** One channel as JSON, with its sourceUrl for callers who may see it. */
export function channelJson(channel: Channel, showSource: boolean): string {
  // Without a sourceUrl both forms are the same string: keep one.
  const cache = showSource && channel.sourceUrl !== undefined ? withSource : withoutSource;
  let json = cache.get(channel);
  if (json === undefined) {
    json = serialise(channel, showSource);
    cache.set(channel, json);
  }
  return json;
}

/** Each channel's JSON as UTF-8 bytes, kept like the strings: a new page is copied together, not encoded again. */
const withSourceBytes = new WeakMap<Channel, Buffer>();
const withoutSourceBytes = new WeakMap<Channel, Buffer>();

function channelBytes(channel: Channel, showSource: boolean): Buffer {
  const cache = showSource && channel.sourceUrl !== undefined ? withSourceBytes : withoutSourceBytes;
  let bytes = cache.get(channel);
  if (bytes === undefined) {
    bytes = Buffer.from(channelJson(channel, showSource), 'utf8');
    cache.set(channel, bytes);
  }
  return bytes;
}

/** The bytes of a page the catalog handed out before (it hands out the same frozen page for a repeated query). */
const pageBytes = new WeakMap<ChannelPage, Buffer>();
const OPEN = Buffer.from('{"items":[');
const COMMA = Buffer.from(',');

/** A page as UTF-8 JSON bytes (the bytes of channelPageJson), built once per page object. */
export function channelPageBody(page: ChannelPage): Buffer {
  let bytes = pageBytes.get(page);
  if (bytes === undefined) {
    const pieces: Buffer[] = [OPEN];
    for (let i = 0; i < page.items.length; i++) {
      if (i > 0) pieces.push(COMMA);
      pieces.push(channelBytes(page.items[i]!, page.withSource));
    }
    pieces.push(Buffer.from(`],"total":${page.total},"nextCursor":${page.nextCursor === null ? 'null' : str(page.nextCursor)}}`));
    bytes = Buffer.concat(pieces);
    pageBytes.set(page, bytes);
  }
  return bytes;
}

export function channelPageJson(page: ChannelPage): string {
  let items = '';
  for (let i = 0; i < page.items.length; i++) items += (i === 0 ? '' : ',') + channelJson(page.items[i]!, page.withSource);
  return `{"items":[${items}],"total":${page.total},"nextCursor":${page.nextCursor === null ? 'null' : str(page.nextCursor)}}`;
}
