"""elth: the reference pipeline for the Elastic Lottery Ticket Hypothesis (Chen et al., ICML 2021)."""

__version__ = "0.1.0"
