#!/bin/sh
# azd postprovision hook: write the deployed model catalogue to the models table.
#
# Builds the catalogue from the Bicep outputs (AZURE_OPENAI_DEPLOYMENTS + infra/hooks/model-prices.json)
# into .azure/<env>/models.json, then loads it with `python -m router models load`, which reads
# TABLES_ENDPOINT / MODELS_TABLE from the environment and signs in with DefaultAzureCredential: here
# the deploying user (azd auth login / az login), who was given Storage Table Data Contributor.
set -eu

cd "$(dirname "$0")/../.."

: "${TABLES_ENDPOINT:?TABLES_ENDPOINT is not set: run this from azd (azd provision) or export the azd env values}"
: "${AZURE_OPENAI_DEPLOYMENTS:?AZURE_OPENAI_DEPLOYMENTS is not set: run this from azd (azd provision)}"

if [ -n "${PYTHON:-}" ]; then
  py="$PYTHON"
elif [ -x .venv/bin/python ]; then
  py=.venv/bin/python
else
  py=python3
fi

catalog=".azure/${AZURE_ENV_NAME:-default}/models.json"
"$py" infra/hooks/catalog.py --out "$catalog"

# Seed as the deploying user: with AZURE_CLIENT_ID set the router would use only the app's managed
# identity, which does not exist on this machine.
unset AZURE_CLIENT_ID
MODELS_TABLE="${MODELS_TABLE:-models}"
export TABLES_ENDPOINT MODELS_TABLE

# A fresh role assignment can take a few minutes to reach the table service: retry on failure.
attempts="${POSTPROVISION_ATTEMPTS:-8}"
delay="${POSTPROVISION_RETRY_SECONDS:-30}"
attempt=1
while :; do
  if "$py" -m router models load "$catalog"; then
    echo "postprovision: model catalogue loaded into table '$MODELS_TABLE'"
    exit 0
  fi
  if [ "$attempt" -ge "$attempts" ]; then
    break
  fi
  echo "postprovision: load failed (attempt $attempt/$attempts; role assignments may still be propagating), retrying in ${delay}s" >&2
  sleep "$delay"
  attempt=$((attempt + 1))
done
echo "postprovision: could not load $catalog. Check that AZURE_PRINCIPAL_ID is your object id (it gets Storage Table Data Contributor), then run: azd hooks run postprovision" >&2
exit 1
