"""The authors' block maps replayed verbatim: every map their scripts ran, read by elth's spec parser.

The maps are data (tests/data/authors_maps.csv, copied from the shell scripts of GitHub
xhchrn/open_lth, the E-LTH authors' fork). What each map makes is written out below: per stage,
the source unit every target unit copies, as the authors' `lottery/branch/morphism.py`
(`change_depth_*`) builds it, found by running their function on state dicts whose every block
tensor names its source block, and translated to elth's units:
- CIFAR ResNets: their `blocks.{i}` of one stage, one map for all three stages.
- ImageNet ResNets and VGGs: one `|`-part per stage; a VGG's sixth elth stage is its classifier.
- VGG-FC (`cifar_vggnfc_13_64_k`): their map indexes the slots of `classifier = nn.Sequential(
  Linear, ReLU, Linear, ReLU, ...)`, so slot 2k is Linear layer k, elth's classifier unit k.
- MLPs (`mnist_lenet_300_..._100`): their `fc_layers` are the 300-wide layers and then the 300->100
  layer; the map indexes the 300-wide ones, elth's `hidden` units. No map entry ever covers the
  300->100 layer, which their code leaves at its random init with a dense mask; elth copies it from
  the source (its `neck`), a difference the README's table of differences names.
"""

from __future__ import annotations

import csv
import re

import pytest

from elth.errors import ConfigError
from elth.transform.spec import depth_plan

from conftest import ROOT

MAPS = ROOT / "tests" / "data" / "authors_maps.csv"

# (their source, their target, their map) -> per stage, the source unit of each target unit.
EXPECTED = {
    ("cifar_resnet_32", "cifar_resnet_56", "0:0;1:1,2;2:3,4;3:5,6;4:7,8"): 3 * [[0, 1, 1, 2, 2, 3, 3, 4, 4]],
    ("cifar_resnet_32", "cifar_resnet_56", "0:0;1:1,5;2:2,6;3:3,7;4:4,8"): 3 * [[0, 1, 2, 3, 4, 1, 2, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_56", "0:0;1:1,2,3,4,5;2:6;3:7;4:8"): 3 * [[0, 1, 1, 1, 1, 1, 2, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_56", "0:0;1:1;2:2,3,4,5,6;3:7;4:8"): 3 * [[0, 1, 2, 2, 2, 2, 2, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_56", "0:0;1:1;2:2;3:3,4,5,6,7;4:8"): 3 * [[0, 1, 2, 3, 3, 3, 3, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_56", "0:0;1:1;2:2;3:3;4:4,5,6,7,8"): 3 * [[0, 1, 2, 3, 4, 4, 4, 4, 4]],
    ("cifar_resnet_32", "cifar_resnet_56", "0:0;1:1,3,5;2:2,4,6;3:7;4:8"): 3 * [[0, 1, 2, 1, 2, 1, 2, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_56", "0:0;1:1;2:2;3:3,5,7;4:4,6,8"): 3 * [[0, 1, 2, 3, 4, 3, 4, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_56", "0:0;1:1;2:2,4,6;3:3,5,7;4:8"): 3 * [[0, 1, 2, 3, 2, 3, 2, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_56", "0:0;1:1,2,3;2:4,5,6;3:7;4:8"): 3 * [[0, 1, 1, 1, 2, 2, 2, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_56", "0:0;1:1;2:2,3,4;3:5,6,7;4:8"): 3 * [[0, 1, 2, 2, 2, 3, 3, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_56", "0:0;1:1;2:2;3:3,4,5;4:6,7,8"): 3 * [[0, 1, 2, 3, 3, 3, 4, 4, 4]],
    ("cifar_resnet_56", "cifar_resnet_32", "0:0;1:1;3:2;5:3;7:4"): 3 * [[0, 1, 3, 5, 7]],
    ("cifar_resnet_56", "cifar_resnet_32", "0:0;2:1;4:2;6:3;8:4"): 3 * [[0, 2, 4, 6, 8]],
    ("cifar_resnet_56", "cifar_resnet_32", "0:0;1:1;4:2;7:3;8:4"): 3 * [[0, 1, 4, 7, 8]],
    ("cifar_resnet_56", "cifar_resnet_32", "0:0;1:1;2:2;5:3;8:4"): 3 * [[0, 1, 2, 5, 8]],
    ("cifar_resnet_56", "cifar_resnet_32", "0:0;1:1;2:2;3:3;6:4"): 3 * [[0, 1, 2, 3, 6]],
    ("cifar_resnet_56", "cifar_resnet_32", "0:0;1:1;4:2;5:3;8:4"): 3 * [[0, 1, 4, 5, 8]],
    ("cifar_resnet_56", "cifar_resnet_32", "0:0;5:1;6:2;7:3;8:4"): 3 * [[0, 5, 6, 7, 8]],
    ("cifar_resnet_56", "cifar_resnet_32", "0:0;1:1;6:2;7:3;8:4"): 3 * [[0, 1, 6, 7, 8]],
    ("cifar_resnet_56", "cifar_resnet_32", "0:0;1:1;2:2;7:3;8:4"): 3 * [[0, 1, 2, 7, 8]],
    ("cifar_resnet_56", "cifar_resnet_32", "0:0;1:1;2:2;3:3;8:4"): 3 * [[0, 1, 2, 3, 8]],
    ("cifar_resnet_56", "cifar_resnet_32", "0:0;1:1;2:2;3:3;4:4"): 3 * [[0, 1, 2, 3, 4]],
    ("cifar_resnet_14", "cifar_resnet_20", "0:0;1:1,2"): 3 * [[0, 1, 1]],
    ("cifar_resnet_14", "cifar_resnet_32", "0:0;1:1,2,3,4"): 3 * [[0, 1, 1, 1, 1]],
    ("cifar_resnet_14", "cifar_resnet_44", "0:0;1:1,2,3,4,5,6"): 3 * [[0, 1, 1, 1, 1, 1, 1]],
    ("cifar_resnet_14", "cifar_resnet_56", "0:0;1:1,2,3,4,5,6,7,8"): 3 * [[0, 1, 1, 1, 1, 1, 1, 1, 1]],
    ("cifar_resnet_20", "cifar_resnet_14", "0:0;2:1"): 3 * [[0, 2]],
    ("cifar_resnet_20", "cifar_resnet_14", "0:0;1:1"): 3 * [[0, 1]],
    ("cifar_resnet_20", "cifar_resnet_32", "0:0;1:1,2;2:3,4"): 3 * [[0, 1, 1, 2, 2]],
    ("cifar_resnet_20", "cifar_resnet_32", "0:0;1:1,3;2:2,4"): 3 * [[0, 1, 2, 1, 2]],
    ("cifar_resnet_20", "cifar_resnet_32", "0:0;1:1,2,3;2:4"): 3 * [[0, 1, 1, 1, 2]],
    ("cifar_resnet_20", "cifar_resnet_32", "0:0;1:1;2:2,3,4"): 3 * [[0, 1, 2, 2, 2]],
    ("cifar_resnet_20", "cifar_resnet_44", "0:0;1:1,2,3;2:4,5,6"): 3 * [[0, 1, 1, 1, 2, 2, 2]],
    ("cifar_resnet_20", "cifar_resnet_44", "0:0;1:1,2,3,4,5;2:6"): 3 * [[0, 1, 1, 1, 1, 1, 2]],
    ("cifar_resnet_20", "cifar_resnet_44", "0:0;1:1;2:2,3,4,5,6"): 3 * [[0, 1, 2, 2, 2, 2, 2]],
    ("cifar_resnet_20", "cifar_resnet_56", "0:0;1:1,2,3,4;2:5,6,7,8"): 3 * [[0, 1, 1, 1, 1, 2, 2, 2, 2]],
    ("cifar_resnet_20", "cifar_resnet_56", "0:0;1:1,2,5,6;2:3,4,7,8"): 3 * [[0, 1, 1, 2, 2, 1, 1, 2, 2]],
    ("cifar_resnet_20", "cifar_resnet_56", "0:0;1:1,2,3,4,5,6,7;2:8"): 3 * [[0, 1, 1, 1, 1, 1, 1, 1, 2]],
    ("cifar_resnet_20", "cifar_resnet_56", "0:0;1:1,3,5,7;2:2,4,6,8"): 3 * [[0, 1, 2, 1, 2, 1, 2, 1, 2]],
    ("cifar_resnet_20", "cifar_resnet_56", "0:0;1:1;2:2,3,4,5,6,7,8"): 3 * [[0, 1, 2, 2, 2, 2, 2, 2, 2]],
    ("cifar_resnet_32", "cifar_resnet_14", "0:0;4:1"): 3 * [[0, 4]],
    ("cifar_resnet_32", "cifar_resnet_14", "0:0;3:1"): 3 * [[0, 3]],
    ("cifar_resnet_32", "cifar_resnet_14", "0:0;2:1"): 3 * [[0, 2]],
    ("cifar_resnet_32", "cifar_resnet_14", "0:0;1:1"): 3 * [[0, 1]],
    ("cifar_resnet_32", "cifar_resnet_20", "0:0;1:1;3:2"): 3 * [[0, 1, 3]],
    ("cifar_resnet_32", "cifar_resnet_20", "0:0;2:1;4:2"): 3 * [[0, 2, 4]],
    ("cifar_resnet_32", "cifar_resnet_20", "0:0;3:1;4:2"): 3 * [[0, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_20", "0:0;1:1;2:2"): 3 * [[0, 1, 2]],
    ("cifar_resnet_32", "cifar_resnet_20", "0:0;1:1;4:2"): 3 * [[0, 1, 4]],
    ("cifar_resnet_32", "cifar_resnet_44", "0:0;1:1,2;2:3,4;3:5;4:6"): 3 * [[0, 1, 1, 2, 2, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_44", "0:0;1:1;2:2;3:3,4;4:5,6"): 3 * [[0, 1, 2, 3, 3, 4, 4]],
    ("cifar_resnet_32", "cifar_resnet_44", "0:0;1:1,3;2:2,4;3:5;4:6"): 3 * [[0, 1, 2, 1, 2, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_44", "0:0;1:1;2:2;3:3,5;4:4,6"): 3 * [[0, 1, 2, 3, 4, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_44", "0:0;1:1,2,3;2:4;3:5;4:6"): 3 * [[0, 1, 1, 1, 2, 3, 4]],
    ("cifar_resnet_32", "cifar_resnet_44", "0:0;1:1;2:2;3:3;4:4,5,6"): 3 * [[0, 1, 2, 3, 4, 4, 4]],
    ("cifar_resnet_44", "cifar_resnet_14", "0:0;1:1"): 3 * [[0, 1]],
    ("cifar_resnet_44", "cifar_resnet_14", "0:0;6:1"): 3 * [[0, 6]],
    ("cifar_resnet_44", "cifar_resnet_20", "0:0;1:1;4:2"): 3 * [[0, 1, 4]],
    ("cifar_resnet_44", "cifar_resnet_20", "0:0;5:1;6:2"): 3 * [[0, 5, 6]],
    ("cifar_resnet_44", "cifar_resnet_20", "0:0;1:1;2:2"): 3 * [[0, 1, 2]],
    ("cifar_resnet_44", "cifar_resnet_32", "0:0;1:1;2:2;3:3;5:4"): 3 * [[0, 1, 2, 3, 5]],
    ("cifar_resnet_44", "cifar_resnet_32", "0:0;1:1;2:2;3:3;4:4"): 3 * [[0, 1, 2, 3, 4]],
    ("cifar_resnet_44", "cifar_resnet_56", "0:0;1:1,2;2:3,4;3:5;4:6;5:7;6:8"): 3 * [[0, 1, 1, 2, 2, 3, 4, 5, 6]],
    ("cifar_resnet_44", "cifar_resnet_56", "0:0;1:1,3;2:2,4;3:5;4:6;5:7;6:8"): 3 * [[0, 1, 2, 1, 2, 3, 4, 5, 6]],
    ("cifar_resnet_56", "cifar_resnet_14", "0:0;1:1"): 3 * [[0, 1]],
    ("cifar_resnet_56", "cifar_resnet_14", "0:0;8:1"): 3 * [[0, 8]],
    ("cifar_resnet_56", "cifar_resnet_20", "0:0;1:1;5:2"): 3 * [[0, 1, 5]],
    ("cifar_resnet_56", "cifar_resnet_20", "0:0;7:1;8:2"): 3 * [[0, 7, 8]],
    ("cifar_resnet_56", "cifar_resnet_20", "0:0;1:1;2:2"): 3 * [[0, 1, 2]],
    ("cifar_resnet_56", "cifar_resnet_44", "0:0;1:1;2:2;3:3;4:4;5:5;7:6"): 3 * [[0, 1, 2, 3, 4, 5, 7]],
    ("cifar_resnet_56", "cifar_resnet_44", "0:0;3:1;4:2;5:3;6:4;7:5;8:6"): 3 * [[0, 3, 4, 5, 6, 7, 8]],
    ("cifar_resnet_56", "cifar_resnet_44", "0:0;1:1;2:2;3:3;4:4;5:5;6:6"): 3 * [[0, 1, 2, 3, 4, 5, 6]],
    ("cifar_resnet_32", "cifar_resnet_32", "0:0;1:1;2:2;3:3;4:4"): 3 * [[0, 1, 2, 3, 4]],
    ("cifar_resnet_44", "cifar_resnet_44", "0:0;1:6;2:2;3:3;4:4;5:5;6:1"): 3 * [[0, 6, 2, 3, 4, 5, 1]],
    ("cifar_resnet_44", "cifar_resnet_44", "0:0;1:6;2:5;3:3;4:4;5:2;6:1"): 3 * [[0, 6, 5, 3, 4, 2, 1]],
    ("cifar_resnet_44", "cifar_resnet_44", "0:0;1:6;2:5;3:4;4:3;5:2;6:1"): 3 * [[0, 6, 5, 4, 3, 2, 1]],
    ("cifar_vgg_13", "cifar_vgg_16", "0:0;1:1|0:0;1:1|0:0;1:1,2|0:0;1:1,2|0:0;1:1,2"): [[0, 1], [0, 1], [0, 1, 1], [0, 1, 1], [0, 1, 1], []],
    ("cifar_vgg_13", "cifar_vgg_19", "0:0;1:1|0:0;1:1|0:0;1:1,2,3|0:0;1:1,2,3|0:0;1:1,2,3"): [[0, 1], [0, 1], [0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1], []],
    ("cifar_vgg_16", "cifar_vgg_13", "0:0;1:1|0:0;1:1|0:0;1:1|0:0;1:1|0:0;1:1"): [[0, 1], [0, 1], [0, 1], [0, 1], [0, 1], []],
    ("cifar_vgg_16", "cifar_vgg_19", "0:0;1:1|0:0;1:1|0:0;1:1,2;2:3|0:0;1:1,2;2:3|0:0;1:1,2;2:3"): [[0, 1], [0, 1], [0, 1, 1, 2], [0, 1, 1, 2], [0, 1, 1, 2], []],
    ("cifar_vgg_19", "cifar_vgg_13", "0:0;1:1|0:0;1:1|0:0;1:1|0:0;1:1|0:0;1:1"): [[0, 1], [0, 1], [0, 1], [0, 1], [0, 1], []],
    ("cifar_vgg_19", "cifar_vgg_16", "0:0;1:1|0:0;1:1|0:0;1:1;2:2|0:0;1:1;2:2|0:0;1:1;2:2"): [[0, 1], [0, 1], [0, 1, 2], [0, 1, 2], [0, 1, 2], []],
    ("cifar_vggnfc_13_64_3", "cifar_vggnfc_13_64_5", "0:0,2;2:4,6"): [[0, 1], [0, 1], [0, 1], [0, 1], [0, 1], [0, 0, 1, 1]],
    ("cifar_vggnfc_13_64_3", "cifar_vggnfc_13_64_2", "0:0"): [[0, 1], [0, 1], [0, 1], [0, 1], [0, 1], [0]],
    ("cifar_vggnfc_13_64_2", "cifar_vggnfc_13_64_3", "0:0,2"): [[0, 1], [0, 1], [0, 1], [0, 1], [0, 1], [0, 0]],
    ("cifar_vggnfc_13_64_2", "cifar_vggnfc_13_64_5", "0:0,2,4,6"): [[0, 1], [0, 1], [0, 1], [0, 1], [0, 1], [0, 0, 0, 0]],
    ("cifar_vggnfc_13_64_5", "cifar_vggnfc_13_64_2", "0:0"): [[0, 1], [0, 1], [0, 1], [0, 1], [0, 1], [0]],
    ("cifar_vggnfc_13_64_5", "cifar_vggnfc_13_64_3", "0:0;2:2"): [[0, 1], [0, 1], [0, 1], [0, 1], [0, 1], [0, 1]],
    ("cifar_resnet_20", "cifar_resnet_20", "0:0;1:1;2:2"): 3 * [[0, 1, 2]],
    ("imagenet_resnet_18", "imagenet_resnet_18", "0:0;1:1|0:0;1:1|0:0;1:1|0:0;1:1"): [[0, 1], [0, 1], [0, 1], [0, 1]],
    ("imagenet_resnet_26", "imagenet_resnet_26", "0:0;1:1|0:0;1:1;2:2|0:0;1:1;2:2;3:3|0:0;1:1;2:2"): [[0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2]],
    ("imagenet_resnet_26", "imagenet_resnet_18", "0:0;1:1|0:0;1:1|0:0;1:1|0:0;1:1"): [[0, 1], [0, 1], [0, 1], [0, 1]],
    ("imagenet_resnet_34", "imagenet_resnet_34", "0:0;1:1;2:2|0:0;1:1;2:2;3:3|0:0;1:1;2:2;3:3;4:4;5:5|0:0;1:1;2:2"): [[0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4, 5], [0, 1, 2]],
    ("imagenet_resnet_26", "imagenet_resnet_18", "0:0;1:1|0:0;2:1|0:0;3:1|0:0;2:1"): [[0, 1], [0, 2], [0, 3], [0, 2]],
    ("imagenet_resnet_26", "imagenet_resnet_34", "0:0;1:1,2|0:0;1:1,2;2:3|0:0;1:1,3;2:2,4;3:5|0:0;1:1;2:2"): [[0, 1, 1], [0, 1, 1, 2], [0, 1, 2, 1, 2, 3], [0, 1, 2]],
    ("imagenet_resnet_26", "imagenet_resnet_34", "0:0;1:1,2|0:0;1:1;2:2,3|0:0;1:1;2:2,4;3:3,5|0:0;1:1;2:2"): [[0, 1, 1], [0, 1, 2, 2], [0, 1, 2, 3, 2, 3], [0, 1, 2]],
    ("imagenet_resnet_26", "imagenet_resnet_34", "0:0;1:1,2|0:0;1:1,2;2:3|0:0;1:1,2;2:3,4;3:5|0:0;1:1;2:2"): [[0, 1, 1], [0, 1, 1, 2], [0, 1, 1, 2, 2, 3], [0, 1, 2]],
    ("imagenet_resnet_18", "imagenet_resnet_26", "0:0;1:1|0:0;1:1,2|0:0;1:1,2,3|0:0;1:1,2"): [[0, 1], [0, 1, 1], [0, 1, 1, 1], [0, 1, 1]],
    ("imagenet_resnet_18", "imagenet_resnet_34", "0:0;1:1,2|0:0;1:1,2,3|0:0;1:1,2,3,4,5|0:0;1:1,2"): [[0, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1, 1, 1], [0, 1, 1]],
    ("imagenet_resnet_34", "imagenet_resnet_18", "0:0;1:1|0:0;1:1|0:0;1:1|0:0;1:1"): [[0, 1], [0, 1], [0, 1], [0, 1]],
    ("imagenet_resnet_34", "imagenet_resnet_26", "0:0;1:1|0:0;1:1;2:2|0:0;1:1;2:2;3:3|0:0;1:1;2:2"): [[0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2]],
    ("mnist_lenet_300_300_300_100", "mnist_lenet_300_300_300_300_100", "0:0;1:1,2;2:3"): [[0, 1, 1, 2]],  # fc_layers.4.weight (their 300->100 layer) stays at init
    ("mnist_lenet_300_300_300_100", "mnist_lenet_300_300_100", "0:0;1:1"): [[0, 1]],  # fc_layers.2.weight (their 300->100 layer) stays at init
    ("mnist_lenet_300_300_100", "mnist_lenet_300_300_300_100", "0:0;1:1,2"): [[0, 1, 1]],  # fc_layers.3.weight (their 300->100 layer) stays at init
    ("mnist_lenet_300_300_100", "mnist_lenet_300_300_300_300_100", "0:0;1:1,2,3"): [[0, 1, 1, 1]],  # fc_layers.4.weight (their 300->100 layer) stays at init
    ("mnist_lenet_300_300_300_300_100", "mnist_lenet_300_300_100", "0:0;1:1"): [[0, 1]],  # fc_layers.2.weight (their 300->100 layer) stays at init
    ("mnist_lenet_300_300_300_300_100", "mnist_lenet_300_300_300_100", "0:0;1:1;2:2"): [[0, 1, 2]],  # fc_layers.3.weight (their 300->100 layer) stays at init
}


def elth_name(theirs: str) -> str:
    """Their model names (open_lth's registry) as elth's."""
    if m := re.fullmatch(r"cifar_resnet_(\d+)", theirs):
        return f"resnet{m[1]}"
    if m := re.fullmatch(r"imagenet_resnet_(\d+)", theirs):
        return f"imagenet-resnet{m[1]}"
    if m := re.fullmatch(r"cifar_vgg_(\d+)", theirs):
        return f"vgg{m[1]}"
    if m := re.fullmatch(r"cifar_vggnfc_(\d+)_64_(\d+)", theirs):
        return f"vgg{m[1]}-fc{m[2]}"
    if m := re.fullmatch(r"mnist_lenet((?:_300)+)_100", theirs):
        return f"mlp{m[1].count('300')}"
    raise ValueError(theirs)


def rows() -> list[dict[str, str]]:
    with open(MAPS, newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def test_the_data_holds_every_script_and_an_expectation_for_every_map() -> None:
    table = rows()
    assert {r["script"] for r in table} >= {
        "cifar_large_scale_exp_src14_20.sh", "cifar_large_scale_exp_src32.sh", "cifar_large_scale_exp_src44.sh",
        "cifar_large_scale_exp_src56.sh", "cifar_large_scale_exp_32to56_part1.sh", "cifar_large_scale_exp_32to56_part2.sh",
        "cifar_large_scale_exp_56to32_part1.sh", "cifar_large_scale_exp_56to32_part2.sh", "cifar_vgg_src13.sh",
        "cifar_vgg_src16.sh", "cifar_vgg_src19.sh", "cifar_vggnfc_change_depth.sh", "mnist_mlp_results.sh",
        "imagenet_exp_src18.sh", "imagenet_exp_src26.sh", "imagenet_exp_src34.sh", "image_exp_src26.sh"}
    assert {(r["source"], r["target"], r["map"]) for r in table} == set(EXPECTED)


@pytest.mark.parametrize("source,target,spec", sorted(EXPECTED))
def test_every_map_the_authors_ran_reads_as_their_code_applies_it(source: str, target: str, spec: str) -> None:
    plan = depth_plan(spec, elth_name(source), elth_name(target))
    assert [list(s) for s in plan.stages] == EXPECTED[(source, target, spec)]
    assert depth_plan(plan.explicit(), elth_name(source), elth_name(target)) == plan


def test_the_map_the_authors_code_refuses_is_refused() -> None:
    """cifar_large_scale_exp_src32.sh's 32 -> 44 loop names `$mapping_middle2`, left over from its
    32 -> 20 block: `0:0;1:1;4:2` writes 3 of ResNet-44's 7 blocks, and their code asserts."""
    with pytest.raises(ConfigError, match=re.escape("target positions [3, 4, 5, 6] have no source")):
        depth_plan("0:0;1:1;4:2", "resnet32", "resnet44")


# The one pair whose App. A default (`Append 12x3`, their `mapping_head2`) the authors' scripts left
# commented out: cifar_large_scale_exp_src14_20.sh ran Inter 12x3, Append 1x5 and Append 2x5 instead.
DEFAULT_NOT_RUN_BY_THE_AUTHORS = {("resnet20", "resnet44")}


def test_each_paper_configs_default_scheme_is_a_map_the_authors_ran_for_that_pair() -> None:
    """Fig 3, Fig 6, Table 2 and Table 3 compare `default` ETTs with the authors' numbers; those come
    from the maps their scripts ran, so each default plan must be one of them (one pair aside)."""
    import yaml

    from elth import config as study

    ran: dict[tuple[str, str], set] = {}
    for r in rows():
        source, target = elth_name(r["source"]), elth_name(r["target"])
        ran.setdefault((source, target), set()).add(depth_plan(r["map"], source, target).stages)
    checked = set()
    for path in sorted((ROOT / "config" / "paper").glob("*.yaml")):
        for source, target, scheme, spec in study.ett_jobs(yaml.safe_load(path.read_text())):
            if scheme != "default" or (source, target) not in ran:
                continue
            checked.add((source, target))
            made = depth_plan(spec, source, target).stages
            assert (made in ran[(source, target)]) != ((source, target) in DEFAULT_NOT_RUN_BY_THE_AUTHORS), \
                (path.name, source, target, made)
    assert len(checked) >= 20 + 6 + 6 + 6 + 6  # ResNets, VGGs, VGG-FC, MLPs, ImageNet
