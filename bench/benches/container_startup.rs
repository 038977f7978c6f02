//! Container start-to-exit through the Backend trait, in process: what the
//! backend itself costs for `/bin/true` in the default image (no CLI start,
//! no image lookup). Needs root; says so and measures nothing otherwise.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use isola_core::backend::{self, Backend, RunContext};
use isola_core::explain::Explain;
use isola_core::image::{default_image, ImageStore};
use isola_core::spec::RunSpec;
use isola_core::Root;

fn bench(c: &mut Criterion) {
    if !nix_is_root() {
        eprintln!("container_startup: skipped, it needs root");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("isola-bench-startup-")
        .tempdir()
        .expect("temp root");
    let root = Root::new(dir.path());
    let store = ImageStore::open(root.clone()).expect("store");
    let image = default_image::ensure(&store).expect("the default image (needs a static busybox)");
    let layers = store.layer_dirs(&image);
    let backend = isola_container::ContainerBackend::default();
    let mut group = c.benchmark_group("container_startup");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("true", |b| {
        b.iter(|| {
            let id = isola_core::id::new_id().expect("id");
            let inst = dir.path().join("instances").join(&id);
            std::fs::create_dir_all(&inst).expect("instance dir");
            let spec = RunSpec::new(
                &id,
                "isola/busybox",
                image.digest.as_ref(),
                layers.clone(),
                vec!["/bin/true".into()],
            );
            let ctx = RunContext {
                instance_dir: inst.clone(),
                explain: Explain::default(),
                state_dir: dir.path().to_path_buf(),
                idle: Default::default(),
                ephemeral: true,
                park: false,
                clock: std::time::Instant::now(),
            };
            backend.check(&spec).expect("check");
            let outcome = backend::run_to_end(&backend, &spec, &ctx).expect("run");
            assert_eq!(outcome.status.code(), 0);
            std::fs::remove_dir_all(&inst).expect("remove instance");
        })
    });
    group.finish();
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

criterion_group!(benches, bench);
criterion_main!(benches);
