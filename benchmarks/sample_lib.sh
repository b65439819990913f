# Sourced by the sample scripts: a scratch folder to run in, the project's cnp-convert, and run(),
# which prints a command as typed and then what it printed.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[1]}")/.." && pwd)
work=$(mktemp -d)
cd "$work" || exit 1
cnp="$root/.venv/bin/cnp-convert"
run() { echo "\$ cnp-convert $*"; "$cnp" "$@" 2>&1; echo; }
