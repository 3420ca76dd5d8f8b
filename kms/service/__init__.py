"""The untrusted service layer: store, evidence and session relay (no gRPC here)."""
