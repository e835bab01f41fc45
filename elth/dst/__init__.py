"""Dynamic sparse training: the paper's Sec 4.6 comparison of E-LTH against RigL (Evci et al. 2020).

`distribution` decides how many weights each layer keeps (ERK or uniform) and draws the random
starting mask; `rigl` rewires that mask during training through `elth.train.train`'s `rewire`
hook; `python -m elth.dst` trains a model with RigL and writes the files every run writes.
"""
