#!/usr/bin/env bash
# Build step of docker/Dockerfile, run once inside the base image. Fails the build when:
# the build arguments are not the values of patches/pin.json and patches/series, the
# installed sglang is not the pinned version, a patch does not apply, the series is
# not fully applied afterwards, a patched module does not import, the video decoder
# of this architecture is missing, or NCCL is older than the pin's floor and cannot
# be replaced by the pinned fixed version.
set -euo pipefail

ROOT=/opt/sglang-mimo
APPLY=$ROOT/scripts/apply_patches.sh
die() {
	echo "install.sh: error: $*" >&2
	exit 1
}
say() { echo "install.sh: $*"; }
tool() { PYTHONPATH=$ROOT/scripts python3 -B -m sglang_mimo.image "$@"; }

command -v python3 >/dev/null || die "the base image has no python3"

# 1. The labels and tags come from these arguments: they must be today's pin and series.
tool check-args || die "build arguments differ from patches/pin.json / patches/series"

# 2. The installed sglang (site-packages layout) and its version.
SITE=$(python3 -B -c 'import importlib.util, os; s = importlib.util.find_spec("sglang"); print(os.path.dirname(list(s.submodule_search_locations)[0]) if s else "")')
[ -n "$SITE" ] || die "sglang is not installed in the base image"
HAVE=$(python3 -B -c 'import importlib.metadata as m; print(m.version("sglang"))')
[ "$HAVE" = "$SGLANG_VERSION" ] || die "the base image has sglang $HAVE, the pin is $SGLANG_VERSION"
say "sglang $HAVE in $SITE"

# 3. Apply (atomic: on any failure nothing is changed and the build stops), then verify.
"$APPLY" "$SITE" || die "the series does not apply to $SITE (apply_patches.sh exit $?)"
REPORT=$("$APPLY" --check "$SITE") || die "apply_patches.sh --check failed after applying: $REPORT"
echo "$REPORT"
if echo "$REPORT" | grep -v ': already applied$' | grep -q .; then
	die "not every patch is applied"
fi

# 4. Every patched module imports (one interpreter: torch loads once, slow under QEMU);
#    its bytecode is rebuilt, as the base's .pyc of a patched file is stale.
python3 -B - $(tool modules) <<'PY' || die "a patched module does not import"
import importlib, py_compile, sys
for mod in sys.argv[1:]:
    m = importlib.import_module(mod)
    py_compile.compile(m.__file__, doraise=True)
    print(f"install.sh: imports: {mod}", flush=True)
PY

# 5. The video decoder this architecture uses: decord (PyPI decord2) on aarch64.
if [ "$(uname -m)" = aarch64 ]; then
	if ! python3 -B -c 'import decord' 2>/dev/null; then
		REQ=$(python3 -B -c 'import importlib.metadata as m, re; print(next((re.split(r";", r)[0].strip() for r in m.requires("sglang") or [] if r.lower().startswith("decord2")), "decord2"))')
		say "decord missing: pip install $REQ"
		python3 -m pip install --no-cache-dir "$REQ"
	fi
	python3 -B -c 'import decord; print("install.sh: decord", getattr(decord, "__version__", "?"))' ||
		die "decord does not import"
fi

# 6. NCCL: 2.28.9 deadlocks in multi-node CUDA-graph replay (fixed in 2.30.4, the pin's
#    floor: nccl.min_version in patches/pin.json, passed as NCCL_MIN_VERSION). Below the
#    floor, install the pinned nccl.version (NCCL_VERSION).
if [ -n "${NCCL_PACKAGE:-}" ]; then
	NCCL=$(python3 -B -c 'import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: print("")' "$NCCL_PACKAGE")
	older() { python3 -B -c 'import sys; v = lambda s: tuple(int(x) for x in s.split(".")[:3]); sys.exit(0 if v(sys.argv[1]) < v(sys.argv[2]) else 1)' "$1" "$2"; }
	if [ -z "$NCCL" ]; then
		say "$NCCL_PACKAGE is not installed in the base; nothing to check"
	elif older "$NCCL" "$NCCL_MIN_VERSION"; then
		say "$NCCL_PACKAGE $NCCL is older than $NCCL_MIN_VERSION: installing $NCCL_VERSION"
		python3 -m pip install --no-cache-dir --no-deps "$NCCL_PACKAGE==$NCCL_VERSION"
	else
		say "$NCCL_PACKAGE $NCCL (>= $NCCL_MIN_VERSION)"
	fi
fi

find "$ROOT" -name __pycache__ -prune -exec rm -rf {} +
rm -rf /root/.cache/pip
say "done: $(tr ',' ' ' <<<"$PATCHES" | wc -w) patches on sglang $HAVE"
