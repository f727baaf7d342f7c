"""Metrics and structured logs: what an operator watches a running installation with."""
