"""The untrusted side of the enclave boundary: signing tools and the cffi bridge.

Importing this package loads nothing native; `kms.enclave.bridge` does that.
"""
