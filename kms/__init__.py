"""Enclave KMS: an HSM-like key-management service whose keys live in an SGX enclave."""

__version__ = "0.1.0"
