import { eq } from 'drizzle-orm';
import t from 'tap';
import { generateKey } from '../../src/crypto/keyring.js';
import { retireCanaries } from '../../src/db/canaries.js';
import { ciphertextsByKey, reencryptSecrets } from '../../src/db/key-rotation.js';
import { createOAuthState, verifierAad } from '../../src/db/oauth.js';
import { googleConnections, webhooks } from '../../src/db/schema.js';
import { loadKeyring } from '../../src/keyring-loader.js';
import { asAgent, bearer, build, createAgent, createOrg, createWebhook, isolatedDatabaseEnv, testConfig } from '../helper.js';
import { runCommand } from '../support/process.js';
import { githubHeaders } from '../support/signing.js';
import { startFakeGoogle } from '../support/fake-google.js';

t.test('rotate A → B with A as old key, re-encrypt, drop A: every secret still works; moved ciphertexts fail', async (t) => {
  const google = await startFakeGoogle('http://127.0.0.1:8080/api/v1/oauth/google/callback');
  t.teardown(() => google.close());
  const dbEnv = await isolatedDatabaseEnv(t, { migrated: true });
  const A = generateKey();
  const B = generateKey();
  const env = (key: string, old = '') => ({ ...dbEnv, ...google.env, TOKEN_ENCRYPTION_KEY: key, TOKEN_ENCRYPTION_OLD_KEYS: old });

  // Under key A: a webhook with a rotated secret (two ciphertexts) and a Google connection.
  const appA = await build(t, { database: 'own', env: env(A) });
  const org = await createOrg(appA);
  const agent = await createAgent(appA, org.adminKey);
  const hook = await createWebhook(appA, org.adminKey);
  const rotated = (await appA.inject({ method: 'POST', url: `/api/v1/webhooks/${hook.id}/secret`, headers: bearer(org.adminKey), payload: { overlap_seconds: 3600 } })).json().secret;
  const { authorization_url } = (await appA.inject({ method: 'GET', url: '/api/v1/oauth/google/start?redirect=false', headers: bearer(org.adminKey) })).json();
  t.equal((await appA.inject({ method: 'GET', url: google.consent(authorization_url).replace('http://127.0.0.1:8080', '') })).statusCode, 200);
  await appA.close();

  const works = async (app: Awaited<ReturnType<typeof build>>, label: string) => {
    for (const secret of [hook.secret, rotated]) {
      const res = await app.inject({ method: 'POST', url: hook.url, headers: await githubHeaders(secret, '{}'), payload: '{}' });
      t.equal(res.statusCode, 202, `${label}: webhook secret verifies`);
    }
    t.equal((await app.inject({ method: 'POST', url: '/api/v1/agent/credentials/google/token', headers: asAgent(agent.token) })).statusCode, 200, `${label}: broker issues`);
  };

  // B current, A old: everything still decrypts; then re-encrypt everything under B.
  const appAB = await build(t, { database: 'own', env: env(B, A) });
  await works(appAB, 'B with A as old key');
  const { keyring } = await loadKeyring(testConfig(env(B, A)));
  const report = await reencryptSecrets(appAB.db, keyring);
  t.same(report, { webhooks: 1, google_connections: 1, oauth_states: 0, unreadable: [] });
  t.same(Object.keys(await ciphertextsByKey(appAB.db)), [keyring.currentKeyId], 'nothing left under A');
  // A connection started under A meanwhile (by an instance not yet redeployed) is pending under A:
  // the rotation is not finished until it is re-encrypted too.
  const { keyring: keyringA } = await loadKeyring(testConfig(env(A)));
  const stateHash = 'c'.repeat(64);
  await createOAuthState(appAB.db, org.id, { stateHash, apiKeyId: org.adminKeyId, codeVerifierCiphertext: keyringA.encrypt('verifier', verifierAad(stateHash)), ttlSeconds: 600 });
  t.same(Object.keys(await ciphertextsByKey(appAB.db)).sort(), [keyringA.currentKeyId, keyring.currentKeyId].sort(), 'a pending state under A keeps the rotation unfinished');
  t.same(await reencryptSecrets(appAB.db, keyring), { webhooks: 0, google_connections: 0, oauth_states: 1, unreadable: [] });
  t.same(Object.keys(await ciphertextsByKey(appAB.db)), [keyring.currentKeyId], 'now nothing is left under A');
  t.same(await reencryptSecrets(appAB.db, keyring), { webhooks: 0, google_connections: 0, oauth_states: 0, unreadable: [] }, 'idempotent');
  await retireCanaries(appAB.db, keyring);
  await appAB.close();

  // A dropped: still works.
  const appB = await build(t, { database: 'own', env: env(B) });
  await works(appB, 'B alone');
  t.equal((await appB.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'ready with B alone');

  // A ciphertext moved to another row does not decrypt there.
  const other = await createWebhook(appB, org.adminKey);
  const [source] = await appB.db.select().from(webhooks).where(eq(webhooks.id, hook.id));
  await appB.db.update(webhooks).set({ secretCiphertext: source!.secretCiphertext }).where(eq(webhooks.id, other.id));
  t.equal((await appB.inject({ method: 'POST', url: other.url, headers: await githubHeaders(hook.secret, '{}'), payload: '{}' })).statusCode, 503);
  const [connection] = await appB.db.select().from(googleConnections);
  t.ok(connection);
});

t.test('a database written with a key that is not configured is not ready, and says which key', async (t) => {
  const dbEnv = await isolatedDatabaseEnv(t, { migrated: true });
  const A = generateKey();
  const appA = await build(t, { database: 'own', env: { ...dbEnv, TOKEN_ENCRYPTION_KEY: A } });
  const org = await createOrg(appA);
  await createWebhook(appA, org.adminKey);
  t.equal((await appA.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  await appA.close();
  const appC = await build(t, { database: 'own', env: { ...dbEnv, TOKEN_ENCRYPTION_KEY: generateKey() } });
  const res = await appC.inject({ method: 'GET', url: '/readyz' });
  t.equal(res.statusCode, 503);
  t.match(res.json().checks.keyring, { status: 'fail', error: 'encryption_key_missing', unknown_key_ids: [String] });
  t.notMatch(res.body, A, 'never the key itself');
  await appC.close();
  // The wrong-key instance was the odd one out: it left nothing that makes the right key look wrong.
  const appA2 = await build(t, { database: 'own', env: { ...dbEnv, TOKEN_ENCRYPTION_KEY: A } });
  const again = await appA2.inject({ method: 'GET', url: '/readyz' });
  t.equal(again.statusCode, 200, `an instance with the right key is still ready: ${again.body}`);
});

t.test('keys rotate with keys that cannot read the database changes nothing and says which keys are missing', async (t) => {
  const dbEnv = await isolatedDatabaseEnv(t, { migrated: true });
  const A = generateKey();
  const appA = await build(t, { database: 'own', env: { ...dbEnv, TOKEN_ENCRYPTION_KEY: A } });
  // No secret stored yet: only the servers' canary says which key they use.
  await createOrg(appA);
  await appA.close();
  // As when TOKEN_ENCRYPTION_OLD_KEYS is forgotten, or the CLI runs with a generated development key.
  const rotate = await runCommand(['dist/cli/index.js', 'keys', 'rotate'], { ...dbEnv, TOKEN_ENCRYPTION_KEY: generateKey() });
  t.equal(rotate.code, 2, rotate.stderr);
  t.match(rotate.stderr, /cannot decrypt this database \(keys not configured: [0-9a-f]+;.*Nothing was changed/);
  t.notMatch(rotate.stderr + rotate.stdout, A, 'never the key itself');
  const appA2 = await build(t, { database: 'own', env: { ...dbEnv, TOKEN_ENCRYPTION_KEY: A } });
  t.equal((await appA2.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'the servers\' key is still the one the database knows');
});

t.test('keys rotate rewrites every row it can, names each one that does not decrypt, and exits 1 until it is replaced', async (t) => {
  const dbEnv = await isolatedDatabaseEnv(t, { migrated: true });
  const A = generateKey();
  const B = generateKey();
  const appA = await build(t, { database: 'own', env: { ...dbEnv, TOKEN_ENCRYPTION_KEY: A } });
  const org = await createOrg(appA);
  const good = await createWebhook(appA, org.adminKey);
  const broken = await createWebhook(appA, org.adminKey);
  // Another row's ciphertext does not decrypt here (as after a bad restore or a hand edit).
  const [source] = await appA.db.select().from(webhooks).where(eq(webhooks.id, good.id));
  await appA.db.update(webhooks).set({ secretCiphertext: source!.secretCiphertext }).where(eq(webhooks.id, broken.id));
  await appA.close();

  const env = { ...dbEnv, TOKEN_ENCRYPTION_KEY: B, TOKEN_ENCRYPTION_OLD_KEYS: A };
  const rotate = await runCommand(['dist/cli/index.js', 'keys', 'rotate'], env);
  t.equal(rotate.code, 1, rotate.stderr);
  t.match(rotate.stdout, /re-encrypted: 1 webhooks/);
  t.match(rotate.stderr, new RegExp(`1 stored secrets do not decrypt[\\s\\S]*webhooks ${broken.id} \\(organization ${org.id}\\): ciphertext does not decrypt`));
  t.match(rotate.stderr, /overlap_seconds": 0/, 'says how to replace it');
  t.notMatch(rotate.stderr + rotate.stdout, A, 'never the key itself');

  const appAB = await build(t, { database: 'own', env });
  const { keyring } = await loadKeyring(testConfig(env));
  const [goodRow] = await appAB.db.select().from(webhooks).where(eq(webhooks.id, good.id));
  t.equal(keyring.keyIdOf(goodRow!.secretCiphertext), keyring.currentKeyId, 'the readable row was rewritten');
  const replaced = await appAB.inject({ method: 'POST', url: `/api/v1/webhooks/${broken.id}/secret`, headers: bearer(org.adminKey), payload: { overlap_seconds: 0 } });
  t.equal(replaced.statusCode, 200, replaced.body);
  await appAB.close(); // the embedded database takes one process at a time
  const again = await runCommand(['dist/cli/index.js', 'keys', 'rotate'], env);
  t.equal(again.code, 0, again.stderr);
  t.match(again.stdout, /All secrets are under the current key/);
  const appB = await build(t, { database: 'own', env });
  t.same(Object.keys(await ciphertextsByKey(appB.db)), [keyring.currentKeyId]);
});
