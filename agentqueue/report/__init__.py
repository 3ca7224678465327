"""`agentqueue report`: where the money went, as rich tables and a self-contained HTML page."""
