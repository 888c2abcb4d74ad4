# bms-gateway: `make run` and `make test` each do their own set-up on a fresh Debian box.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# systemd: systemd-analyze checks config/bms-gateway.service (tests/test_systemd_unit.py);
# mosquitto: the MQTT plugin's tests start a broker of their own; prometheus (promtool and
# a real scraper), chromium (the status page) and curl (the docs' examples): the http plugin
DEBS := snmp snmpd snmptrapd smitools mbpoll libmodbus-dev systemd mosquitto mosquitto-clients prometheus chromium curl
# benchmarks/modbus_read.py builds a small libmodbus server with the C compiler
BENCH_DEBS := $(DEBS) gcc libc6-dev
STAMP := $(VENV)/.installed

.PHONY: run test venv debs bench clean

run: $(STAMP)
	$(BIN)/bms-gateway run $(if $(CONFIG),-c $(CONFIG))

test: $(STAMP) debs
	$(BIN)/python -m coverage erase
	$(BIN)/python -m coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m coverage report --include='plugins/rs485_bms/protocol/*' --fail-under=100 -m --skip-covered
	$(BIN)/python -m coverage report --fail-under=80 --skip-covered --skip-empty

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The Debian packages the tests talk to (net-snmp tools, smilint, mbpoll, libmodbus,
# systemd-analyze, mosquitto; prometheus for promtool and a real scraper, chromium for
# the status page, curl for the docs' examples).
debs:
	@missing=$$(for p in $(or $(PACKAGES),$(DEBS)); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages: $$missing (run 'sudo apt-get install $$missing')"; exit 1; \
	  fi; \
	fi

bench: $(STAMP)
	@$(MAKE) --no-print-directory debs PACKAGES="$(BENCH_DEBS)"
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .coverage .pytest_cache build *.egg-info
