/** Schema of a signed audit head, shared by the audit and report routes. @see ../../../shared/API.md "Audit" */
import { Type } from '@sinclair/typebox';

export const AuditHash = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'sha256, 64 lowercase hex digits' });

export const SignedAuditHead = Type.Object(
  {
    seq: Type.Integer({ minimum: 0 }),
    hash: AuditHash,
    at: Type.String({ description: "the entry's ISO time, exactly as in the entry (1970-01-01T00:00:00.000Z for the empty log)" }),
    keyId: Type.String({ description: 'first 16 hex digits of sha256 over the public key (SPKI DER)' }),
    signature: Type.String({ description: 'base64 Ed25519 signature over the UTF-8 bytes of `${seq}\\n${hash}\\n${at}`' }),
  },
  { description: 'A checkpoint of the audit chain, signed with the broker’s Ed25519 audit key (GET /audit/public-key)' },
);
