# The two commands of the README: `make demo` and `make test`.
CARGO ?= cargo
ISOLA_RELEASE := target/release/isola

.PHONY: setup build release test demo clean

setup:
	@scripts/setup

build: setup
	$(CARGO) build --workspace

release: setup
	$(CARGO) build --release --workspace

test: setup
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace
	@CHECK_TEST_DIRS=1 scripts/check-leftovers

demo: release
	@scripts/demo $(ISOLA_RELEASE)

clean:
	$(CARGO) clean
