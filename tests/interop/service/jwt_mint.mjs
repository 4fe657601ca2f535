// Test-only JWT issuer for tests/suites/60-service.sh (Node's crypto; keys made at run time,
// never committed). Usage:
//   jwt_mint.mjs keygen DIR                 → DIR/jwks.json (public) + DIR/issuer.pem (private, 0600)
//   jwt_mint.mjs sign DIR CLAIMS_JSON       → prints an EdDSA JWS compact token (kid "test-1");
//                                             "exp" defaults to now + 600, "iat" to now
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

const [cmd, dir, claimsText] = process.argv.slice(2)
if (cmd === 'keygen') {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519')
  fs.writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'test-1', use: 'sig' }] }))
  fs.writeFileSync(path.join(dir, 'issuer.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
} else if (cmd === 'sign') {
  const key = crypto.createPrivateKey(fs.readFileSync(path.join(dir, 'issuer.pem')))
  const now = Math.floor(Date.now() / 1000)
  const claims = { iat: now, exp: now + 600, ...JSON.parse(claimsText) }
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const input = `${b64({ alg: 'EdDSA', typ: 'JWT', kid: 'test-1' })}.${b64(claims)}`
  process.stdout.write(`${input}.${crypto.sign(null, Buffer.from(input), key).toString('base64url')}\n`)
} else {
  console.error('usage: jwt_mint.mjs keygen DIR | sign DIR CLAIMS_JSON')
  process.exit(2)
}
