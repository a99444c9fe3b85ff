import { Type, type Static } from '@sinclair/typebox';
import { ChannelClass, ChannelId, ChannelStatus, Cursor, Limit, Network, Strict } from './common.js';

export const GeoPoint = Type.Object(
  { lat: Type.Number({ minimum: -90, maximum: 90 }), lon: Type.Number({ minimum: -180, maximum: 180 }) },
  Strict,
);

export const Channel = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    class: Type.Integer(),
    district: Type.String(),
    network: Type.String(),
    location: Type.Object({ lat: Type.Number(), lon: Type.Number() }),
    status: Type.String(),
    ownerAgency: Type.Optional(Type.String()),
    tags: Type.Optional(Type.Array(Type.String())),
    sourceUrl: Type.Optional(Type.String({ description: 'platform-admin only' })),
    source: Type.Optional(Type.Union([Type.Literal('url'), Type.Literal('gb28181')])),
    deviceId: Type.Optional(Type.String()),
    codec: Type.Optional(Type.Union([Type.Literal('h264'), Type.Literal('h265')], { description: 'what the media plane last saw the camera send' })),
  },
  { $id: 'Channel' },
);

const many = <T extends Parameters<typeof Type.Array>[0]>(item: T) => Type.Array(item, { maxItems: 20 });

export const ChannelListQuery = Type.Object(
  {
    class: Type.Optional(many(ChannelClass)),
    district: Type.Optional(many(Type.String({ pattern: '^[0-9]{6}$' }))),
    network: Type.Optional(many(Network)),
    status: Type.Optional(many(ChannelStatus)),
    q: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    bbox: Type.Optional(Type.String({ pattern: '^-?[0-9.]+,-?[0-9.]+,-?[0-9.]+,-?[0-9.]+$', maxLength: 100 })),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  Strict,
);
export type ChannelListQuery = Static<typeof ChannelListQuery>;

export const ChannelList = Type.Object({
  items: Type.Array(Type.Ref('Channel')),
  total: Type.Integer(),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});

const Counts = Type.Record(Type.String(), Type.Integer());
export const ChannelStats = Type.Object({ total: Type.Integer(), byClass: Counts, byDistrict: Counts, byNetwork: Counts, byStatus: Counts });

export const ChannelParams = Type.Object({ channelId: ChannelId });

export const PatchChannelBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    class: Type.Optional(ChannelClass),
    status: Type.Optional(ChannelStatus),
    sourceUrl: Type.Optional(Type.String({ minLength: 1, maxLength: 512, pattern: '^(rtmp|rtsp|https?)://' })),
    location: Type.Optional(GeoPoint),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 32 }), { maxItems: 20 })),
  },
  Strict,
);
export type PatchChannelBody = Static<typeof PatchChannelBody>;

export const ImportResult = Type.Object({
  created: Type.Integer(),
  updated: Type.Integer(),
  rejected: Type.Array(Type.Object({ line: Type.Integer(), code: Type.String(), message: Type.String() })),
});
