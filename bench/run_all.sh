#!/usr/bin/env bash
# Every benchmark of issue 8, then the summary table in bench/README.md. About 9 minutes on 2 cores.
#   bench/run_all.sh                 # decision cost, latency + LiteLLM, cold start, profile
#   SKIP_LITELLM=1 bench/run_all.sh  # router vs direct only
#   RUN_LOAD=1 RUN_REPORT=1 ...      # also the load run with faults and the savings-report run (quick form)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
setup_python requirements.txt
setup_node
PY=.venv/bin/python
latency_args=()
if [ -n "${SKIP_LITELLM:-}" ]; then
  latency_args+=(--no-litellm)
elif ! bench/setup_litellm.sh; then
  echo "!! LiteLLM could not be installed: the latency run reports router vs direct only"
fi
if [ -f bench/bench_decision.py ]; then
  echo "== decision cost (bench/bench_decision.py)"
  $PY bench/bench_decision.py
fi
echo "== added latency and throughput (bench/bench_latency.py)"
$PY -m bench.bench_latency "${latency_args[@]}"
echo "== cold start (bench/bench_coldstart.py)"
$PY -m bench.bench_coldstart
echo "== profile of the request path (bench/bench_profile.py)"
$PY -m bench.bench_profile
if [ -n "${RUN_LOAD:-}" ] && [ -f bench/bench_load.py ]; then
  echo "== load with injected faults (bench/bench_load.py)"
  $PY bench/bench_load.py
fi
if [ -n "${RUN_REPORT:-}" ] && [ -f bench/bench_report.py ]; then
  echo "== savings report at scale, quick form (bench/bench_report.py)"
  $PY bench/bench_report.py --days 90 --per-day 1000
fi
echo "== summary table -> bench/README.md"
$PY -m bench.summarize
