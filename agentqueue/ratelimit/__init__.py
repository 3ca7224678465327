"""Provider limits shared by every worker: RPM/TPM in Redis, circuit breakers, served models."""
