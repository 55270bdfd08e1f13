# sglang-mimo: `make test` installs everything the tests need and runs them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# pytest-xdist workers (one per core of the 2-core machines the suite is timed on; an
# engine-tier server at TP 4 takes 7 GiB, so more workers want more memory too).
JOBS ?= 2
XDIST := -n $(JOBS) --dist loadgroup --no-loadscope-reorder

.PHONY: test test-fast venv sysdeps apply clean image-test image-prep

test: venv
	$(PY) -m pytest $(XDIST) tests $(PYTEST_ARGS)

# The inner loop (under a minute): the apply script and its faults, series
# hygiene, the CLI tooling, ruff and mypy over the package. Nothing here imports
# torch or starts SGLang.
FAST_TESTS := tests/test_apply_patches.py tests/test_apply_engine.py tests/test_series.py tests/test_changelog.py \
	tests/test_status_audit.py tests/test_image_vars.py tests/test_repo_hygiene.py \
	tests/test_static_checks.py
test-fast: venv
	$(PY) -m pytest $(XDIST) $(FAST_TESTS) $(PYTEST_ARGS)

# System packages the tests use, installed from Debian when missing (as root):
# FFmpeg 5 shared libraries for torchcodec (the pinned release's x86_64 video
# backend), quilt and GNU patch (the series must work with both), git; OpenSSH's sshd
# and client and iproute2 for the cluster tests' network-namespace nodes.
FFMPEG_DEBS := libavcodec59 libavformat59 libavutil57 libavdevice59 libavfilter8 libswscale6 libswresample4
sysdeps:
	@missing=""; \
	ldconfig -p | grep -q 'libavutil.so.57' || missing="$$missing $(FFMPEG_DEBS)"; \
	for tool in quilt patch git; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	test -x /usr/sbin/sshd || missing="$$missing openssh-server"; \
	command -v ssh-keygen >/dev/null || missing="$$missing openssh-client"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "the tests need these Debian packages: apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

venv: sysdeps $(VENV)/.installed

$(VENV)/.installed: tests/requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r tests/requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Apply the series to the pinned release (build/sglang-VERSION).
apply:
	scripts/apply_patches.sh

clean:
	rm -rf build

# The per-arch images (docker/): installs the engine and tools (root, Debian),
# builds both targets with the real `docker buildx bake` on stand-in bases, checks them,
# pushes and pulls them through a loopback registry, copies one over ssh; and checks
# that the release workflow's `bake --print` is what it pushes.
image-test: venv
	bash tests/images/setup.sh $(PY)
	SGLANG_MIMO_IMAGE_TEST=1 PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest tests/test_images.py tests/test_release.py $(PYTEST_ARGS)

# The part of image-test that needs no Docker engine, ahead of time: its packages and
# both stand-in roots (downloads, debootstrap, the arm64 stage under QEMU; cached under
# ~/.cache/sglang-mimo). image-test builds what is missing itself; .ci/run runs this
# beside `make test`.
image-prep: venv
	bash tests/images/setup.sh $(PY)
	$(PY) tests/images/standin.py --roots amd64 arm64
