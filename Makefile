# The two commands of the README: `make demo` and `make test`.
CARGO ?= cargo
# The release binary is static (static-pie: still randomised): no dynamic
# loader, no libc.so to map and relocate. Each sandbox starts ~0.5 ms sooner
# and isola's resident set shrinks by ~1 MiB. --target keeps the static flag
# off the build scripts and proc-macros, which must stay dynamic.
RELEASE_TARGET := x86_64-unknown-linux-gnu
ISOLA_RELEASE := target/$(RELEASE_TARGET)/release/isola
# The bare-metal guest the KVM monitor's tests boot. Its own crate and target
# dir: it is built for x86_64-unknown-none, never for the host.
TESTGUEST_MANIFEST := backend-vm/testguest/Cargo.toml

.PHONY: setup testguest guest-init build release test demo clean

setup:
	@scripts/setup

testguest: setup
	$(CARGO) build --release --manifest-path $(TESTGUEST_MANIFEST) --target x86_64-unknown-none

# isola-init, the guest's PID 1, static for the guest's initramfs (`make
# release` puts it beside isola, where the VM backend looks for it).
guest-init: setup
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release -p isola-init --target $(RELEASE_TARGET)

build: setup testguest
	$(CARGO) build --workspace

release: setup
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --workspace --target $(RELEASE_TARGET)

test: setup testguest guest-init
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace
	@CHECK_TEST_DIRS=1 scripts/check-leftovers

demo: release
	@scripts/demo $(ISOLA_RELEASE)

clean:
	$(CARGO) clean
	$(CARGO) clean --manifest-path $(TESTGUEST_MANIFEST)
