// A Node.js client of `kms agent`, written from docs/agent.md and the protos alone: @grpc/grpc-js and
// @grpc/proto-loader, no generated code. Usage: node client.js TARGET PROTO_ROOT MESSAGE
// Prints one JSON object with what it got (tests/agent/test_node.py checks it, and the signature, in Python).
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const [target, protoRoot, message] = process.argv.slice(2);
const def = loader.loadSync(path.join(protoRoot, 'kms/proto/agent/v1/agent.proto'),
  {includeDirs: [protoRoot], keepCase: true, longs: String, enums: String, defaults: true});
const {KmsAgent} = grpc.loadPackageDefinition(def).kms.agent.v1;
const agent = new KmsAgent(target, grpc.credentials.createInsecure());

function call(method, request) {
  return new Promise((resolve, reject) => {
    agent[method](request, {deadline: Date.now() + 30000}, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

async function main() {
  const data = Buffer.from(message, 'utf8');
  const aes = await call('CreateKey', {spec: 'SYMMETRIC_DEFAULT', usage: 'ENCRYPT_DECRYPT'});
  const enc = await call('Encrypt', {key_id: aes.key_id, plaintext: data});
  const dec = await call('Decrypt', {ciphertext: enc.ciphertext});
  const ec = await call('CreateKey', {spec: 'ECC_NIST_P256', usage: 'SIGN_VERIFY'});
  const sig = await call('Sign', {key_id: ec.key_id, message: data, algorithm: 'ECDSA_SHA_256'});
  const ver = await call('Verify', {key_id: ec.key_id, message: data, signature: sig.signature,
                                    algorithm: 'ECDSA_SHA_256'});
  const pub = await call('GetPublicKey', {key_id: ec.key_id});
  const tampered = Buffer.from(enc.ciphertext);
  tampered[tampered.length - 1] ^= 1;
  let error = null;
  try {
    await call('Decrypt', {ciphertext: tampered});
  } catch (err) {
    error = {code: grpc.status[err.code], details: err.details,
             kms_error_code: (err.metadata && err.metadata.get('kms-error-code')[0]) || null};
  }
  process.stdout.write(JSON.stringify({
    key_id: aes.key_id, decrypted: dec.plaintext.toString('utf8'), decrypt_key_id: dec.key_id,
    ciphertext: enc.ciphertext.toString('base64'), ec_key_id: ec.key_id,
    signature: sig.signature.toString('base64'), verify_valid: ver.valid,
    public_key: pub.public_key.toString('base64'), public_key_spec: pub.spec, error,
  }) + '\n');
  agent.close();
}

main().catch((err) => {
  process.stderr.write(`node client failed: ${err.code !== undefined ? grpc.status[err.code] : ''} ${err.message}\n`);
  process.exit(1);
});
