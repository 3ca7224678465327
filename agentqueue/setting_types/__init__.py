"""Typed values of the settings the environment writes as text (off-peak windows, worker pools,
cache tiers): each module holds the one parser of one format, so `Settings` holds parsed values
and every refusal names its field the same way (see `agentqueue.strict`)."""
