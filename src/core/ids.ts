import { randomFillSync } from 'node:crypto';

/** CSPRNG bytes drawn a page at a time: one call into the kernel's generator per 341 ids instead of one per id. */
const POOL_BYTES = 4092;
const ID_BYTES = 12;
const pool = Buffer.alloc(POOL_BYTES);
let used = POOL_BYTES;

/** Unguessable ids with a readable kind prefix: `u_…` users, `sa_…` service accounts, `s_…` sessions, `r_…` reservations. */
export const newId = (prefix: string): string => {
  if (used + ID_BYTES > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const id = pool.toString('base64url', used, used + ID_BYTES);
  used += ID_BYTES;
  return `${prefix}_${id}`;
};
