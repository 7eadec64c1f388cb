// Makes the encryption keyring available to routes as app.keyring.
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import type { Keyring } from '../crypto/keyring.js';
import { checkCanaries, ensureCanary } from '../db/canaries.js';
import { loadKeyring } from '../keyring-loader.js';

declare module 'fastify' {
  interface FastifyInstance {
    keyring: Keyring;
  }
}

export default fp<{ config: Config }>(
  async (app, { config }) => {
    const { keyring, generated } = await loadKeyring(config);
    if (generated === 'memory') {
      app.log.warn('TOKEN_ENCRYPTION_KEY is not set: using a throw-away key for this in-memory database');
    } else if (generated) {
      app.log.warn(
        { key_file: generated },
        'TOKEN_ENCRYPTION_KEY is not set: using a generated development key stored in DATA_DIR. Back it up with the data; set TOKEN_ENCRYPTION_KEY for production',
      );
    }
    app.decorate('keyring', keyring);
    try {
      // The current key's canary is written only by an instance that can read everything already
      // here: one started with a wrong key must not leave a canary that makes every correctly
      // configured instance report an unknown key. It is the odd one out, and not ready.
      const canaries = await checkCanaries(app.db, keyring);
      if (canaries.ok) await ensureCanary(app.db, keyring);
      else {
        app.log.error(
          { unknown_key_ids: canaries.unknown_key_ids, failing_key_ids: canaries.failing_key_ids },
          'the configured encryption keys cannot decrypt data in this database: /readyz reports not ready. Configure the key it was written with (TOKEN_ENCRYPTION_KEY or TOKEN_ENCRYPTION_OLD_KEYS)',
        );
      }
    } catch (err) {
      // Migrations not applied yet (MIGRATE_ON_START=false): /readyz says so.
      app.log.warn({ err }, 'could not check the encryption keys against the database');
    }
  },
  { name: 'keyring', dependencies: ['database'] },
);
