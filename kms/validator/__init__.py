"""CometBFT validator signing: SecretConnection, privval, the remote-signer loop and its CLI."""
