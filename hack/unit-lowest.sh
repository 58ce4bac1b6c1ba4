#!/usr/bin/env bash
# Runs the unit tests with every dependency at the lowest version that setup.cfg allows (its >=
# bounds, the cli extra included), in a venv of its own, so that the bounds stay true.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

lowest=$(python3 - "$REPO_ROOT/setup.cfg" <<'PY'
import configparser, re, sys
config = configparser.ConfigParser()
config.read(sys.argv[1])
lines = config["options"]["install_requires"].splitlines() + config["options.extras_require"]["cli"].splitlines()
for line in lines:
    match = re.match(r"^\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([0-9][0-9.]*)", line)
    if match:
        print(f"{match.group(1)}=={match.group(3)}")
PY
)
venv=$CACHE_DIR/venv-lowest
stamp=$( (echo "$REPO_ROOT"; echo "$lowest"; cat "$REPO_ROOT/constraints.txt") | sha256sum | cut -c1-16)
if [[ ! -x $venv/bin/python || $(cat "$venv/.stamp" 2>/dev/null) != "$stamp" ]]; then
  log "installing the lowest allowed versions into $venv: $(echo "$lowest" | tr '\n' ' ')"
  rm -rf "$venv"
  python3 -m venv "$venv"
  echo "$lowest" >"$venv/lowest.txt"
  # the test tools at their pinned versions; the dependencies at their lowest
  grep -E '^(pytest|iniconfig|pluggy|packaging|Pygments|hypothesis|sortedcontainers)==' "$REPO_ROOT/constraints.txt" >"$venv/tools.txt"
  "$venv/bin/pip" install -q --disable-pip-version-check -c "$venv/lowest.txt" -e "${REPO_ROOT}[cli]" \
    -r "$venv/tools.txt"
  echo "$stamp" >"$venv/.stamp"
fi
names=$(echo "$lowest" | cut -d= -f1 | sed 's/[-_]/[-_]/g' | paste -sd'|')
"$venv/bin/pip" freeze --exclude-editable | grep -iE "^($names)==" >&2
exec "$venv/bin/pytest" -q -p no:cacheprovider "$REPO_ROOT/tests/unit" "$@"
