"""Elastic Ticket Transformations: map a ticket of one model onto another model of its family.

`spec` reads the spec language into plans without torch (the DAG checks every configured
transformation with it); `apply.transform` maps a ticket by a spec; `depth` and `width` do the
mapping; `python -m elth.transform` is the command line.
"""
