#!/usr/bin/env bash
# LiteLLM's proxy for the side-by-side run, in its own venv (bench/litellm-venv, gitignored). It is not a
# dependency of the project. Pinned: 1.108.7 is the newest release whose `[proxy]` extra resolves from
# PyPI here (1.109.x/1.110.x pin litellm-proxy / litellm-proxy-extras builds that are not published),
# and it is clear of the withdrawn, compromised 1.107.0. Override with LITELLM_VERSION=...
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${LITELLM_VERSION:-1.108.7}"
VENV=bench/litellm-venv
have=""
if [ -x "$VENV/bin/python" ]; then
  have=$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('litellm'))" 2>/dev/null || true)
fi
if [ "$have" != "$VERSION" ] || [ ! -x "$VENV/bin/litellm" ]; then
  echo "== installing litellm[proxy]==$VERSION into $VENV"
  [ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "litellm[proxy]==$VERSION"
fi
"$VENV/bin/python" -c "import importlib.metadata as m; print('litellm', m.version('litellm'))"
