import { randomBytes } from 'node:crypto';

/** Unguessable ids with a readable kind prefix: `u_…` users, `sa_…` service accounts, `s_…` sessions, `r_…` reservations. */
export const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('base64url')}`;
