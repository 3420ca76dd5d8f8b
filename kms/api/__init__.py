"""The gRPC front end (untrusted): server, servicer, interceptors, metrics; it relays bytes it cannot read."""
