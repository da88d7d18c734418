# Shared, idempotent set-up for scripts/dev and scripts/test (sourced, not run).
PYTHON=${PYTHON:-python3}

setup_python() {
  local reqs=$1
  if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$PYTHON" -m venv .venv
  fi
  local stamp=".venv/.installed-$(basename "$reqs")"
  if [ ! -f "$stamp" ] || [ -n "$(find requirements*.txt -newer "$stamp" 2>/dev/null)" ]; then
    echo "== installing $reqs"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$reqs"
    touch "$stamp"
  fi
}

setup_node() {
  if [ ! -x node_modules/.bin/azurite-table ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "== installing Azurite (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

setup_system_packages() {
  # Headless Chromium for the dashboard's browser test (Debian packages; needs root or sudo).
  if ! command -v chromium >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
    if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
      echo "== installing chromium (apt)"
      $sudo apt-get update -qq >/dev/null && \
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null || \
        echo "warning: chromium could not be installed; browser tests will be skipped"
    fi
  fi
}

setup_functions_worker() {
  # Microsoft's Python worker library and its compiled FunctionRpc protocol, for the real-worker
  # harness (tests/functions_host). Kept out of the app's environment: both packages declare
  # Requires-Python >= 3.13 (installed here with --ignore-requires-python, see README "Under the real
  # Python worker"), and in Azure the host ships its own worker.
  local dir=.venv/functions-worker
  local stamp
  stamp="$dir/.installed-$(cksum < requirements-worker.txt | cut -d' ' -f1)"
  if [ ! -f "$stamp" ]; then
    echo "== installing the Functions worker library (requirements-worker.txt)"
    rm -rf "$dir"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --ignore-requires-python \
      --target "$dir" -r requirements-worker.txt
    # The generated protocol modules ship as tests/protos in the v1 wheel: renamed so they cannot shadow
    # this project's tests package; the v1 runtime itself is not used.
    mv "$dir/tests/protos" "$dir/functions_rpc"
    rm -rf "$dir/tests" "$dir/azure_functions_runtime_v1"
    touch "$stamp"
  fi
}
