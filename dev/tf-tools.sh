#!/usr/bin/env bash
# Installs the tools the offline Terraform checks (tests/terraform/) need. Idempotent: a second run
# with everything in place only checks versions and exits.
#
# * python-hcl2 goes into the project's main .venv (tests parse every .tf with it).
# * checkov goes into its own .venv-checkov. checkov depends on bc-python-hcl2, which installs into
#   the same `hcl2` package as python-hcl2: with both in one environment `import hcl2` silently
#   gives the old 0.4 behaviour (every value wrapped in a list) and `pip check` says nothing.
# * The providers' schemas (every resource's arguments and blocks), for test_tf_schema.py: the
#   prebuilt cdktf provider packages on npm carry them in their jsii assembly. Each pinned package
#   is fetched once with `npm pack` (google: a 31 MB tarball), checked against its sha512, reduced to
#   .venv-checkov/provider-schemas/schemas.json (~1 MB) and deleted. Needs npm on the first run only.
#   The provider versions are the lower bounds of terraform/versions.tf (the test checks that).
#
# Environment: PYTHON (interpreter for .venv-checkov, default python3), VENV (main venv, default
# .venv), CHECKOV_VENV (default .venv-checkov).
set -euo pipefail

CHECKOV_VERSION="3.3.30"
PYTHON_HCL2_VERSION="8.1.4"
# npm spec=registry integrity; the comment is the provider version the package was generated from.
PROVIDER_SCHEMA_PACKAGES=(
  # hashicorp/google 6.50.0 (the last cdktf google package: cdktf is deprecated, none exists for 7.x)
  "@cdktf/provider-google@16.12.1=sha512-KqNA/5RiFT07r0PSZ6/07cJ2zESUgbj1JchVj21iBFBZVUbD+578xA/k8eq/r0cbyEgLmg9eYWeVslaYah4DCQ=="
  # hashicorp/time 0.13.1
  "@cdktf/provider-time@11.0.1=sha512-FI0xFIcfF7U0t+pk7NNNJujiCxIOw6wL0I61/LEgPC59WWcGVrRPdj5F7YvEEpgcWkse6YrYc9soumsTQa5WYg=="
  # hashicorp/archive 2.7.1
  "@cdktf/provider-archive@11.0.1=sha512-2Plwhj1hVUOYmQrxNbBvy2nrw/gyHZKnQFauPCwjhQX+MpRImF7cceKgX8zZgBPvB5YEP75MIFPbr4sjxDWeHw=="
)

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
CHECKOV_VENV="${CHECKOV_VENV:-.venv-checkov}"
PIP_FLAGS=(--quiet --disable-pip-version-check)

installed_version() { # venv dist -> prints the installed version or nothing
  "$1/bin/python" - "$2" <<'PY' 2>/dev/null || true
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    pass
PY
}

# --- python-hcl2 in the main venv -----------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "tf-tools: $VENV/bin/python not found; create the main venv first (make venv)." >&2
  exit 1
fi
if [[ "$(installed_version "$VENV" bc-python-hcl2)" != "" ]]; then
  echo "tf-tools: bc-python-hcl2 is in $VENV and shadows python-hcl2; removing it." >&2
  "$VENV/bin/pip" uninstall "${PIP_FLAGS[@]}" -y bc-python-hcl2
  "$VENV/bin/pip" install "${PIP_FLAGS[@]}" --force-reinstall --no-deps \
    "python-hcl2==$PYTHON_HCL2_VERSION"
fi
if [[ "$(installed_version "$VENV" python-hcl2)" != "$PYTHON_HCL2_VERSION" ]]; then
  echo "tf-tools: installing python-hcl2==$PYTHON_HCL2_VERSION into $VENV"
  "$VENV/bin/pip" install "${PIP_FLAGS[@]}" "python-hcl2==$PYTHON_HCL2_VERSION"
fi

# --- checkov in its own venv ----------------------------------------------------------------------
if [[ ! -x "$CHECKOV_VENV/bin/python" ]]; then
  echo "tf-tools: creating $CHECKOV_VENV"
  "$PYTHON" -m venv "$CHECKOV_VENV"
fi
if [[ "$(installed_version "$CHECKOV_VENV" checkov)" != "$CHECKOV_VERSION" ]]; then
  echo "tf-tools: installing checkov==$CHECKOV_VERSION into $CHECKOV_VENV (takes a minute)"
  "$CHECKOV_VENV/bin/pip" install "${PIP_FLAGS[@]}" "checkov==$CHECKOV_VERSION"
fi

# --- provider schemas (offline argument/block checks) ---------------------------------------------
# A no-op when schemas.json already records exactly these packages.
"$VENV/bin/python" -m tests.terraform.provider_schema build \
  --out "$CHECKOV_VENV/provider-schemas/schemas.json" "${PROVIDER_SCHEMA_PACKAGES[@]}"

# --- sanity: the main venv's hcl2 has the 8.x API -------------------------------------------------
"$VENV/bin/python" - <<'PY'
import hcl2
from hcl2.utils import SerializationOptions  # 8.x only; 0.4 (bc-python-hcl2) has no such thing

assert SerializationOptions is not None
PY
echo "tf-tools: ok (python-hcl2 $PYTHON_HCL2_VERSION in $VENV, checkov $CHECKOV_VERSION in $CHECKOV_VENV, provider schemas in $CHECKOV_VENV/provider-schemas)"
