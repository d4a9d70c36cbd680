# Strongroom: `make run` opens the appliance on a bundled demo vault; `make test` runs the tests.
#
# Installs are exact: `make setup` installs what requirements.lock pins (made from pyproject.toml
# by `make lock`), every file checked against the lock's hashes. With a wheelhouse/ folder present
# it installs from that alone, offline, as in the secured room (docs/INSTALL.md); without one it
# installs from the package registries, then this checkout in editable mode for development.
PYTHON ?= $(shell command -v python3.11 || echo python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock
WHEELHOUSE := wheelhouse
# The wheelhouse the offline-install test installs from; kept apart from wheelhouse/ so that a
# development checkout's .venv stays editable and installed from the registries.
TEST_WHEELHOUSE := .cache/wheelhouse
# The room's platform: every wheel runs on CPython 3.11, Linux x86_64 with glibc 2.28 or later
# (manylinux_2_28 and every older manylinux tag; pip expands only the legacy names by itself).
TARGET := --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
          $(foreach minor,28 27 26 25 24 23 22 21 20 19 18 17,--platform manylinux_2_$(minor)_x86_64) \
          --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 --platform manylinux_2_5_x86_64
# pip in the room reads nothing from the host (no config file, no PIP_* variables): only the media.
ROOM_PIP := PIP_CONFIG_FILE=/dev/null $(PY) -m pip --isolated --disable-pip-version-check
# Strongroom's own wheel is reproducible: its files carry the last commit's time.
EPOCH = $(shell git log -1 --format=%ct 2>/dev/null || echo 315532800)

.PHONY: setup run test lint bench demo clean lock wheelhouse wheelhouse-files wheelhouse-check mutate

# setup: .venv with what requirements.lock pins, every file checked against its hash; offline from
# wheelhouse/ when it is there, else from the registries plus this checkout (editable).
setup: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml $(wildcard $(WHEELHOUSE)/SHA256SUMS)
	@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "setup: $(LOCK) is for CPython 3.11 and $(PYTHON) is not; run: make PYTHON=/path/to/python3.11" >&2; exit 1; }
ifneq ($(wildcard $(WHEELHOUSE)/.),)
	@$(MAKE) --no-print-directory wheelhouse-check
endif
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "setup: $(VENV) is not CPython 3.11 and $(LOCK) is; remove $(VENV) and run: make PYTHON=/path/to/python3.11" >&2; exit 1; }
ifneq ($(wildcard $(WHEELHOUSE)/.),)
	@echo "setup: installing from $(WHEELHOUSE)/ only (no index, no network)"
	$(ROOM_PIP) install --quiet --no-index --find-links $(WHEELHOUSE) --require-hashes -r $(LOCK) || { \
	  echo "setup: pip refused to install from $(WHEELHOUSE)/ (its reason is above; 'do not match the hashes' names a damaged or altered wheel); build the wheelhouse again on a connected machine" >&2; exit 1; }
	$(ROOM_PIP) install --quiet --no-index --no-deps --force-reinstall $(wildcard $(WHEELHOUSE)/strongroom-*.whl)
else
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@# bytecode now: an isolated command sees its source read-only and would compile it every run
	$(PY) -m compileall -q vault tui
endif
	touch $(STAMP)

# wheelhouse-check: wheelhouse/ is whole before anything is installed from it: SHA256SUMS lists
# every file, it was built from this requirements.lock, it holds one Strongroom wheel, and every
# file matches SHA256SUMS (the slow check last). pip's --require-hashes then checks every wheel
# again, against the lock.
wheelhouse-check:
	@test -f $(WHEELHOUSE)/SHA256SUMS || { \
	  echo "setup: $(WHEELHOUSE)/SHA256SUMS is missing, so the wheelhouse cannot be checked; copy the whole folder that 'make wheelhouse' wrote" >&2; exit 1; }
	@listed=$$(sed 's/^[0-9a-f]\{64\}  //' $(WHEELHOUSE)/SHA256SUMS); status=0; \
	 for path in $(WHEELHOUSE)/* $(WHEELHOUSE)/.[!.]*; do \
	   [ -e "$$path" ] || continue; name=$${path##*/}; [ "$$name" = SHA256SUMS ] && continue; \
	   printf '%s\n' "$$listed" | grep -qxF -- "$$name" || { status=1; \
	     echo "setup: $(WHEELHOUSE)/$$name is not listed in $(WHEELHOUSE)/SHA256SUMS; nothing was installed: remove it, or build the wheelhouse again" >&2; }; \
	 done; exit $$status
	@cmp -s $(LOCK) $(WHEELHOUSE)/requirements.lock || { \
	  echo "setup: $(WHEELHOUSE)/ was built from another requirements.lock than ./$(LOCK); build it again with 'make wheelhouse' from this checkout, or remove $(WHEELHOUSE)/ to install from the registries" >&2; exit 1; }
	@set -- $(WHEELHOUSE)/strongroom-*.whl; [ $$# -eq 1 ] && [ -f "$$1" ] || { \
	  echo "setup: $(WHEELHOUSE)/ must hold exactly one strongroom-*.whl; build the wheelhouse again with 'make wheelhouse'" >&2; exit 1; }
	@report=$$(cd $(WHEELHOUSE) && sha256sum --check --strict --quiet SHA256SUMS 2>/dev/null); status=$$?; \
	 failed=$$(printf '%s\n' "$$report" | sed -n 's/: FAILED.*$$//p'); \
	 for name in $$failed; do \
	   if [ -e "$(WHEELHOUSE)/$$name" ]; then \
	     echo "setup: $(WHEELHOUSE)/$$name does not match $(WHEELHOUSE)/SHA256SUMS (damaged or altered on the way); nothing was installed: build the wheelhouse again on a connected machine" >&2; \
	   else echo "setup: $(WHEELHOUSE)/$$name is listed in $(WHEELHOUSE)/SHA256SUMS but missing; nothing was installed: copy the whole wheelhouse folder again" >&2; fi; \
	 done; \
	 if [ $$status -ne 0 ] && [ -z "$$failed" ]; then \
	   echo "setup: $(WHEELHOUSE)/SHA256SUMS has lines that are not '<sha256>  <file>'; nothing was installed: copy it again from the media" >&2; fi; \
	 exit $$status
	@echo "setup: $(WHEELHOUSE)/ matches its SHA256SUMS (sha256 of SHA256SUMS: $$(sha256sum < $(WHEELHOUSE)/SHA256SUMS | cut -c1-64))"

# lock: requirements.lock from pyproject.toml with pip-compile (resolved by pip, with pip's own
# configuration), every package pinned and hashed; UPGRADE=1 also moves every pin to its newest release.
lock: setup
	CUSTOM_COMPILE_COMMAND="make lock" $(PY) -m piptools compile --quiet --generate-hashes --allow-unsafe \
	  --all-build-deps --extra dev --strip-extras --no-emit-index-url --no-emit-find-links \
	  --no-emit-trusted-host $(if $(UPGRADE),--upgrade) --output-file $(LOCK) pyproject.toml

# wheelhouse (on a connected machine): wheelhouse/ with every wheel requirements.lock names,
# Strongroom's own wheel, a copy of the lock, a CycloneDX SBOM and SHA256SUMS: the folder carried
# into the room. Wheels already there are checked and kept; wheels the lock no longer names go.
wheelhouse: setup
	@$(MAKE) --no-print-directory wheelhouse-files

# wheelhouse-files: the body of `make wheelhouse` into $(WHEELHOUSE), without setting up first
wheelhouse-files:
	@mkdir -p $(WHEELHOUSE)
	@rm -f $(WHEELHOUSE)/.SHA256SUMS $(WHEELHOUSE)/.SHA256SUMS.wheels $(WHEELHOUSE)/.sbom.cdx.json $(WHEELHOUSE)/.requirements.lock
	@status=0; for path in $(WHEELHOUSE)/*; do [ -e "$$path" ] || continue; case "$${path##*/}" in \
	   *.whl|SHA256SUMS|requirements.lock|sbom.cdx.json) ;; \
	   *) status=1; echo "wheelhouse: $$path is not part of a wheelhouse; move it elsewhere and run again" >&2 ;; \
	 esac; done; exit $$status
	$(PY) -m pip download --quiet --require-hashes $(TARGET) --dest $(WHEELHOUSE) -r $(LOCK)
	rm -rf build $(WHEELHOUSE)/strongroom-*.whl
	SOURCE_DATE_EPOCH=$(EPOCH) $(PY) -m pip wheel --quiet --no-deps --no-build-isolation --no-index \
	  --wheel-dir $(WHEELHOUSE) .
	@cd $(WHEELHOUSE) && sha256sum -- *.whl > .SHA256SUMS.wheels && \
	 while read -r sum name; do case "$$name" in strongroom-*.whl) continue ;; esac; \
	   grep -q "sha256:$$sum" $(abspath $(LOCK)) || { echo "wheelhouse: removing $$name, which $(LOCK) does not name"; rm -f -- "$$name"; }; \
	 done < .SHA256SUMS.wheels
	cp $(LOCK) $(WHEELHOUSE)/.requirements.lock && mv -f $(WHEELHOUSE)/.requirements.lock $(WHEELHOUSE)/requirements.lock
	SOURCE_DATE_EPOCH=$(EPOCH) PYTHONWARNINGS=ignore::UserWarning $(VENV)/bin/cyclonedx-py requirements --pyproject pyproject.toml \
	  --output-reproducible --output-format JSON --output-file $(WHEELHOUSE)/.sbom.cdx.json $(LOCK)
	mv -f $(WHEELHOUSE)/.sbom.cdx.json $(WHEELHOUSE)/sbom.cdx.json
	@cd $(WHEELHOUSE) && { while read -r sum name; do [ -e "$$name" ] && printf '%s  %s\n' "$$sum" "$$name"; done \
	   < .SHA256SUMS.wheels; sha256sum -- requirements.lock sbom.cdx.json; } > .SHA256SUMS && \
	 mv -f .SHA256SUMS SHA256SUMS && rm -f .SHA256SUMS.wheels
	@echo "wheelhouse: $(WHEELHOUSE)/ holds $$(ls $(WHEELHOUSE)/*.whl | wc -l) wheels, $$(du -sh $(WHEELHOUSE) | cut -f1);" \
	  "sha256 of SHA256SUMS: $$(sha256sum < $(WHEELHOUSE)/SHA256SUMS | cut -c1-64) (write it in the transfer record)"

# run: create the demo vault once from vault/demo_data, then open the terminal UI on it
run: setup
	$(PY) -m vault.demo --open

# demo: create the demo vault only
demo: setup
	$(PY) -m vault.demo

# test: the whole suite, with the offline install of a wheelhouse built (or refreshed) in .cache/
test: setup
	@$(MAKE) --no-print-directory wheelhouse-files WHEELHOUSE=$(TEST_WHEELHOUSE)
	STRONGROOM_TEST_WHEELHOUSE=$(abspath $(TEST_WHEELHOUSE)) $(PY) -m pytest -q

# lint: ruff over the code, the tests, the benchmarks and the documentation's examples
lint: setup
	$(VENV)/bin/ruff format --check vault tui tests bench docs/examples
	$(VENV)/bin/ruff check vault tui tests bench docs/examples

# bench: every benchmark, each printing its ratio against a named peer
bench: setup
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# mutate: mutation testing (mutmut 3.8.1, a developer tool: `.venv/bin/python -m pip install mutmut==3.8.1`) of the
# critical modules, each against its own tests (tests/mutate.py); not part of CI. MODULES=crypto ...
# runs a few; counts land in .cache/mutate/summary.json.
mutate: setup
	$(PY) -m tests.mutate $(MODULES)

# clean: the venv, the demo vault, caches and the test wheelhouse (not wheelhouse/)
clean:
	rm -rf $(VENV) demo-vault .pytest_cache .hypothesis .cache build
