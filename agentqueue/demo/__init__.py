"""`agentqueue demo`: the whole path on an embedded default."""
