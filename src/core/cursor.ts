/** Opaque list cursors: base64url of an internal position, so clients cannot depend on its form. */
export const encodeCursor = (position: string) => Buffer.from(position, 'utf8').toString('base64url');
export const decodeCursor = (cursor: string) => Buffer.from(cursor, 'base64url').toString('utf8');
