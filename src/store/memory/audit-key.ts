/**
 * The embedded store's audit signing key: `audit-signing-key.pem` in the data dir (Ed25519, PKCS#8 PEM,
 * mode 0600), generated once at the first start. `audit:verify` reads its public half from here.
 * @see ../../core/audit-head.ts
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { generateSigningKeyPem } from '../../core/audit-head.js';
import { ensureDataDir } from './journal.js';

export const AUDIT_KEY_FILE = 'audit-signing-key.pem';

const FILE_MODE = 0o600;

/** The key file's PEM text, or undefined when the data dir has none. */
export async function readAuditKeyFile(dataDir: string): Promise<string | undefined> {
  try {
    return await fs.readFile(path.join(dataDir, AUDIT_KEY_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * The key file's PEM text, generating the file first when there is none. Created exclusively (`wx`)
 * with mode 0600 and fsync'd before it is used, so a key that signed a head is never replaced.
 */
export async function loadOrCreateAuditKeyFile(dataDir: string): Promise<string> {
  const existing = await readAuditKeyFile(dataDir);
  if (existing !== undefined) return existing;
  await ensureDataDir(dataDir);
  const pem = generateSigningKeyPem();
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path.join(dataDir, AUDIT_KEY_FILE), 'wx', FILE_MODE);
  } catch (error) {
    // Another process created it between our read and our open: use theirs.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return (await readAuditKeyFile(dataDir))!;
    throw error;
  }
  try {
    await handle.writeFile(pem);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return pem;
}
