// Lodestar's external-signer client (@lodestar/validator's externalSignerGetKeys / externalSignerPostSignature)
// against `kms validator eth serve`: run by tests/validator/test_eth_lodestar.py as
//   node lodestar.mjs SIGNER_URL PUBKEY_HEX GENESIS_VALIDATORS_ROOT_HEX
// Signs an Altair block (a full block: the signer computes its body root), a Capella block (a header), an
// attestation and a RANDAO reveal; computes each signing root with @lodestar/types' SSZ and @lodestar/config's
// domain, and verifies each signature over it with @chainsafe/blst; then asks for a second block at the Capella
// slot (slashable), which must be refused. Prints one JSON object.
import {externalSignerGetKeys, externalSignerPostSignature} from "@lodestar/validator";
import {ssz} from "@lodestar/types";
import {createIBeaconConfig} from "@lodestar/config";
import {chainConfig} from "@lodestar/config/default";
import {PublicKey, Signature, verify} from "@chainsafe/blst";

const [url, pubkeyHex, gvrHex] = process.argv.slice(2);
const hex = (b) => "0x" + Buffer.from(b).toString("hex");
const bytes = (h) => Uint8Array.from(Buffer.from(h.replace(/^0x/, ""), "hex"));
const fill = (n, v) => new Uint8Array(n).fill(v);

// Mainnet's chain config with every fork up to Capella early, so that one run covers full blocks and headers.
const config = createIBeaconConfig({...chainConfig, ALTAIR_FORK_EPOCH: 1, BELLATRIX_FORK_EPOCH: 2,
  CAPELLA_FORK_EPOCH: 3}, bytes(gvrHex));
const DOMAIN = {BLOCK_V2: [0, 0, 0, 0], ATTESTATION: [1, 0, 0, 0], RANDAO_REVEAL: [2, 0, 0, 0]};

function signingRoot(type, objectRoot, slot) {
  const domain = config.getDomain(slot, Uint8Array.from(DOMAIN[type]), slot);
  return ssz.phase0.SigningData.hashTreeRoot({objectRoot, domain});
}

function altairBlock() {
  const block = ssz.altair.BeaconBlock.defaultValue();
  block.slot = 40;  // epoch 1: Altair
  block.proposerIndex = 7;
  block.parentRoot = fill(32, 0x11);
  block.stateRoot = fill(32, 0x22);
  block.body.graffiti = fill(32, 0x33);
  return block;
}

function capellaBlock(parent) {
  const block = ssz.capella.BeaconBlock.defaultValue();
  block.slot = 100;  // epoch 3: Capella
  block.proposerIndex = 7;
  block.parentRoot = fill(32, parent);
  block.stateRoot = fill(32, 0x44);
  block.body.executionPayload.blockNumber = 12345;
  return block;
}

const attestation = {slot: 100, index: 0, beaconBlockRoot: fill(32, 0x55),
  source: {epoch: 2, root: fill(32, 0x66)}, target: {epoch: 3, root: fill(32, 0x77)}};

const requests = [
  {name: "altair block", type: "BLOCK_V2", slot: 40, data: altairBlock(),
   objectRoot: (d) => ssz.altair.BeaconBlock.hashTreeRoot(d)},
  {name: "capella block", type: "BLOCK_V2", slot: 100, data: capellaBlock(0x88),
   objectRoot: (d) => ssz.capella.BeaconBlock.hashTreeRoot(d)},
  {name: "attestation", type: "ATTESTATION", slot: 100, data: attestation,
   objectRoot: (d) => ssz.phase0.AttestationData.hashTreeRoot(d)},
  {name: "randao reveal", type: "RANDAO_REVEAL", slot: 96, data: {epoch: 3},
   objectRoot: (d) => ssz.Epoch.hashTreeRoot(d.epoch)},
];

const out = {keys: await externalSignerGetKeys(url), signed: []};
const pk = PublicKey.fromBytes(bytes(pubkeyHex));
for (const r of requests) {
  const root = signingRoot(r.type, r.objectRoot(r.data), r.slot);
  const signature = await externalSignerPostSignature(config, url, pubkeyHex, root, r.slot,
    {type: r.type, data: r.data});
  out.signed.push({name: r.name, type: r.type, signing_root: hex(root), signature,
                   verified: verify(root, pk, Signature.fromBytes(bytes(signature)))});
}
const other = capellaBlock(0x99);  // another block at the signed Capella slot: a double proposal
try {
  const root = signingRoot("BLOCK_V2", ssz.capella.BeaconBlock.hashTreeRoot(other), 100);
  await externalSignerPostSignature(config, url, pubkeyHex, root, 100, {type: "BLOCK_V2", data: other});
  out.slashable = {refused: false};
} catch (err) {
  out.slashable = {refused: true, error: String(err.message)};
}
console.log(JSON.stringify(out));
