"""Client SDK: verify the enclave's evidence, then talk to it over an attested TLS session."""
