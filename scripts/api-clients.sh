#!/usr/bin/env bash
# The real clients of the query service's APIs, from PyPI, in a venv under
# target/: the vendor's official Python client (polygon-api-client) and
# schemathesis. Idempotent; prints the venv's python.
#
#   scripts/api-clients.sh venv            # create or reuse; print its python
#   scripts/api-clients.sh schemathesis URL [ARGS...]   # run schemathesis from the venv
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${INSITE_API_CLIENTS_VENV:-$ROOT/target/api-clients-venv}
# Pinned: the tests compare against these clients' behaviour.
PACKAGES=(polygon-api-client==1.16.3 schemathesis==4.32.5)
STAMP=$VENV/.insite-packages

venv() {
    if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "${PACKAGES[*]}" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2
        echo "${PACKAGES[*]}" > "$STAMP"
    fi
    echo "$VENV/bin/python"
}

case "${1:-venv}" in
    venv) venv ;;
    schemathesis)
        shift
        venv >/dev/null
        exec "$VENV/bin/schemathesis" "$@"
        ;;
    *) echo "usage: $0 venv | schemathesis ARGS..." >&2; exit 2 ;;
esac
