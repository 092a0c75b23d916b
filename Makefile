# One-command set-up: every target creates .venv and installs what it needs first.
#   make demo    the video-prompted closed-loop demo on the simulated robot
#   make test    the test suite (what CI runs)
#   make bench   IK and safety-filter throughput per robot, the 10^6-step safety fuzz, the
#                model runtime against PyTorch eager, and the whole graph against the latency
#                budget (docs/performance.md; BENCH_MODELS=DIR, default models/reference)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup demo test bench clean unitree

setup: $(STAMP)

# requirements-dev.txt = requirements.txt + the export/training extra (torch CPU build); the
# runtime never imports torch, but the export parity tests and `hv2r bench-models` need it.
$(STAMP): requirements.txt requirements-dev.txt constraints.txt apt.txt setup.py
	scripts/apt_install.sh apt.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23"
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

demo: setup
	$(VENV)/bin/hv2r demo

# pytest exits 5 when it collects nothing; that is not a failure of the code under test.
test: setup
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

bench: setup
	$(VENV)/bin/hv2r bench
	$(VENV)/bin/hv2r bench fuzz --steps 1000000
	$(VENV)/bin/hv2r bench-models
	$(VENV)/bin/hv2r bench graph $(if $(BENCH_MODELS),--models $(BENCH_MODELS))

# Optional: the Unitree G1 arm-SDK output (docs/unitree_g1.md). Builds the Cyclone DDS 0.10
# binding against Debian's C library and installs Unitree's SDK from its source (needs GitHub).
unitree: setup
	scripts/apt_install.sh apt-unitree.txt
	mkdir -p $(VENV)/cyclonedds-home
	ln -sfn /usr/include $(VENV)/cyclonedds-home/include
	ln -sfn /usr/bin $(VENV)/cyclonedds-home/bin
	ln -sfn /usr/lib/$$(gcc -print-multiarch) $(VENV)/cyclonedds-home/lib
	CYCLONEDDS_HOME=$(abspath $(VENV))/cyclonedds-home $(PY) -m pip install --quiet --no-deps -r requirements-unitree.txt

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis out
