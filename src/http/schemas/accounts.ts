import { Type, type Static } from '@sinclair/typebox';
import { AgencyId, ChannelClass, IsoTime, Network, ObjectId, Strict } from './common.js';

export const Quotas = Type.Object(
  { forwarding: Type.Integer({ minimum: 0, maximum: 100000 }), analytics: Type.Integer({ minimum: 0, maximum: 100000 }) },
  Strict,
);

export const Agency = Type.Object(
  {
    id: AgencyId,
    name: Type.String(),
    networks: Type.Array(Network),
    classes: Type.Array(ChannelClass),
    quotas: Quotas,
    canPreempt: Type.Boolean(),
    createdAt: IsoTime,
    createdBy: Type.String(),
  },
  { $id: 'Agency' },
);

const AgencyFields = {
  name: Type.String({ minLength: 1, maxLength: 100 }),
  networks: Type.Array(Network, { maxItems: 4, uniqueItems: true }),
  classes: Type.Array(ChannelClass, { maxItems: 3, uniqueItems: true }),
  quotas: Quotas,
  canPreempt: Type.Boolean(),
};
export const CreateAgencyBody = Type.Object({ id: AgencyId, ...AgencyFields, canPreempt: Type.Optional(Type.Boolean()) }, Strict);
export type CreateAgencyBody = Static<typeof CreateAgencyBody>;
export const PatchAgencyBody = Type.Partial(Type.Object(AgencyFields, Strict), Strict);
export type PatchAgencyBody = Static<typeof PatchAgencyBody>;

export const User = Type.Object(
  {
    id: Type.String(),
    username: Type.String(),
    role: Type.String(),
    agencyId: Type.String(),
    displayName: Type.String(),
    disabled: Type.Boolean(),
    createdBy: Type.String(),
    createdAt: IsoTime,
  },
  { $id: 'User' },
);

export const Username = Type.String({ pattern: '^[a-z0-9_.-]{3,32}$' });
export const Password = Type.String({ minLength: 10, maxLength: 128 });
const UserRole = Type.Union([Type.Literal('admin'), Type.Literal('operator')]);
const DisplayName = Type.String({ minLength: 1, maxLength: 64 });

export const CreateUserBody = Type.Object({ username: Username, password: Password, role: UserRole, displayName: Type.Optional(DisplayName) }, Strict);
export type CreateUserBody = Static<typeof CreateUserBody>;
export const PatchUserBody = Type.Object(
  { displayName: Type.Optional(DisplayName), password: Type.Optional(Password), role: Type.Optional(UserRole), disabled: Type.Optional(Type.Boolean()) },
  Strict,
);
export type PatchUserBody = Static<typeof PatchUserBody>;

export const LoginBody = Type.Object({ username: Type.String({ minLength: 1, maxLength: 64 }), password: Type.String({ minLength: 1, maxLength: 256 }) }, Strict);
export const LoginResponse = Type.Object({ token: Type.String(), expiresAt: IsoTime, user: Type.Ref('User') });
/** The current password is checked, not validated: any length a login accepts. */
export const ChangePasswordBody = Type.Object({ currentPassword: LoginBody.properties.password, newPassword: Password }, Strict);
export type ChangePasswordBody = Static<typeof ChangePasswordBody>;

export const ServiceAccount = Type.Object(
  { id: Type.String(), name: Type.String(), agencyId: Type.String(), createdBy: Type.String(), createdAt: IsoTime, revoked: Type.Boolean() },
  { $id: 'ServiceAccount' },
);
export const CreateServiceAccountBody = Type.Object({ name: Type.String({ minLength: 1, maxLength: 64 }) }, Strict);
export const CreatedServiceAccount = Type.Object({
  id: Type.String(),
  name: Type.String(),
  agencyId: Type.String(),
  createdBy: Type.String(),
  createdAt: IsoTime,
  revoked: Type.Boolean(),
  apiKey: Type.String({ description: 'shown once; only its hash is stored' }),
});

export const AgencyParams = Type.Object({ agencyId: AgencyId });
export const IdParams = Type.Object({ id: ObjectId });
export const UserParams = Type.Object({ userId: ObjectId });
