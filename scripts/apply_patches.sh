#!/usr/bin/env bash
# Apply the sglang-mimo patch series (patches/series) onto an SGLang tree.
# Needs bash, git (or GNU patch) and python3; nothing of this project installed.
# Its command line is scripts/sglang_mimo/apply.py; the work is done by the one
# implementation of apply / check / reverse / commit (sglang_mimo/engine.py) and of
# fetch / unpack (sglang_mimo/wheels.py), which the sglang-mimo tools call in-process.
# Those modules need the standard library only: they are imported from beside this
# script (scripts/, put first on sys.path below), nothing installed.
# Usage, options and exit codes: scripts/apply_patches.sh --help
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v python3 >/dev/null || {
	echo "apply_patches.sh: error: python3 is required" >&2
	exit 2
}
# -I -S: neither the working directory, PYTHON* variables nor site-packages decide
# what is imported: the standard library and this package only.
exec python3 -B -I -S -c 'import sys; sys.path.insert(0, sys.argv[1])
from sglang_mimo.apply import main
sys.exit(main(sys.argv[2:]))' "$HERE" "$@"
