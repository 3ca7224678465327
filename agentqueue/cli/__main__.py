"""`python -m agentqueue.cli`."""

from agentqueue.cli import main

main()
