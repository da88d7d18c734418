# azd prepackage hook (service api), Windows: the same as package.sh. Installs requirements.lock with
# --require-hashes into .python_packages/lib/site-packages (Linux x86_64 wheels for the Functions image).
$ErrorActionPreference = 'Stop'
Set-Location (Join-Path $PSScriptRoot '..' '..')

$py = if ($env:PYTHON) { $env:PYTHON } elseif (Test-Path '.venv/Scripts/python.exe') { '.venv/Scripts/python.exe' } else { 'python' }
$version = if ($env:FUNCTION_PYTHON_VERSION) { $env:FUNCTION_PYTHON_VERSION } else { '3.11' }
$target = '.python_packages/lib/site-packages'
# pip matches --platform tags exactly: every manylinux tag a glibc 2.28 x86_64 image accepts.
$platforms = @('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_26_x86_64', 'manylinux_2_24_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64', 'manylinux_2_12_x86_64', 'manylinux2010_x86_64', 'manylinux_2_5_x86_64', 'manylinux1_x86_64') | ForEach-Object { '--platform'; $_ }
if (Test-Path '.python_packages') { Remove-Item -Recurse -Force '.python_packages' }
& $py -m pip install --quiet --disable-pip-version-check --no-compile `
  --require-hashes --no-deps --only-binary=:all: @platforms --implementation cp `
  --python-version $version `
  --target $target -r requirements.lock
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
Write-Host "installed requirements.lock (hash-checked) into $target"
