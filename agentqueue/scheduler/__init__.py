"""Scheduling as plain code: off-peak windows, deferral decisions, worker pools, scaling, plans."""
