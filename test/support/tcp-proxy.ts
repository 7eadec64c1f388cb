// A loopback TCP proxy in front of Postgres, so a test can make the database go away (and come
// back, or slow down) for one app without touching the server other tests use.
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Drops every connection and refuses new ones. */
  cut(): Promise<void>;
  /** Accepts connections again on the same port. */
  restore(): Promise<void>;
  /** Delays each chunk from the database by `ms`. */
  setDelay(ms: number): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  // Delayed chunks not yet passed on: cut() drops them, so a long delay does not keep the test
  // process alive after its last test.
  const delayed = new Set<NodeJS.Timeout>();
  let delayMs = 0;
  let server: Server;
  let port = 0;

  const listen = async () => {
    server = createServer((client) => {
      const upstream = createConnection({ host: targetHost, port: targetPort });
      sockets.add(client).add(upstream);
      client.pipe(upstream);
      upstream.on('data', (chunk: Buffer) => {
        if (delayMs === 0) client.write(chunk);
        else {
          const timer = setTimeout(() => {
            delayed.delete(timer);
            if (client.writable) client.write(chunk);
          }, delayMs);
          delayed.add(timer);
        }
      });
      const drop = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  };
  await listen();

  const cut = async () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    for (const timer of delayed) clearTimeout(timer);
    delayed.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    get port() {
      return port;
    },
    cut,
    restore: listen,
    setDelay: (ms) => {
      delayMs = ms;
    },
    close: async () => {
      if (server.listening) await cut();
    },
  };
}

/** TEST_DATABASE_URL rewritten to go through the proxy. */
export function proxiedUrl(databaseUrl: string, proxy: TcpProxy): string {
  const url = new URL(databaseUrl);
  url.hostname = '127.0.0.1';
  url.port = String(proxy.port);
  return url.toString();
}
