# azd postprovision hook (Windows): write the deployed model catalogue to the models table.
# Same steps as postprovision.sh; see there.
$ErrorActionPreference = 'Stop'
Set-Location (Join-Path $PSScriptRoot '..' '..')

if (-not $env:TABLES_ENDPOINT) { throw 'TABLES_ENDPOINT is not set: run this from azd (azd provision)' }
if (-not $env:AZURE_OPENAI_DEPLOYMENTS) { throw 'AZURE_OPENAI_DEPLOYMENTS is not set: run this from azd (azd provision)' }

$py = if ($env:PYTHON) { $env:PYTHON } elseif (Test-Path '.venv/Scripts/python.exe') { '.venv/Scripts/python.exe' } else { 'python' }
$envName = if ($env:AZURE_ENV_NAME) { $env:AZURE_ENV_NAME } else { 'default' }
$catalog = Join-Path '.azure' (Join-Path $envName 'models.json')

& $py infra/hooks/catalog.py --out $catalog
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

# Seed as the deploying user, never as the app's managed identity.
Remove-Item Env:AZURE_CLIENT_ID -ErrorAction SilentlyContinue
if (-not $env:MODELS_TABLE) { $env:MODELS_TABLE = 'models' }

$attempts = if ($env:POSTPROVISION_ATTEMPTS) { [int]$env:POSTPROVISION_ATTEMPTS } else { 8 }
$delay = if ($env:POSTPROVISION_RETRY_SECONDS) { [int]$env:POSTPROVISION_RETRY_SECONDS } else { 30 }
for ($attempt = 1; $attempt -le $attempts; $attempt++) {
    & $py -m router models load $catalog
    if ($LASTEXITCODE -eq 0) {
        Write-Host "postprovision: model catalogue loaded into table '$($env:MODELS_TABLE)'"
        exit 0
    }
    if ($attempt -lt $attempts) {
        Write-Warning "postprovision: load failed (attempt $attempt/$attempts; role assignments may still be propagating), retrying in $delay s"
        Start-Sleep -Seconds $delay
    }
}
Write-Error "postprovision: could not load $catalog. Check that AZURE_PRINCIPAL_ID is your object id, then run: azd hooks run postprovision"
exit 1
