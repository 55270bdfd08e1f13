#!/usr/bin/env bash
# Entrypoint of the sglang-mimo images.
#   recipe NAME [--node-rank N] [LAUNCH ARGS...]  run a launch recipe (recipes/*.yaml) for one node rank
#   patches                                       the patches this image carries, and the pin
#   check                                         apply_patches.sh --check on the installed sglang
#   healthcheck                                   exit 0 if the server's /health answers 200 (rank 0; ranks >= 1: 0)
#   help                                          this text
#   anything else                                 run as given (docker run IMAGE python3 -m sglang.launch_server ...)
set -euo pipefail

ROOT=/opt/sglang-mimo

usage() {
	sed -n '2,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
	cat <<EOT

Target ${SGLANG_MIMO_TARGET:-?}, SGLang $(label sglang) with $(label distribution).
recipe: the rank comes from --node-rank or \$NODE_RANK (default 0); the launcher
reads per-site values from its flags or SGLANG_MIMO_* variables (scripts/launch --help).
healthcheck: SGLANG_MIMO_HEALTH_URL (default http://127.0.0.1:30000/health).
EOT
}

label() {
	python3 - "$ROOT/patches/pin.json" "$1" <<'PY'
import json, sys
pin = json.load(open(sys.argv[1]))
print(pin["version"] if sys.argv[2] == "sglang" else pin["distribution"])
PY
}

cmd=${1:-help}
case "$cmd" in
help | -h | --help)
	usage
	;;
patches)
	echo "distribution: $(label distribution) (SGLang $(label sglang))"
	grep -v -e '^#' -e '^[[:space:]]*$' "$ROOT/patches/series"
	;;
check)
	site=$(python3 -B -c 'import importlib.util, os; s = importlib.util.find_spec("sglang"); print(os.path.dirname(list(s.submodule_search_locations)[0]))')
	exec "$ROOT/scripts/apply_patches.sh" --check "$site"
	;;
healthcheck)
	exec python3 - "${SGLANG_MIMO_HEALTH_URL:-http://127.0.0.1:30000/health}" <<'PY'
import os, sys, urllib.request
# Only node rank 0 serves HTTP. A rank >= 1 (NODE_RANK, or --node-rank on the command
# line of the container's main process) is healthy while its process runs.
rank = os.environ.get("NODE_RANK")
try:
    argv = open("/proc/1/cmdline", "rb").read().decode(errors="replace").split("\0")
    for i, a in enumerate(argv):
        if a == "--node-rank" and i + 1 < len(argv):
            rank = argv[i + 1]
        elif a.startswith("--node-rank="):
            rank = a.split("=", 1)[1]
except OSError:
    pass
if rank not in (None, "", "0"):
    print(f"node rank {rank}: serves no HTTP, nothing to probe")
    sys.exit(0)
try:
    with urllib.request.urlopen(sys.argv[1], timeout=8) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception as e:
    print(f"unhealthy: {e}", file=sys.stderr)
    sys.exit(1)
PY
	;;
recipe)
	shift
	[ $# -ge 1 ] || {
		echo "usage: recipe NAME [--node-rank N] [LAUNCH ARGS...]" >&2
		exit 2
	}
	name=$1
	shift
	rank_given=0
	for a in "$@"; do
		case "$a" in --node-rank | --node-rank=*) rank_given=1 ;; esac
	done
	if [ "$rank_given" = 0 ]; then
		set -- --node-rank "${NODE_RANK:-0}" "$@"
	fi
	[ -x "$ROOT/scripts/launch" ] || {
		echo "entrypoint: this image has no launcher ($ROOT/scripts/launch)" >&2
		exit 127
	}
	exec "$ROOT/scripts/launch" "$name" "$@"
	;;
*)
	exec "$@"
	;;
esac
