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
    urls: Urls,
    players: Type.Optional(Type.Array(StreamPlayer, { description: 'GET /streams/:id only: current players' })),
  },
  { $id: 'Stream' },
);

export const OpenStreamBody = Type.Object(
  {
    channelId: ChannelId,
    purpose: Type.String({ minLength: 4, maxLength: 200 }),
    priority: Type.Optional(Priority),
    waitSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 30 })),
  },
  Strict,
);
export type OpenStreamBody = Static<typeof OpenStreamBody>;

export const StreamListQuery = Type.Object(
  { scope: Type.Optional(Type.Union([Type.Literal('mine'), Type.Literal('agency'), Type.Literal('all')])) },
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
