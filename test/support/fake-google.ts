// A loopback stand-in for Google's OAuth endpoints: issues codes bound to a PKCE challenge,
// checks the client secret and the verifier, returns tokens, refreshes (or refuses with
// invalid_grant), records revocations. Tests reach no real Google.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export interface FakeGoogle {
  url: string;
  env: Record<string, string>;
  /** What the consent screen would do: approve and return the callback URL Google would redirect to. */
  consent(authorizationUrl: string, options?: { scope?: string }): string;
  refreshCalls: number;
  revoked: string[];
  /** Refresh tokens Google no longer accepts. */
  invalidRefreshTokens: Set<string>;
  options: { omitRefreshToken: boolean; failRefresh: boolean; accessTokenTtlS: number; refreshDelayMs: number; exchangeDelayMs: number; revokeDelayMs: number };
  issuedRefreshTokens: string[];
  issuedAccessTokens: string[];
  close(): Promise<void>;
}

const CLIENT_ID = 'fake-client-id.apps.example';
const CLIENT_SECRET = 'fake-client-secret-0123456789';
const EMAIL = 'ops@example.com';

async function form(req: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

export async function startFakeGoogle(redirectUri: string): Promise<FakeGoogle> {
  const codes = new Map<string, { challenge: string; scope: string; redirectUri: string }>();
  const tokenOwner = new Map<string, string>();
  const fake: Omit<FakeGoogle, 'url' | 'env' | 'close'> = {
    refreshCalls: 0,
    revoked: [],
    invalidRefreshTokens: new Set(),
    options: { omitRefreshToken: false, failRefresh: false, accessTokenTtlS: 3600, refreshDelayMs: 0, exchangeDelayMs: 0, revokeDelayMs: 0 },
    issuedRefreshTokens: [],
    issuedAccessTokens: [],
    consent(authorizationUrl, options = {}) {
      const url = new URL(authorizationUrl);
      const p = url.searchParams;
      if (p.get('client_id') !== CLIENT_ID || p.get('response_type') !== 'code' || p.get('code_challenge_method') !== 'S256') {
        throw new Error(`bad authorization request: ${url.search}`);
      }
      const code = randomBytes(16).toString('hex');
      codes.set(code, { challenge: p.get('code_challenge')!, scope: options.scope ?? p.get('scope')!, redirectUri: p.get('redirect_uri')! });
      return `${p.get('redirect_uri')}?code=${code}&state=${encodeURIComponent(p.get('state')!)}`;
    },
  };
  const accessToken = () => {
    const token = `ya29.fake-${randomBytes(16).toString('hex')}`;
    fake.issuedAccessTokens.push(token);
    return token;
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'POST' && url.pathname === '/token') {
      const params = await form(req);
      if (params.get('client_id') !== CLIENT_ID || params.get('client_secret') !== CLIENT_SECRET) return json(res, 401, { error: 'invalid_client' });
      if (params.get('grant_type') === 'authorization_code') {
        if (fake.options.exchangeDelayMs) await new Promise((resolve) => setTimeout(resolve, fake.options.exchangeDelayMs));
        const grant = codes.get(params.get('code') ?? '');
        codes.delete(params.get('code') ?? '');
        const verifier = params.get('code_verifier') ?? '';
        if (!grant || grant.redirectUri !== params.get('redirect_uri')) return json(res, 400, { error: 'invalid_grant' });
        if (createHash('sha256').update(verifier).digest('base64url') !== grant.challenge) return json(res, 400, { error: 'invalid_grant', error_description: 'PKCE' });
        const refresh = `1//fake-refresh-${randomBytes(24).toString('hex')}`;
        fake.issuedRefreshTokens.push(refresh);
        const access = accessToken();
        tokenOwner.set(access, EMAIL);
        const idToken = `e30.${Buffer.from(JSON.stringify({ email: EMAIL, sub: '1' })).toString('base64url')}.sig`;
        return json(res, 200, {
          access_token: access,
          ...(fake.options.omitRefreshToken ? {} : { refresh_token: refresh }),
          expires_in: fake.options.accessTokenTtlS,
          scope: grant.scope,
          token_type: 'Bearer',
          id_token: idToken,
        });
      }
      if (params.get('grant_type') === 'refresh_token') {
        fake.refreshCalls += 1;
        if (fake.options.refreshDelayMs) await new Promise((resolve) => setTimeout(resolve, fake.options.refreshDelayMs));
        const refresh = params.get('refresh_token') ?? '';
        if (fake.options.failRefresh) return json(res, 503, { error: 'backend_error' });
        if (!fake.issuedRefreshTokens.includes(refresh) || fake.invalidRefreshTokens.has(refresh) || fake.revoked.includes(refresh)) {
          return json(res, 400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
        }
        return json(res, 200, { access_token: accessToken(), expires_in: fake.options.accessTokenTtlS, token_type: 'Bearer' });
      }
      return json(res, 400, { error: 'unsupported_grant_type' });
    }
    if (req.method === 'POST' && url.pathname === '/revoke') {
      const params = await form(req);
      if (fake.options.revokeDelayMs) await new Promise((resolve) => setTimeout(resolve, fake.options.revokeDelayMs));
      fake.revoked.push(url.searchParams.get('token') ?? params.get('token') ?? '');
      return json(res, 200, {});
    }
    if (url.pathname === '/userinfo') return json(res, 200, { email: EMAIL });
    return json(res, 404, { error: 'not_found' });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return Object.assign(fake, {
    url: base,
    env: {
      GOOGLE_OAUTH_CLIENT_ID: CLIENT_ID,
      GOOGLE_OAUTH_CLIENT_SECRET: CLIENT_SECRET,
      GOOGLE_OAUTH_REDIRECT_URI: redirectUri,
      GOOGLE_OAUTH_AUTH_URL: `${base}/auth`,
      GOOGLE_OAUTH_TOKEN_URL: `${base}/token`,
      GOOGLE_OAUTH_REVOKE_URL: `${base}/revoke`,
      GOOGLE_OAUTH_USERINFO_URL: `${base}/userinfo`,
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }) as FakeGoogle;
}
