# The two commands of the README: `make demo` and `make test`.
CARGO ?= cargo
# The release binary is static: no dynamic loader, no libc.so to map and
# relocate. Each sandbox starts ~0.5 ms sooner and isola's resident set
# shrinks by ~1 MiB. It is not position-independent either: a static-pie
# relocates its own pointer tables at every start, a copy-on-write fault
# per page (docs/benchmarks.md); heap, stack and mmap stay randomised, the
# binary's own addresses do not. --target keeps these flags off the build
# scripts and proc-macros, which must stay dynamic. isola-init is built
# with the same flags, so the two share one build cache.
RELEASE_TARGET := x86_64-unknown-linux-gnu
RELEASE_RUSTFLAGS := -C target-feature=+crt-static -C relocation-model=static
ISOLA_RELEASE := target/$(RELEASE_TARGET)/release/isola
# The bare-metal guest the KVM monitor's tests boot. Its own crate and target
# dir: it is built for x86_64-unknown-none, never for the host.
TESTGUEST_MANIFEST := backend-vm/testguest/Cargo.toml

.PHONY: setup peers registry-servers testguest guest-init kernel test-kernel build release test demo clean

setup:
	@scripts/setup

# What the benchmark compares against and its tests run for real: runc,
# crun, podman with conmon, containerd.
peers: setup
	@scripts/setup --peers

# The servers tests/registry.rs starts: the distribution registry, htpasswd.
registry-servers: setup
	@scripts/setup --registry

testguest: setup
	$(CARGO) build --release --manifest-path $(TESTGUEST_MANIFEST) --target x86_64-unknown-none

# isola-init, the guest's PID 1, static for the guest's initramfs (`make
# release` puts it beside isola, where the VM backend looks for it); the
# static isola that tests/cgroup_v2.rs runs inside a cgroup v2 guest; and
# isola-probe, which tests/probe.rs runs on the host and in a container.
guest-init: setup
	RUSTFLAGS="$(RELEASE_RUSTFLAGS)" $(CARGO) build --release -p isola-init -p isola -p isola-probe --target $(RELEASE_TARGET)

# isola's guest kernel (docs/kernel.md), stored in isola's kernel store.
kernel: release
	@scripts/setup --kernel
	@scripts/build-kernel --add $(ISOLA_RELEASE)

# The kernel tests/vm_isola_monitor.rs boots on isola's monitor: on a PVM host
# the PVM test kernel, else isola's kernel. Built once, then cached by its
# config and patches (a few minutes the first time).
test-kernel: setup
	@scripts/setup --kernel
	@scripts/build-kernel --for-host >/dev/null

build: setup testguest
	$(CARGO) build --workspace

release: setup
	RUSTFLAGS="$(RELEASE_RUSTFLAGS)" $(CARGO) build --release --workspace --target $(RELEASE_TARGET)

# The test-backend feature adds a third, test-only backend to the isola the
# tests run (tests/architecture.rs).
test: setup peers registry-servers testguest guest-init test-kernel
	$(CARGO) build --workspace --all-targets --features isola/test-backend
	$(CARGO) test --workspace --features isola/test-backend
	@CHECK_TEST_DIRS=1 scripts/check-leftovers

demo: release testguest
	@scripts/demo $(ISOLA_RELEASE)

clean:
	$(CARGO) clean
	$(CARGO) clean --manifest-path $(TESTGUEST_MANIFEST)
