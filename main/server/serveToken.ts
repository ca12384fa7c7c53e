// The browser mode's access token, kept in the studio folder (owner-only) so a bookmarked link survives restarts.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import { writeFileAtomic } from '../util/atomicWrite.js';

const TOKEN_FILE = 'serve-token';
/** URL-safe, long enough to guess never: what --token accepts and what is generated (32 characters). */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{24,128}$/;

/**
 * The token `serve` uses: `chosen` (and kept from now on), else the one kept in `home`, else a new random one, kept.
 * The file is written owner-only from its first byte; a readable one is made owner-only again.
 */
export function serveToken(home: string, chosen: string | null): string {
  const file = path.join(home, TOKEN_FILE);
  if (chosen !== null) {
    if (!TOKEN_PATTERN.test(chosen))
      throw new UserError('the token must be 24 to 128 letters, digits, - or _', { field: 'token' });
    writeFileAtomic(file, `${chosen}\n`, { mode: 0o600 });
    return chosen;
  }
  const kept = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : '';
  if (TOKEN_PATTERN.test(kept)) {
    if ((fs.statSync(file).mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
    return kept;
  }
  const token = crypto.randomBytes(24).toString('base64url');
  writeFileAtomic(file, `${token}\n`, { mode: 0o600 });
  return token;
}
