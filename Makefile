# RegBridge — every target installs what it needs into .venv itself.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-dev

.PHONY: bench proof test demo lint typecheck imports clean system-deps openapi docs-certificate docs-certificate-ofd sandbox bundle config-doc

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

# the layers and the no-cycle rules in pyproject.toml [tool.importlinter] (docs/architecture.md)
imports: $(STAMP)
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy --strict sdk config connectors agent installer sandbox bench tests

# the checks run side by side (mypy is CPU, the bundle mostly waits on the package index), then the suite:
# files whole on one worker each, the longest first (tests/scheduling.py; xdist's own reorder is off)
test: system-deps $(STAMP)
	$(MAKE) --no-print-directory -j4 lint imports typecheck bundle
	$(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15

demo: $(STAMP)
	$(BIN)/regbridge demo

# benchmarks, each a ratio against a baseline in the same run; writes docs/benchmarks.md (docs: bench/)
bench: system-deps $(STAMP)
	$(BIN)/python -m bench

# the reliability and security suites at full size (docs/reliability.md); make test runs them bounded
proof: system-deps $(STAMP)
	rm -f proof-results.jsonl
	REGBRIDGE_PROOF=full REGBRIDGE_PROOF_OUT=proof-results.jsonl $(BIN)/pytest -q tests/reliability tests/security tests/agent/daemon/test_crash.py

# Debian packages the tests use, one per line: the package, then a file that shows it is installed.
# poppler's pdfsig/pdftotext/pdftoppm and a CJK TrueType font (certificates), HanaMinA (fonts-hanazono) for
# the CJK extensions WenQuanYi lacks (𠮷, 䶮); systemd's systemd-analyze
# (the installer's unit is verified with it); SoftHSM2 (the PKCS#11 custody tests); PostgreSQL 15 (the shared
# state store's tests start their own server from it, as an unprivileged user: tests/postgres.py); chromium (the
# web console's browser tests drive it with Playwright, launched by path: no browser is downloaded).
SYSTEM_DEPS := \
	poppler-utils:/usr/bin/pdfsig \
	fonts-wqy-microhei:/usr/share/fonts/truetype/wqy/wqy-microhei.ttc \
	systemd:/usr/bin/systemd-analyze \
	softhsm2:/usr/bin/softhsm2-util \
	chromium:/usr/bin/chromium \
	fonts-hanazono:/usr/share/fonts/truetype/hanazono/HanaMinA.ttf \
	postgresql:/usr/lib/postgresql/15/bin/initdb \

system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
		test -e "$${dep#*:}" || missing="$$missing $${dep%%:*}"; \
	done; \
	if [ -z "$$missing" ]; then \
		echo "system packages present"; \
	elif command -v apt-get >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "installing Debian packages:$$missing"; \
		$$SUDO apt-get install -y -q $$missing >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $$missing >/dev/null; }; \
	else \
		echo "no apt-get: install$$missing (or equivalents) by hand for the tests"; exit 1; \
	fi

# the sandbox's OpenAPI document, kept in docs/ (a test fails when it is stale)
openapi: $(STAMP)
	$(BIN)/python -m sandbox.openapi > docs/openapi.json

# the sample certificate's first page, kept in docs/
docs-certificate: $(STAMP)
	$(BIN)/regbridge sandbox sample-certificate --out docs/certificate-sample.png

# the sample OFD certificate (gm suite), its first page drawn from the .ofd file alone, kept in docs/
docs-certificate-ofd: system-deps $(STAMP)
	$(BIN)/regbridge sandbox sample-certificate-ofd --out docs/certificate-sample-ofd.png

# the offline install bundle: dist/regbridge-<version>-<python>-<platform>.tar.gz (every wheel + install.sh)
bundle: $(STAMP)
	$(BIN)/python -m installer.bundle --out dist

# docs/configuration.md from the config model (a test fails when it is stale)
config-doc: $(STAMP)
	$(BIN)/python -m agent.config > docs/configuration.md

# a sandbox centre in memory on 127.0.0.1:8600
sandbox: $(STAMP)
	$(BIN)/regbridge sandbox serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
