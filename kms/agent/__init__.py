"""`kms agent`: the attested local gateway (docs/agent.md).

It verifies the KMS through the SDK (policy, domain pin, freshness; kms.client), keeps attested sessions to every
server address it is given (failover), and serves the session API's operations as plain unary gRPC (agent.proto)
and the PKCS#11 module's framed protocol (local.proto) on unix sockets whose peers' uids it checks.
"""
