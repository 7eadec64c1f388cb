import t from 'tap';
import { createKeyring, decryptCache, generateKey, keyId, parseKey } from '../../src/crypto/keyring.js';
import { loadConfig } from '../../src/config.js';

const A = parseKey(generateKey());
const B = parseKey(generateKey());

t.test('round-trips with the row identity as associated data; another row or field fails', async (t) => {
  const ring = createKeyring(A);
  const sealed = ring.encrypt('whsec_secret', 'webhooks:org1:hook1:signing_secret');
  t.match(sealed, new RegExp(`^v1\\.${keyId(A)}\\.`));
  t.not(ring.encrypt('whsec_secret', 'x'), ring.encrypt('whsec_secret', 'x'), 'random IVs');
  t.equal(ring.decrypt(sealed, 'webhooks:org1:hook1:signing_secret'), 'whsec_secret');
  t.throws(() => ring.decrypt(sealed, 'webhooks:org1:hook2:signing_secret'), { name: 'KeyringError' });
  const tampered = sealed.slice(0, -2) + (sealed.at(-2) === 'A' ? 'B' : 'A') + sealed.slice(-1);
  t.throws(() => ring.decrypt(tampered, 'webhooks:org1:hook1:signing_secret'), { name: 'KeyringError' });
  t.throws(() => ring.decrypt('plaintext', 'x'), { message: /not a Switchboard ciphertext/ });
});

t.test('rotation: old keys only decrypt; a missing key is named', async (t) => {
  const sealedA = createKeyring(A).encrypt('s', 'aad');
  const rotated = createKeyring(B, [A]);
  t.equal(rotated.decrypt(sealedA, 'aad'), 's');
  t.equal(rotated.keyIdOf(rotated.encrypt('s', 'aad')), keyId(B), 'new ciphertexts use the current key');
  t.throws(() => createKeyring(B).decrypt(sealedA, 'aad'), { message: new RegExp(`key ${keyId(A)}`) });
});

t.test('keys must be 32 bytes of base64; production requires one', async (t) => {
  t.throws(() => parseKey('short'));
  t.equal(parseKey(Buffer.alloc(32, 7).toString('base64')).length, 32);
  t.throws(() => loadConfig({ TOKEN_ENCRYPTION_KEY: 'abc' }), { message: /TOKEN_ENCRYPTION_KEY/ });
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), { message: /TOKEN_ENCRYPTION_KEY: is required/ });
  t.ok(loadConfig({}), 'development may generate one into DATA_DIR');
  t.ok(loadConfig({ DATABASE_URL: 'postgres://x/y' }), 'with Postgres too (the keyring canary catches instances with different keys)');
});

t.test('the decrypt cache answers like the keyring, per row, and never remembers a failure', async (t) => {
  const ring = createKeyring(A);
  const decrypt = decryptCache(ring, 2);
  const first = ring.encrypt('whsec_one', 'row:1');
  t.equal(decrypt(first, 'row:1'), 'whsec_one');
  t.equal(decrypt(first, 'row:1'), 'whsec_one', 'again, from the cache');
  t.throws(() => decrypt(first, 'row:2'), { name: 'KeyringError' }, 'the same ciphertext on another row still fails');
  t.throws(() => decrypt(first, 'row:2'), { name: 'KeyringError' }, 'and fails again');
  const rotated = ring.encrypt('whsec_two', 'row:1');
  t.equal(decrypt(rotated, 'row:1'), 'whsec_two', 'a new ciphertext is decrypted afresh');
  const third = ring.encrypt('whsec_three', 'row:3');
  t.equal(decrypt(third, 'row:3'), 'whsec_three', 'past maxEntries the cache starts over');
  t.equal(decrypt(first, 'row:1'), 'whsec_one');
});
