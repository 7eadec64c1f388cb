// Whether an address or host name is this machine's loopback: 127.0.0.0/8, ::1 (also as an
// IPv4-mapped or bracketed address) or `localhost`.
import { isIP } from 'node:net';

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const host = address.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host === '::1') return true;
  const v4 = host.startsWith('::ffff:') ? host.slice('::ffff:'.length) : host;
  return isIP(v4) === 4 && v4.startsWith('127.');
}
