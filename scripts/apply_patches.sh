#!/usr/bin/env bash
# Apply the sglang-mimo patch series (patches/series) onto an SGLang tree.
# Needs bash, git (or GNU patch) and python3; nothing of this project installed.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/apply_patches.sh [OPTIONS] [DIR]

Apply the sglang-mimo patch series onto the SGLang tree DIR:
  - a git checkout of SGLang (DIR/python/sglang exists), or
  - a directory holding the sglang package (DIR/sglang exists): a
    site-packages directory or an unpacked wheel.
Both layouts end up with the same files. The whole series is tried on a
scratch copy first: if any patch fails, DIR is left byte for byte as it was.
Patches already present are skipped, so a second run changes nothing.

Without DIR: download the pinned wheel (patches/pin.json) with pip, check its
sha256, unpack it into build/sglang-VERSION as a checkout-layout git
repository tagged with the pinned tag, apply the series there with one
commit per patch, and print the tree's path.

Options:
  --check        report each patch as "applies", "already applied" or
                 "conflicts" (with file and hunk); change nothing; exit 0 only
                 when every patch is applied or applies
  --reverse      take the series back out (last patch first)
  --commit       git checkouts only: one commit per patch, with the patch's own
                 message (git am --keep-non-patch)
  --force        accept a tree whose sglang version is not the pinned one, and
                 uncommitted changes in files the series touches
  --reject       for refreshing the series on another release only: apply every
                 hunk that fits, leave each one that does not as FILE.rej beside
                 its file, and exit 1 if any was rejected (not atomic; no
                 --check, --reverse or --commit)
  --series FILE  use another series file (patches are read beside it)
  --fetch        only download and verify the pinned wheel; print its path
  --wheel KEY    which pinned wheel to use (a key of "wheels" in pin.json, e.g.
                 aarch64-cp312); default: this machine's arch and python
  -h, --help     this text

Environment:
  APPLY_PATCHES_TOOL=git|patch   force the tool (default: git if present)
  SGLANG_MIMO_BUILD=DIR          where downloads and the default tree go
                                 (default: build/ in this repository)

Exit codes:
  0  done (or --check: the whole series is applied or applies cleanly)
  1  a patch does not apply (conflicts); nothing was changed
  2  usage error
  3  DIR is not an SGLang tree, or its sglang version is not the pinned one
  4  DIR is not safe to change (dirty checkout, read-only file, write error);
     nothing was changed
  5  download failed or the wheel's sha256 does not match the pin
EOF
}

die() {
	local code=$1
	shift
	echo "apply_patches.sh: error: $*" >&2
	exit "$code"
}
note() { echo "apply_patches.sh: $*" >&2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SERIES="$REPO/patches/series"
PIN="$REPO/patches/pin.json"
BUILD=${SGLANG_MIMO_BUILD:-$REPO/build}

MODE=apply
COMMIT=0
FORCE=0
REJECT=0
DIR=""
WHEEL_KEY=""
while [ $# -gt 0 ]; do
	case "$1" in
	--check) MODE=check ;;
	--reverse) MODE=reverse ;;
	--fetch) MODE=fetch ;;
	--commit) COMMIT=1 ;;
	--wheel)
		[ $# -ge 2 ] || die 2 "--wheel needs a key of pin.json's wheels"
		WHEEL_KEY=$2
		shift
		;;
	--force) FORCE=1 ;;
	--reject) REJECT=1 ;;
	--series)
		[ $# -ge 2 ] || die 2 "--series needs a file"
		SERIES=$2
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	-*) die 2 "unknown option: $1 (see --help)" ;;
	*)
		[ -z "$DIR" ] || die 2 "only one DIR may be given (see --help)"
		DIR=$1
		;;
	esac
	shift
done

command -v python3 >/dev/null || die 2 "python3 is required"
[ -f "$SERIES" ] || die 2 "series file not found: $SERIES"
[ -f "$PIN" ] || die 2 "pin file not found: $PIN"
PATCHDIR=$(cd "$(dirname "$SERIES")" && pwd)

TOOL=${APPLY_PATCHES_TOOL:-}
if [ -z "$TOOL" ]; then
	if command -v git >/dev/null; then TOOL=git; else TOOL=patch; fi
fi
case "$TOOL" in
git | patch) command -v "$TOOL" >/dev/null || die 2 "$TOOL is not installed" ;;
*) die 2 "APPLY_PATCHES_TOOL must be git or patch" ;;
esac

pin() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$PIN" "$1"; }
PIN_VERSION=$(pin '["version"]')
PIN_TAG=$(pin '["tag"]')

# --- the series ------------------------------------------------------------
PATCHES=()
while read -r name _; do
	case "$name" in '' | '#'*) continue ;; esac
	[ -f "$PATCHDIR/$name" ] || die 2 "patches/series names $name, which does not exist"
	PATCHES+=("$name")
done <"$SERIES"

# Paths (checkout layout, python/sglang/...) that a patch touches.
patch_files() { sed -n 's#^diff --git a/\(.*\) b/\(.*\)$#\1\n\2#p' "$PATCHDIR/$1" | sort -u; }

# --- the pinned wheel ------------------------------------------------------
wheel_key() {
	local arch py
	if [ -n "$WHEEL_KEY" ]; then
		python3 -c 'import json,sys; sys.exit(sys.argv[2] not in json.load(open(sys.argv[1]))["wheels"])' "$PIN" "$WHEEL_KEY" ||
			die 2 "--wheel $WHEEL_KEY: pin.json has no such wheel"
		echo "$WHEEL_KEY"
		return 0
	fi
	arch=$(uname -m)
	py=$(python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
	if python3 -c 'import json,sys; sys.exit(sys.argv[2] not in json.load(open(sys.argv[1]))["wheels"])' "$PIN" "$arch-$py"; then
		echo "$arch-$py"
	else
		# Same sources in every wheel; take the first one for this machine's arch.
		python3 -c 'import json,sys; w=json.load(open(sys.argv[1]))["wheels"]; k=[k for k in w if k.startswith(sys.argv[2]+"-")] or list(w); print(k[0])' "$PIN" "$arch"
	fi
}

fetch_wheel() {
	local key file sha arch py dest tmp got
	key=$(wheel_key)
	file=$(pin "[\"wheels\"][\"$key\"][\"filename\"]")
	sha=$(pin "[\"wheels\"][\"$key\"][\"sha256\"]")
	dest="$BUILD/wheels/$file"
	sha_of() { python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }
	if [ -f "$dest" ] && [ "$(sha_of "$dest")" = "$sha" ]; then
		echo "$dest"
		return 0
	fi
	arch=${key%%-*}
	py=${key#*-}
	mkdir -p "$BUILD/wheels"
	tmp=$(mktemp -d "$BUILD/wheels/.download.XXXXXX")
	note "downloading $file from PyPI"
	if ! python3 -m pip download --quiet --no-deps --only-binary=:all: \
		--platform "manylinux_2_34_$arch" --implementation cp \
		--python-version "${py#cp}" --abi "$py" -d "$tmp" "sglang==$PIN_VERSION" >&2 ||
		[ ! -f "$tmp/$file" ]; then
		rm -rf "$tmp"
		die 5 "could not download $file (sglang==$PIN_VERSION) with pip"
	fi
	got=$(sha_of "$tmp/$file")
	if [ "$got" != "$sha" ]; then
		rm -rf "$tmp"
		die 5 "sha256 of $file is $got, the pin says $sha"
	fi
	mv "$tmp/$file" "$dest"
	rm -rf "$tmp"
	echo "$dest"
}

if [ "$MODE" = fetch ]; then
	fetch_wheel
	exit 0
fi

# --- no DIR: the embedded default tree ---------------------------------------
if [ -z "$DIR" ]; then
	TREE="$BUILD/sglang-$PIN_VERSION"
	if [ ! -d "$TREE" ]; then
		command -v git >/dev/null || die 2 "git is required to build the default tree"
		WHEEL=$(fetch_wheel)
		TMPTREE=$(mktemp -d "$BUILD/.tree.XXXXXX")
		python3 - "$WHEEL" "$TMPTREE/python" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for m in z.infolist():
        if m.filename.startswith("sglang/"):
            z.extract(m, sys.argv[2])
PY
		(
			cd "$TMPTREE"
			export GIT_AUTHOR_NAME=sglang-mimo GIT_AUTHOR_EMAIL=sglang-mimo@users.noreply.github.com
			export GIT_COMMITTER_NAME=sglang-mimo GIT_COMMITTER_EMAIL=sglang-mimo@users.noreply.github.com
			git init -q
			git add -A
			git commit -q -m "SGLang $PIN_VERSION, unpacked from $(basename "$WHEEL")"
			git tag "$PIN_TAG"
		) || {
			rm -rf "$TMPTREE"
			die 2 "could not create a git repository in $BUILD"
		}
		mv "$TMPTREE" "$TREE"
	fi
	ARGS=()
	[ "$MODE" = check ] && ARGS+=(--check)
	[ "$MODE" = reverse ] && ARGS+=(--reverse)
	[ "$MODE" = apply ] && ARGS+=(--commit)
	[ "$FORCE" = 1 ] && ARGS+=(--force)
	"$0" "${ARGS[@]}" --series "$SERIES" "$TREE"
	echo "patched tree: $TREE"
	exit 0
fi

# --- the target tree -----------------------------------------------------------
[ -d "$DIR" ] || die 3 "$DIR: no such directory"
DIR=$(cd "$DIR" && pwd)
if [ -f "$DIR/python/sglang/__init__.py" ]; then
	LAYOUT=checkout
	PREFIX=""
elif [ -f "$DIR/sglang/__init__.py" ]; then
	LAYOUT=package
	PREFIX="python/"
else
	die 3 "$DIR holds no sglang package (expected $DIR/python/sglang or $DIR/sglang)"
fi
# Target path of a checkout-layout path.
target() { echo "$DIR/${1#"$PREFIX"}"; }

IS_GIT=0
if [ "$LAYOUT" = checkout ] && command -v git >/dev/null &&
	[ "$(git -C "$DIR" rev-parse --show-toplevel 2>/dev/null)" = "$DIR" ]; then
	IS_GIT=1
fi
[ "$COMMIT" = 0 ] || [ "$IS_GIT" = 1 ] || die 2 "--commit needs a git checkout; $DIR is not one"
[ "$COMMIT" = 0 ] || [ "$MODE" != reverse ] || die 2 "--reverse --commit is not supported: use git revert"
[ "$REJECT" = 0 ] || { [ "$MODE" = apply ] && [ "$COMMIT" = 0 ]; } || die 2 "--reject only applies (no --check, --reverse or --commit)"

tree_version() {
	local pkg=$DIR
	[ "$LAYOUT" = checkout ] && pkg=$DIR/python
	python3 - "$pkg" <<'PY'
import glob, os, re, sys
pkg = sys.argv[1]
for meta in glob.glob(os.path.join(pkg, "sglang-*.dist-info", "METADATA")):
    for line in open(meta, encoding="utf-8"):
        if line.startswith("Version:"):
            print(line.split(":", 1)[1].strip()); sys.exit()
vf = os.path.join(pkg, "sglang", "_version.py")
if os.path.exists(vf):
    m = re.search(r"^__version__ = version = ['\"]([^'\"]+)", open(vf).read(), re.M)
    if m:
        print(m.group(1)); sys.exit()
PY
}
VERSION=$(tree_version)
if [ -z "$VERSION" ] && [ "$IS_GIT" = 1 ]; then
	VERSION=$(git -C "$DIR" describe --tags --abbrev=0 2>/dev/null || true)
	VERSION=${VERSION#v}
fi
if [ "$VERSION" != "$PIN_VERSION" ]; then
	[ "$FORCE" = 1 ] || die 3 "$DIR has sglang ${VERSION:-of unknown version}, the series is for $PIN_VERSION (use --force to try anyway)"
	note "warning: sglang ${VERSION:-of unknown version}, not $PIN_VERSION (--force)"
fi

# --- run the series on a scratch copy -------------------------------------------
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$SCRATCH/work" "$SCRATCH/backup" "$SCRATCH/head"

ALLFILES=()
while read -r f; do ALLFILES+=("$f"); done < <(for p in "${PATCHES[@]}"; do patch_files "$p"; done | sort -u)

for f in "${ALLFILES[@]}"; do
	t=$(target "$f")
	if [ -e "$t" ]; then
		mkdir -p "$SCRATCH/work/$(dirname "$f")"
		cp -p "$t" "$SCRATCH/work/$f"
	fi
done

# try_patch DIR PATCH [--reverse] -> 0 if it would apply there
try_patch() {
	local where=$1 p=$2
	shift 2
	if [ "$TOOL" = git ]; then
		(cd "$where" && git apply --check "$@" "$PATCHDIR/$p") >/dev/null 2>&1
	else
		(cd "$where" && patch -p1 --dry-run --fuzz=0 --force --silent "$@" -i "$PATCHDIR/$p") >/dev/null 2>&1
	fi
}
do_patch() {
	local where=$1 p=$2
	shift 2
	if [ "$TOOL" = git ]; then
		(cd "$where" && git apply -v "$@" "$PATCHDIR/$p") 2>&1
	else
		(cd "$where" && patch -p1 --fuzz=0 --force --no-backup-if-mismatch "$@" -i "$PATCHDIR/$p") 2>&1
	fi
}
# Why a patch does not apply: "FILE hunk #N (@@ ... @@)" for each failing hunk.
conflict_detail() {
	local where=$1 p=$2
	shift 2
	local out
	if [ "$TOOL" = git ]; then
		out=$(cd "$where" && git apply --check -v "$@" "$PATCHDIR/$p" 2>&1 || true)
	else
		out=$(cd "$where" && patch -p1 --dry-run --fuzz=0 --force "$@" -i "$PATCHDIR/$p" 2>&1 || true)
	fi
	python3 - "$PATCHDIR/$p" "$TOOL" "$out" <<'PY'
import re, sys
patch, tool, out = sys.argv[1], sys.argv[2], sys.argv[3]
hunks, cur = {}, None
for line in open(patch, encoding="utf-8", errors="replace"):
    m = re.match(r"^diff --git a/(\S+) b/", line)
    if m:
        cur = m.group(1); hunks[cur] = []
    m = re.match(r"^(@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@)", line)
    if m and cur:
        hunks[cur].append((int(m.group(2)), m.group(1)))
found = []
if tool == "git":
    for m in re.finditer(r"patch failed: (\S+):(\d+)", out):
        f, start = m.group(1), int(m.group(2))
        n = next((i for i, (s, _) in enumerate(hunks.get(f, []), 1) if s == start), None)
        h = hunks[f][n - 1][1] if n else ""
        found.append(f"{f} hunk #{n} {h}" if n else f"{f} at line {start}")
    for m in re.finditer(r"error: (\S+): (No such file or directory|does not exist in index|already exists in working directory)", out):
        found.append(f"{m.group(1)}: {m.group(2)}")
else:
    f = None
    for line in out.splitlines():
        m = re.match(r"(?:patching|checking) file (\S+)", line)
        if m:
            f = m.group(1)
        m = re.match(r"Hunk #(\d+) FAILED", line)
        if m and f:
            n = int(m.group(1)); h = hunks.get(f, [])
            found.append(f"{f} hunk #{n} {h[n-1][1] if n <= len(h) else ''}".rstrip())
        m = re.search(r"can't find file to patch|No such file", line)
        if m and f:
            found.append(f"{f}: no such file")
print("; ".join(dict.fromkeys(found)) or out.strip().splitlines()[-1] if out.strip() else "does not apply")
PY
}

# run_series DIR -> prints "NAME<TAB>STATUS<TAB>DETAIL" per patch; changes DIR.
# Forward: first peel off, last to first, every patch that is already there, so
# that stacked patches on one file are recognised; then apply all in order.
run_series() {
	local where=$1 p i out off
	local -A present=()
	[ "$TOOL" = git ] && [ ! -d "$where/.git" ] && git -C "$where" init -q
	for ((i = ${#PATCHES[@]} - 1; i >= 0; i--)); do
		p=${PATCHES[$i]}
		if try_patch "$where" "$p" --reverse; then
			do_patch "$where" "$p" --reverse >/dev/null
			present[$p]=1
		fi
	done
	if [ "$MODE" = reverse ]; then
		# A patch that is not there must at least apply where the series would put it.
		local -A fits=() why=()
		cp -a "$where" "$where.fwd"
		for p in "${PATCHES[@]}"; do
			if try_patch "$where.fwd" "$p"; then
				do_patch "$where.fwd" "$p" >/dev/null
				fits[$p]=1
			else
				why[$p]=$(conflict_detail "$where.fwd" "$p")
			fi
		done
		rm -rf "$where.fwd"
		for ((i = ${#PATCHES[@]} - 1; i >= 0; i--)); do
			p=${PATCHES[$i]}
			if [ -n "${present[$p]:-}" ]; then
				printf '%s\t%s\t\n' "$p" "reverses"
			elif [ -n "${fits[$p]:-}" ]; then
				printf '%s\t%s\t\n' "$p" "not applied"
			else
				printf '%s\t%s\t%s\n' "$p" "conflicts" "${why[$p]}"
			fi
		done
		return 0
	fi
	for p in "${PATCHES[@]}"; do
		if try_patch "$where" "$p"; then
			out=$(do_patch "$where" "$p")
			if [ -n "${present[$p]:-}" ]; then
				printf '%s\t%s\t\n' "$p" "already applied"
			else
				off=$(echo "$out" | grep -Eo '(offset -?[0-9]+ lines?|with fuzz [0-9]+)' | sort -u | paste -sd, - || true)
				printf '%s\t%s\t%s\n' "$p" "applies" "${off:+($off)}"
			fi
		else
			printf '%s\t%s\t%s\n' "$p" "conflicts" "$(conflict_detail "$where" "$p")"
			# --reject: keep the hunks that fit, the others go to FILE.rej.
			[ "$REJECT" = 0 ] || do_patch "$where" "$p" --reject >/dev/null || true
		fi
	done
}

REPORT=$(run_series "$SCRATCH/work")
CONFLICTS=0
CHANGES=0
while IFS=$'\t' read -r name status detail; do
	echo "$name: $status${detail:+: $detail}"
	case "$status" in
	conflicts) CONFLICTS=1 ;;
	applies | reverses) CHANGES=1 ;;
	esac
done <<<"$REPORT"

if [ "$CONFLICTS" = 1 ] && [ "$REJECT" = 0 ]; then
	echo "apply_patches.sh: $DIR is unchanged: the series does not apply (see 'conflicts' above)" >&2
	exit 1
fi
REJECTED=()
if [ "$REJECT" = 1 ]; then
	# The .rej files are written back with everything else.
	while read -r f; do
		ALLFILES+=("$f")
		REJECTED+=("$f")
		CHANGES=1
	done < <(cd "$SCRATCH/work" && find . -name '*.rej' -type f | sed 's#^\./##' | sort)
fi
[ "$MODE" = check ] && exit 0
if [ "$CHANGES" = 0 ]; then
	if [ "$MODE" = reverse ]; then note "nothing to reverse: no patch of the series is applied in $DIR"; else note "nothing to do: the series is already applied in $DIR"; fi
	exit 0
fi

# Files whose content the series changes.
CHANGED=()
for f in "${ALLFILES[@]}"; do
	t=$(target "$f")
	if [ -e "$SCRATCH/work/$f" ] && [ -e "$t" ]; then
		cmp -s "$SCRATCH/work/$f" "$t" || CHANGED+=("$f")
	elif [ -e "$SCRATCH/work/$f" ] || [ -e "$t" ]; then
		CHANGED+=("$f")
	fi
done

# --- safety checks: nothing has been touched yet ----------------------------------
if [ "$IS_GIT" = 1 ] && [ "$FORCE" = 0 ]; then
	if [ "$COMMIT" = 1 ]; then
		dirty=$(git -C "$DIR" status --porcelain --untracked-files=no)
		[ -z "$dirty" ] || die 4 "dirty checkout: $DIR has uncommitted changes ($(echo "$dirty" | head -3 | awk '{print $2}' | paste -sd' ' -)); --commit needs a clean tree: commit or stash them"
	else
		# Uncommitted changes in touched files are refused, unless they are exactly
		# the series applied on top of HEAD (so that --reverse and re-runs work).
		for f in "${CHANGED[@]}"; do
			if ! git -C "$DIR" diff --quiet HEAD -- "$f" 2>/dev/null; then
				mkdir -p "$SCRATCH/head"
				for g in "${ALLFILES[@]}"; do
					mkdir -p "$SCRATCH/head/$(dirname "$g")"
					git -C "$DIR" show "HEAD:$g" >"$SCRATCH/head/$g" 2>/dev/null || rm -f "$SCRATCH/head/$g"
				done
				MODE=apply run_series "$SCRATCH/head" >/dev/null
				cmp -s "$SCRATCH/head/$f" "$(target "$f")" ||
					die 4 "dirty checkout: $f has uncommitted changes that are not this series; commit or stash them (or --force)"
				break
			fi
		done
	fi
fi
for f in "${CHANGED[@]}"; do
	t=$(target "$f")
	d=$(dirname "$t")
	if [ -e "$t" ]; then
		{ [ -w "$t" ] && [ -n "$(find "$t" -maxdepth 0 -perm /222)" ]; } || die 4 "read-only file: $t; nothing was changed"
	else
		while [ ! -d "$d" ]; do d=$(dirname "$d"); done
		[ -w "$d" ] || die 4 "read-only directory: $d; nothing was changed"
	fi
done

# --- write back (or commit), restoring everything on any failure -------------------
if [ "$COMMIT" = 1 ]; then
	HEAD_BEFORE=$(git -C "$DIR" rev-parse HEAD)
	ident=()
	git -C "$DIR" config user.email >/dev/null || ident=(-c user.name="sglang-mimo apply_patches.sh" -c user.email=sglang-mimo@users.noreply.github.com)
	while IFS=$'\t' read -r name status _; do
		[ "$status" = applies ] || continue
		if ! git -C "$DIR" "${ident[@]}" am --quiet --keep-non-patch "$PATCHDIR/$name" >"$SCRATCH/am.log" 2>&1; then
			git -C "$DIR" am --abort >/dev/null 2>&1 || true
			git -C "$DIR" reset --quiet --hard "$HEAD_BEFORE"
			die 4 "git am failed on $name ($(tail -1 "$SCRATCH/am.log")); $DIR reset to $HEAD_BEFORE"
		fi
	done <<<"$REPORT"
	note "committed the series in $DIR ($(git -C "$DIR" rev-list --count "$HEAD_BEFORE..HEAD") new commits)"
	exit 0
fi

restore() {
	for f in "${CHANGED[@]}"; do
		t=$(target "$f")
		if [ -e "$SCRATCH/backup/$f" ]; then cat "$SCRATCH/backup/$f" >"$t" 2>/dev/null || true; else rm -f "$t"; fi
	done
}
for f in "${CHANGED[@]}"; do
	t=$(target "$f")
	if [ -e "$t" ]; then
		mkdir -p "$SCRATCH/backup/$(dirname "$f")"
		cp -p "$t" "$SCRATCH/backup/$f"
	fi
done
for f in "${CHANGED[@]}"; do
	t=$(target "$f")
	if [ -e "$SCRATCH/work/$f" ]; then
		# cat keeps the target's inode, owner and mode.
		if ! { mkdir -p "$(dirname "$t")" && cat "$SCRATCH/work/$f" >"$t"; } 2>"$SCRATCH/write.log"; then
			restore
			die 4 "could not write $t ($(tail -1 "$SCRATCH/write.log")); every file was restored"
		fi
	elif ! rm -f "$t" 2>"$SCRATCH/write.log"; then
		restore
		die 4 "could not remove $t; every file was restored"
	fi
done
if [ "$REJECT" = 1 ] && [ "$CONFLICTS" = 1 ]; then
	note "applied what fits to $DIR; rejected hunks are in: $(for f in "${REJECTED[@]}"; do target "$f"; done | paste -sd' ' -)"
	exit 1
fi
if [ "$MODE" = reverse ]; then note "series taken out of $DIR"; else note "series applied to $DIR"; fi
