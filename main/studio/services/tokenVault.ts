// Where the Hugging Face token entered in the studio is kept: never a plain file. The desktop app encrypts it with
// the operating system's key store (Electron's safeStorage: Keychain, DPAPI, libsecret/kwallet); without one, and in
// browser mode, it lives in memory until the app exits (HF_TOKEN or `huggingface-cli login` are the lasting ways).
import fs from 'node:fs';
import { writeFileAtomic } from '../../util/atomicWrite.js';

export interface TokenVault {
  read(): string | undefined;
  /** null forgets the token. */
  write(token: string | null): void;
}

/** What the vault needs of Electron's safeStorage, so the vault itself runs without Electron. */
export interface StringCipher {
  encryptString(plain: string): Buffer;
  decryptString(encrypted: Buffer): string;
}

export function memoryTokenVault(): TokenVault {
  let token: string | undefined;
  return {
    read: () => token,
    write: (next) => void (token = next ?? undefined),
  };
}

/** The token encrypted by `cipher` in `file` (readable by the user only). */
export function encryptedTokenVault(file: string, cipher: StringCipher): TokenVault {
  return {
    read: () => (fs.existsSync(file) ? cipher.decryptString(fs.readFileSync(file)) || undefined : undefined),
    write: (token) => {
      if (token === null) return fs.rmSync(file, { force: true });
      writeFileAtomic(file, [cipher.encryptString(token)], { mode: 0o600 });
    },
  };
}
