"""Models of the four families the paper transforms tickets across, and their elastic structure.

`elth.models.names` parses model names without torch; `elth.models.registry` builds them.
"""
