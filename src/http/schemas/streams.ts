import { Type, type Static } from '@sinclair/typebox';
import { ChannelId, IsoTime, ObjectId, Priority, Strict } from './common.js';

const Urls = Type.Object({ flv: Type.String(), wsFlv: Type.String() });

export const PLAYER_ID_PATTERN = '^[A-Za-z0-9]{1,32}$';

/** A player connected to the session's URLs, as its media node sees it (API.md "Streams"). */
export const StreamPlayer = Type.Object({
  id: Type.String({ description: "The media node's id of the connection: DELETE /streams/:id/players/:playerId cuts it" }),
  address: Type.String({ description: 'Client address as the media node sees it' }),
  protocol: Type.String({ description: 'http-flv, ws-flv or rtmp' }),
  since: IsoTime,
  bytes: Type.Integer({ minimum: 0, description: 'Media bytes sent to it so far' }),
  userAgent: Type.String(),
});

export const Stream = Type.Object(
  {
    id: Type.String(),
    channelId: Type.String(),
    userId: Type.String(),
    agencyId: Type.String(),
    purpose: Type.String(),
    priority: Type.String(),
    shared: Type.Boolean(),
    createdAt: IsoTime,
    expiresAt: IsoTime,
    codec: Type.Optional(
      Type.Union([Type.Literal('h264'), Type.Literal('h265')], {
        description: 'What the URLs play: H.264 when the session asked for it (an H.265 camera then plays its transcode), else what the camera sends; absent while not known',
      }),
    ),
    urls: Urls,
    players: Type.Optional(Type.Array(StreamPlayer, { description: 'GET /streams/:id, and GET /streams?players=true: current players' })),
  },
  { $id: 'Stream' },
);

export const OpenStreamBody = Type.Object(
  {
    channelId: ChannelId,
    purpose: Type.String({ minLength: 4, maxLength: 200 }),
    priority: Type.Optional(Priority),
    waitSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 30 })),
    codec: Type.Optional(
      Type.Union([Type.Literal('source'), Type.Literal('h264')], {
        description:
          'source (default): what the camera sends (H.265 as enhanced FLV, hvc1). h264: H.264 for players that cannot decode H.265; an H.265 channel is transcoded once on its media node for all its H.264 viewers (503 TRANSCODE_CAPACITY_EXHAUSTED when its budget is spent)',
      }),
    ),
  },
  Strict,
);
export type OpenStreamBody = Static<typeof OpenStreamBody>;

export const StreamListQuery = Type.Object(
  {
    scope: Type.Optional(Type.Union([Type.Literal('mine'), Type.Literal('agency'), Type.Literal('all')])),
    players: Type.Optional(Type.Boolean({ description: "true: each session carries its current players, as GET /streams/:id lists them (the console's sessions view)" })),
  },
  Strict,
);

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' })),
});

export const PlayerParams = Type.Object({ id: ObjectId, playerId: Type.String({ pattern: PLAYER_ID_PATTERN }) });

export const Heartbeat = Type.Object({ expiresAt: IsoTime });
/** A session's heartbeat also hands out fresh play URLs (tokens with the renewed expiry). */
export const StreamHeartbeat = Type.Object({ expiresAt: IsoTime, urls: Urls });

export const Reservation = Type.Object(
  {
    id: Type.String(),
    channelId: Type.String(),
    task: Type.String(),
    agencyId: Type.String(),
    serviceId: Type.String(),
    createdAt: IsoTime,
    expiresAt: IsoTime,
    streamUrl: Type.String(),
  },
  { $id: 'Reservation' },
);

export const OpenReservationBody = Type.Object(
  {
    channelId: ChannelId,
    task: Type.String({ minLength: 1, maxLength: 200 }),
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 30, maximum: 3600 })),
  },
  Strict,
);

const Pool = Type.Object({ limit: Type.Integer(), used: Type.Integer() });
export const Capacity = Type.Object({
  forwarding: Type.Object({ limit: Type.Integer(), used: Type.Integer(), queued: Type.Integer() }),
  analytics: Pool,
  agencies: Type.Array(Type.Object({ id: Type.String(), forwarding: Type.Object({ used: Type.Integer(), quota: Type.Integer() }), analytics: Type.Object({ used: Type.Integer(), quota: Type.Integer() }) })),
  mediaNodes: Type.Optional(Type.Array(Type.Object({}, { additionalProperties: true }))),
});
