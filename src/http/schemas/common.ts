/** Schema pieces shared by every resource. Every string and number is bounded. */
import { Type, type TSchema } from '@sinclair/typebox';
import { CHANNEL_STATUSES, NETWORKS, PRIORITIES, ROLES } from '../../core/model.js';

export const ErrorResponse = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }) },
  { $id: 'Error', description: 'Every error: a code from API.md and a human message' },
);
export const ErrorRef = Type.Ref('Error');

/** Standard error answers for a route, so the OpenAPI document lists them. */
export const errors = (...statuses: number[]) => Object.fromEntries(statuses.map((s) => [s, ErrorRef]));

export const Network = Type.Union(NETWORKS.map((n) => Type.Literal(n)));
export const ChannelClass = Type.Union([Type.Literal(1), Type.Literal(2), Type.Literal(3)]);
export const ChannelStatus = Type.Union(CHANNEL_STATUSES.map((s) => Type.Literal(s)));
export const Priority = Type.Union(PRIORITIES.map((p) => Type.Literal(p)));
export const Role = Type.Union(ROLES.map((r) => Type.Literal(r)));
export const ChannelId = Type.String({ pattern: '^[0-9]{20}$', description: 'GB/T 28181 20-digit code' });
export const AgencyId = Type.String({ pattern: '^[a-z][a-z0-9-]{1,31}$' });
export const ObjectId = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' });
export const IsoTime = Type.String({ format: 'date-time' });
export const Limit = Type.Integer({ minimum: 1, maximum: 500, default: 50 });
export const Cursor = Type.String({ minLength: 1, maxLength: 200 });

export const Page = <T extends TSchema>(item: T) => Type.Object({ items: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) });

/** Write bodies reject unknown fields (API.md). */
export const Strict = { additionalProperties: false } as const;
