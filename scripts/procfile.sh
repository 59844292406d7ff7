#!/usr/bin/env bash
# Run one Procfile line by name (`scripts/procfile.sh web`), so the Docker image starts exactly what the Procfile says.
set -euo pipefail
cd "$(dirname "$0")/.."
line="$(sed -n "s/^$1:[[:space:]]*//p" Procfile)"
[ -n "$line" ] || { echo "no '$1' line in Procfile" >&2; exit 64; }
eval "exec $line"
