#!/usr/bin/env bash
# Apply the sglang-mimo patch series (patches/series) onto an SGLang tree.
# Needs bash, git (or GNU patch) and python3; nothing of this project installed.
# The work is done by scripts/sglang_mimo/apply.py (standard library only), the
# one implementation of fetch / unpack / apply / check / reverse / commit.
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
