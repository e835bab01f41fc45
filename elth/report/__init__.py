"""Aggregation of run results into tidy tables, and the paper's figures drawn from them."""
