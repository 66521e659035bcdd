#!/usr/bin/env bash
# Contract suite: the providers' official clients against the sandbox (infra/contract/README.md).
#   infra/contract/run.sh [NAME_FILTER...]     e.g. run.sh hubspot_search linkedin_version
# Env: PYTHON (default python3), CARGO (default cargo), CONTRACT_TRACE=1 (tracebacks).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

python="${PYTHON:-python3}"
venv="$root/target/contract-venv"
stamp="$venv/.requirements-stamp"
want="$("$python" -c 'import sys; print(sys.version.split()[0])') $(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"

# (Re)install only when the venv is missing or the requirements (or Python) changed.
if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "contract: installing $here/requirements.txt into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt"
  echo "$want" > "$stamp"
fi

"${CARGO:-cargo}" build --quiet -p sandbox
mkdir -p "$root/target/contract"  # one log per run: runs may go in parallel
exec "$venv/bin/python" -B "$here/suite.py" "$root/target/debug/sandbox" "$root/target/contract/sandbox.$$.log" "$@"
