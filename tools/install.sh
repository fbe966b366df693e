#!/usr/bin/env bash
# The one set-up of this repository, used by CI (.ci/run) and by the quickstart (tools/quickstart.sh): a .venv with
# the pinned torch, this project with its test, tracking (MLflow), post-processing (dense CRF) and registration
# (elastix) extras, and MONAI Label 0.8.5 for tests/test_monailabel_driver.py.
# Idempotent: a step whose result is already there is skipped, so a second run on a complete .venv installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
install() { "$py" -m pip install -q "$@"; }
has() { "$py" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1').split('+')[0] != '$2')" 2>/dev/null; }

# torch first, pinned: this machine has the CPU wheel of 2.13.0 locally; any other spec downloads a CUDA build.
has torch 2.13.0 || install torch==2.13.0
# the project (editable) with its test, tracking, post-processing (dense CRF) and registration (elastix) extras;
# again whenever pyproject.toml changed since the last install
stamp=.venv/.mri_synthesis_bundles.pyproject.sha256
if [ "$(sha256sum pyproject.toml | cut -d' ' -f1)" != "$(cat "$stamp" 2>/dev/null)" ] \
    || ! "$py" -c "import common, monai, pytest, black, isort, flake8, mlflow, sqlalchemy, alembic, pydensecrf" 2>/dev/null \
    || ! "$py" -c "import itk; itk.ElastixRegistrationMethod" 2>/dev/null; then
    install -e ".[test,tracking,postprocessing,registration]"
    sha256sum pyproject.toml | cut -d' ' -f1 > "$stamp"
fi
# MONAI Label 0.8.5 for the test that drives the bundle through its real BundleInferTask: its full install pins
# numpy 1.26 and pulls a torchvision that cannot import beside this torch, so only its light dependencies are
# installed and monailabel itself without dependencies (DESIGN.md section 5).
if ! has monailabel 0.8.5 || ! "$py" -c "import monailabel" 2>/dev/null; then
    install pydantic pydantic-settings sortedcontainers expiring_dict pynrrd shapely
    install --no-deps monailabel==0.8.5
fi
