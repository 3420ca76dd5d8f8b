"""`kms validator eth serve`: the Web3Signer-compatible HTTP API on the validator's side (docs/ethereum.md)."""
