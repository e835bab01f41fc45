#!/usr/bin/env bash
# Idempotent set-up for elth: Debian's Fashion-MNIST package (the offline demo data) and a virtual
# environment in .venv with the packages pyproject.toml lists. A second run only checks the
# environment, so it is quick; it reinstalls when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

venv=${ELTH_VENV:-.venv}
python=${PYTHON:-python3}
fmnist=/usr/share/datasets/fashion-mnist

say() { printf 'setup: %s\n' "$*" >&2; }

if [ ! -d "$fmnist" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    say "installing Debian's dataset-fashion-mnist"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    say "no apt-get: put Fashion-MNIST's raw files in data/FashionMNIST/raw/ (see README)"
  fi
fi

# Debian's SLURM and munge, for tests/test_slurm.py, which starts a one-node cluster of its own as
# root. Best effort: without them that test is skipped, with the reason, and nothing else needs them.
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's slurm-wlm and munge (for the SLURM test)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm munge >/dev/null; }; then
      say "warning: slurm-wlm and munge did not install; tests/test_slurm.py will be skipped"
    fi
  else
    say "no slurm-wlm and munge (installing them needs root and apt-get); tests/test_slurm.py will be skipped"
  fi
fi

stamp="$venv/.elth-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  say "installing the Python packages into $venv (first time: a few minutes)"
  "$venv/bin/python" -m pip install -q --upgrade pip 2>"$venv/pip.log" || { cat "$venv/pip.log" >&2; exit 1; }
  # pip's and setuptools' warnings go to a log, shown only when the install fails.
  "$venv/bin/python" -m pip install -q -e ".[test]" 2>"$venv/pip.log" || { cat "$venv/pip.log" >&2; exit 1; }
  # A torch/torchvision pair that does not match fails here, on one real op, not later in a test.
  "$venv/bin/python" - <<'PY'
import torch, torchvision
boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
assert keep.tolist() == [0], keep
print(f"setup: torch {torch.__version__} with torchvision {torchvision.__version__} works")
PY
  echo "$want" > "$stamp"
fi
