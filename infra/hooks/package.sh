#!/bin/sh
# azd prepackage hook (service api): install the function's dependencies from requirements.lock into
# .python_packages/lib/site-packages, where the Python worker finds them, so the zip azd uploads is what
# runs (remoteBuild: false in azure.yaml; no server-side `pip install -r requirements.txt`).
#
# --require-hashes: every package, transitive ones included, must match a sha256 in the lock, or nothing
# is installed. Wheels for the Functions image (Linux x86_64, CPython FUNCTION_PYTHON_VERSION, default
# 3.11 = pythonVersion in infra/main.bicep), whatever machine runs azd.
set -eu

cd "$(dirname "$0")/../.."

if [ -n "${PYTHON:-}" ]; then
  py="$PYTHON"
elif [ -x .venv/bin/python ]; then
  py=.venv/bin/python
else
  py=python3
fi

target=.python_packages/lib/site-packages
# pip matches --platform tags exactly: list every manylinux tag a glibc 2.28 x86_64 image accepts.
platforms=""
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_26_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
    manylinux2014_x86_64 manylinux_2_12_x86_64 manylinux2010_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64; do
  platforms="$platforms --platform $tag"
done
rm -rf .python_packages
# shellcheck disable=SC2086 # $platforms is a list of options
"$py" -m pip install --quiet --disable-pip-version-check --no-compile \
  --require-hashes --no-deps --only-binary=:all: $platforms --implementation cp \
  --python-version "${FUNCTION_PYTHON_VERSION:-3.11}" \
  --target "$target" -r requirements.lock
echo "installed requirements.lock (hash-checked) into $target"
