# Webhooky: the two commands of the README, and a few more.
#   make demo   build and run the demo on a private, throwaway PostgreSQL
#   make test   run the whole test suite (unit and integration, real PostgreSQL, real HTTP)

SWIFT ?= swift
# A hung test must not hang the run forever. Each suite also has .timeLimit(.minutes(10)):
# Swift Testing counts in it the time a test waits for one of the 2 cooperative threads, so it
# must stay well above the whole run (about 2 minutes on 2 cores), or a quick test scheduled
# last fails for waiting.
TEST_TIMEOUT ?= 45m

.PHONY: demo test build release deps clean fuzz drill

demo: deps
	$(SWIFT) build --product webhooky
	$(SWIFT) run --skip-build webhooky demo

test: deps
	$(SWIFT) build --build-tests
	timeout --signal=TERM --kill-after=30s $(TEST_TIMEOUT) $(SWIFT) test --skip-build

build: deps
	$(SWIFT) build --product webhooky

release: deps
	$(SWIFT) build -c release --product webhooky
	@echo "binary: $$($(SWIFT) build -c release --show-bin-path)/webhooky"

# Installs what a fresh Debian machine with Swift, postgresql-15, libpq-dev and libssl-dev lacks:
# libcurl's development package (and pkg-config), the openssl command line that the TLS tests
# use to make a throwaway CA, and python3, which runs README's verify() in the docs tests. Uses
# sudo when not root.
deps:
	@missing=""; \
	pkg-config --version >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	pkg-config --exists libcurl 2>/dev/null || missing="$$missing libcurl4-openssl-dev"; \
	pkg-config --exists libpq 2>/dev/null || missing="$$missing libpq-dev"; \
	pkg-config --exists libcrypto 2>/dev/null || missing="$$missing libssl-dev"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v python3 >/dev/null 2>&1 || missing="$$missing python3"; \
	[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql-15"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

# The template fuzzer with a million random templates and payloads (the test suite runs 20,000).
fuzz: deps
	$(SWIFT) build --build-tests
	WEBHOOKY_FUZZ_CASES=1000000 $(SWIFT) test --skip-build --filter FuzzTests

# The fault drill: 10,000 events, a chaos receiver, workers killed, PostgreSQL restarted.
drill: deps
	bench/drill

clean:
	rm -rf .build
