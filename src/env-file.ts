// Loads an optional .env file into process.env; variables already set in the environment win.
import { existsSync } from 'node:fs';

export function loadEnvFile(path = process.env.ENV_FILE ?? '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path);
}
