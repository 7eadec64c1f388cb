// The Google side of OAuth through google-auth-library, with every endpoint configurable so the
// same code talks to Google, a Google-compatible provider, or a loopback fake in tests.
import { CodeChallengeMethod, OAuth2Client } from 'google-auth-library';
import type { GoogleOAuthConfig } from '../config.js';
import { withTimeout } from '../db/health.js';

export class GoogleGrantError extends Error {
  override name = 'GoogleGrantError';
}
export class GoogleUnavailableError extends Error {
  override name = 'GoogleUnavailableError';
}

export interface ExchangedTokens {
  accessToken: string;
  refreshToken: string | null;
  expiresAt: Date;
  scopes: string[];
  email: string | null;
}

export interface RefreshedToken {
  accessToken: string;
  expiresAt: Date;
  scopes: string[] | undefined;
}

/** The error code in a failed token-endpoint response (e.g. invalid_grant), if any. */
function oauthErrorCode(err: unknown): string | undefined {
  const data = (err as { response?: { data?: { error?: unknown } } }).response?.data;
  return typeof data?.error === 'string' ? data.error : undefined;
}

function emailFromIdToken(idToken: string | null | undefined): string | null {
  // Received straight from the token endpoint over TLS, so the signature need not be checked
  // (OpenID Connect Core 3.1.3.7); only the claim is read.
  const payload = idToken?.split('.')[1];
  if (!payload) return null;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { email?: unknown };
    return typeof claims.email === 'string' ? claims.email : null;
  } catch {
    return null;
  }
}

/** `work`, or GoogleUnavailableError once the call's budget has passed (its late outcome is ignored). */
const inTime = <T>(work: Promise<T>, ms: number) => withTimeout(work, ms, () => new GoogleUnavailableError(`no answer from Google within ${ms} ms`));

export class GoogleOAuth {
  /** Every call to Google ends within config.timeoutMs (GOOGLE_OAUTH_TIMEOUT_MS), retries included. */
  constructor(
    private readonly config: GoogleOAuthConfig,
    private readonly scopes: string[],
  ) {}

  private client(): OAuth2Client {
    return new OAuth2Client({
      // Each request to Google is aborted after the budget, as well as the call as a whole (inTime).
      transporterOptions: { timeout: this.config.timeoutMs },
      clientId: this.config.clientId,
      clientSecret: this.config.clientSecret,
      redirectUri: this.config.redirectUri,
      endpoints: { oauth2AuthBaseUrl: this.config.authUrl, oauth2TokenUrl: this.config.tokenUrl, oauth2RevokeUrl: this.config.revokeUrl },
    });
  }

  async pkce(): Promise<{ codeVerifier: string; codeChallenge: string }> {
    const { codeVerifier, codeChallenge } = await this.client().generateCodeVerifierAsync();
    return { codeVerifier, codeChallenge: codeChallenge! };
  }

  authorizationUrl(state: string, codeChallenge: string): string {
    return this.client().generateAuthUrl({
      access_type: 'offline',
      prompt: 'consent',
      include_granted_scopes: true,
      scope: this.scopes,
      state,
      code_challenge: codeChallenge,
      code_challenge_method: CodeChallengeMethod.S256,
    });
  }

  async exchange(code: string, codeVerifier: string): Promise<ExchangedTokens> {
    const client = this.client();
    let tokens;
    try {
      ({ tokens } = await inTime(client.getToken({ code, codeVerifier, redirect_uri: this.config.redirectUri }), this.config.timeoutMs));
    } catch (err) {
      throw new GoogleGrantError(oauthErrorCode(err) ?? 'token exchange failed');
    }
    if (!tokens.access_token) throw new GoogleGrantError('no access token in the response');
    let email = emailFromIdToken(tokens.id_token);
    if (!email) email = await this.userinfoEmail(tokens.access_token);
    return {
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token ?? null,
      expiresAt: new Date(tokens.expiry_date ?? Date.now() + 3_600_000),
      scopes: (tokens.scope ?? '').split(/\s+/).filter(Boolean),
      email,
    };
  }

  private async userinfoEmail(accessToken: string): Promise<string | null> {
    try {
      const res = await fetch(this.config.userinfoUrl, { headers: { authorization: `Bearer ${accessToken}` }, signal: AbortSignal.timeout(this.config.timeoutMs) });
      if (!res.ok) return null;
      const body = (await res.json()) as { email?: unknown };
      return typeof body.email === 'string' ? body.email : null;
    } catch {
      return null;
    }
  }

  /**
   * A new access token; GoogleGrantError when the refresh token is no longer valid (reconnect),
   * GoogleUnavailableError when Google refuses otherwise or has not answered in time.
   */
  async refresh(refreshToken: string): Promise<RefreshedToken> {
    const client = this.client();
    client.setCredentials({ refresh_token: refreshToken });
    try {
      const { token } = await inTime(client.getAccessToken(), this.config.timeoutMs);
      if (!token) throw new GoogleUnavailableError('no access token in the response');
      const credentials = client.credentials;
      return {
        accessToken: token,
        expiresAt: new Date(credentials.expiry_date ?? Date.now() + 3_600_000),
        scopes: credentials.scope ? credentials.scope.split(/\s+/).filter(Boolean) : undefined,
      };
    } catch (err) {
      if (err instanceof GoogleUnavailableError) throw err;
      const code = oauthErrorCode(err);
      if (code === 'invalid_grant' || code === 'unauthorized_client' || code === 'invalid_client') throw new GoogleGrantError(code);
      throw new GoogleUnavailableError(code ?? 'Google did not answer');
    }
  }

  /** Best effort: true when Google confirmed the revocation. */
  async revoke(token: string): Promise<boolean> {
    try {
      await inTime(this.client().revokeToken(token), this.config.timeoutMs);
      return true;
    } catch {
      return false;
    }
  }
}
