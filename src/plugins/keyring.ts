// Makes the encryption keyring available to routes as app.keyring.
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import type { Keyring } from '../crypto/keyring.js';
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
  },
  { name: 'keyring' },
);
