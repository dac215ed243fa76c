// A real OpenID provider for the portal's sign-in tests: oidc-provider (the certified
// Node implementation) with a small config. Usage: PORT=<port> node provider.mjs
//
// Accounts sign in through the provider's own login form (dev interactions: any
// password), then authorize the portal on its consent page ("Continue"). Three clients share one configuration and differ only in what the provider
// gets wrong on purpose, so the portal's checks meet real tokens:
//   portal            correct ID tokens
//   portal-wrong-aud  ID tokens whose audience is another client ("another-app")
//   portal-expired    ID tokens that expired ten minutes before they were issued
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;

// login -> claims. bob is in two groups (catalog memberOf); alice's provider also names
// a group in the groups claim; carol has no User entity in the portal's catalog.
const ACCOUNTS = {
  alice: { email: 'alice@example.com', name: 'Alice', groups: ['from-idp'] },
  bob: { email: 'bob@example.com', name: 'Bob', groups: [] },
  carol: { email: 'carol@example.com', name: 'Carol', groups: [] },
  dave: { email: 'dave@example.com', name: 'Dave', groups: [] },
};

const client = (clientId) => ({
  client_id: clientId,
  client_secret: `${clientId}-secret`,
  // "native": loopback redirect URIs match on any port (RFC 8252 7.3), and every test
  // portal listens on its own free port on 127.0.0.1.
  application_type: 'native',
  redirect_uris: ['http://127.0.0.1/login/oidc/callback'],
  post_logout_redirect_uris: ['http://127.0.0.1/login?signed_out=1'],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
});

const provider = new Provider(issuer, {
  clients: ['portal', 'portal-wrong-aud', 'portal-expired'].map(client),
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: { email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  cookies: {
    keys: ['ragportal-test-provider-cookie-key'],
    long: { signed: true, sameSite: 'lax' },
    short: { signed: true, sameSite: 'lax' },
  },
  async findAccount(ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: account.email, email_verified: true, name: account.name, groups: account.groups };
      },
    };
  },
});

// The faults, injected where the provider signs an ID token.
const issue = provider.IdToken.prototype.issue;
provider.IdToken.prototype.issue = async function issueWithFaults(options = {}) {
  const clientId = this.client?.clientId;
  if (options.use === 'idtoken' && clientId === 'portal-expired') {
    return issue.call(this, { ...options, expiresAt: Math.floor(Date.now() / 1000) - 600 });
  }
  if (options.use === 'idtoken' && clientId === 'portal-wrong-aud') {
    const real = this.client;
    this.client = new Proxy(real, {
      get(target, key) {
        if (key === 'clientId') return 'another-app';
        const value = target[key];
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    try {
      return await issue.call(this, options);
    } finally {
      this.client = real;
    }
  }
  return issue.call(this, options);
};

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
