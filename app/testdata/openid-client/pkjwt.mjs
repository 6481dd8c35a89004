// Run by app/pkjwt_node_test.go: openid-client, unchanged, authenticates
// to Gatehouse as a private_key_jwt client (it builds the assertions
// itself, aud = the issuer) for client credentials, the code flow's
// exchange, a refresh, introspection and revocation, and prints what it
// saw as one JSON line.
import * as client from 'openid-client'

const jwk = JSON.parse(process.env.GH_PRIVATE_JWK)
const key = await crypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
const config = await client.discovery(new URL(process.env.GH_ISSUER), process.env.GH_CLIENT_ID, {},
  client.PrivateKeyJwt({ key, kid: jwk.kid }), { execute: [client.allowInsecureRequests] })

const out = {}
const cc = await client.clientCredentialsGrant(config)
out.client_credentials = typeof cc.access_token === 'string' && cc.access_token.length > 0
out.introspection_active = (await client.tokenIntrospection(config, cc.access_token)).active

const tokens = await client.authorizationCodeGrant(config, new URL(process.env.GH_CALLBACK_URL),
  { pkceCodeVerifier: process.env.GH_VERIFIER, expectedState: 'st', idTokenExpected: true })
out.id_token_sub = tokens.claims().sub
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
out.refreshed = typeof refreshed.refresh_token === 'string'
await client.tokenRevocation(config, refreshed.refresh_token)
out.revoked_active = (await client.tokenIntrospection(config, refreshed.refresh_token)).active
console.log(JSON.stringify(out))
