// The desktop token vault with a real cipher standing in for Electron's safeStorage (which needs the Electron binary
// and an OS key store): the file holds only ciphertext, readable by the user alone, and forgetting removes it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { encryptedTokenVault, memoryTokenVault, type StringCipher } from '../../main/studio/services/tokenVault.js';

function aesCipher(): StringCipher {
  const key = crypto.randomBytes(32);
  return {
    encryptString(plain) {
      const iv = crypto.randomBytes(12);
      const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return Buffer.concat([iv, cipher.getAuthTag(), body]);
    },
    decryptString(encrypted) {
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, encrypted.subarray(0, 12));
      decipher.setAuthTag(encrypted.subarray(12, 28));
      return Buffer.concat([decipher.update(encrypted.subarray(28)), decipher.final()]).toString('utf8');
    },
  };
}

it('keeps the token encrypted on disk, for the user only, and forgets it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'token-vault-'));
  const file = path.join(dir, 'hf-token.enc');
  const cipher = aesCipher();
  const token = `hf_${crypto.randomBytes(16).toString('hex')}`;
  const vault = encryptedTokenVault(file, cipher);
  expect(vault.read()).toBeUndefined();
  vault.write(token);
  expect(fs.readFileSync(file).includes(token)).toBe(false);
  expect(fs.statSync(file).mode & 0o077).toBe(0);
  // A new vault over the same file (the next start of the app) reads it back.
  expect(encryptedTokenVault(file, cipher).read()).toBe(token);
  expect(fs.readdirSync(dir)).toEqual(['hf-token.enc']);
  vault.write(null);
  expect(fs.existsSync(file)).toBe(false);
  expect(vault.read()).toBeUndefined();
  fs.rmSync(dir, { recursive: true });
});

it('keeps the token in memory only where there is no key store', () => {
  const vault = memoryTokenVault();
  vault.write('hf_x');
  expect(vault.read()).toBe('hf_x');
  vault.write(null);
  expect(vault.read()).toBeUndefined();
});
