# sglang-mimo: `make test` installs everything the tests need and runs them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: test venv sysdeps apply clean

test: venv
	$(PY) -m pytest tests $(PYTEST_ARGS)

# FFmpeg shared libraries for torchcodec (the pinned release's x86_64 video
# backend); installed from Debian when missing and we may use apt-get.
FFMPEG_DEBS := libavcodec59 libavformat59 libavutil57 libavdevice59 libavfilter8 libswscale6 libswresample4
sysdeps:
	@if ! ldconfig -p | grep -q 'libavutil.so.57'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing FFmpeg libraries for torchcodec: $(FFMPEG_DEBS)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(FFMPEG_DEBS) >/dev/null; \
	  else \
	    echo "torchcodec needs FFmpeg 5 shared libraries: apt-get install $(FFMPEG_DEBS)" >&2; exit 1; \
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
