//! A small but complete `Results`: a container, an emulated VM and a peer
//! that refused to run, shared by the library's unit tests and the
//! integration tests. The includer brings the schema's types in as
//! `super::results`, so the same file compiles in both places.

use super::results::*;

fn subject(id: &str, label: &str, kind: &str, emulated: bool) -> Subject {
    Subject {
        id: id.into(),
        label: label.into(),
        kind: kind.into(),
        emulated,
    }
}

fn summary(ms: &[f64]) -> Summary {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    Summary {
        min: sorted[0],
        median: pick(0.5),
        p90: pick(0.9),
        max: sorted[sorted.len() - 1],
    }
}

fn series(subject: &str, ms: Vec<f64>, rss: Option<u64>, paired: &[(&str, f64)]) -> StartupSeries {
    StartupSeries {
        subject: subject.into(),
        cpu_ms: ms.iter().map(|m| m * 0.9).collect(),
        summary: summary(&ms),
        ms,
        peak_rss_kib: rss,
        paired: paired.iter().map(|(s, r)| (s.to_string(), *r)).collect(),
    }
}

fn lifecycle_series(
    subject: &str,
    command: &str,
    ms: Vec<f64>,
    paired: &[(&str, f64)],
) -> LifecycleSeries {
    LifecycleSeries {
        subject: subject.into(),
        command: command.into(),
        summary: summary(&ms),
        ms,
        paired: paired.iter().map(|(s, r)| (s.to_string(), *r)).collect(),
    }
}

fn transfer(subject: &str, command: &str, ms: Vec<f64>, paired: &[(&str, f64)]) -> TransferSeries {
    let s = summary(&ms);
    TransferSeries {
        subject: subject.into(),
        command: command.into(),
        cpu_ms: ms.iter().map(|m| m * 0.8).collect(),
        cpu_median_ms: s.median * 0.8,
        // A 70 MiB image.
        mib_per_s: 70.0 / (s.median / 1e3),
        summary: s,
        ms,
        paired: paired.iter().map(|(s, r)| (s.to_string(), *r)).collect(),
    }
}

fn item(subject: &str, what: &str, bytes: u64) -> DiskItem {
    DiskItem {
        subject: subject.into(),
        what: what.into(),
        bytes,
    }
}

fn figure(
    workload: &str,
    subject: &str,
    rate: f64,
    unit: &str,
    ratio: Option<f64>,
) -> RuntimeFigure {
    RuntimeFigure {
        workload: workload.into(),
        subject: subject.into(),
        rate,
        unit: unit.into(),
        ratio_to_host: ratio,
    }
}

fn row(key: &str, label: &str, why: &str, values: &[(&str, &str)]) -> IsolationRow {
    IsolationRow {
        key: key.into(),
        label: label.into(),
        why: why.into(),
        values: values
            .iter()
            .map(|(s, v)| (s.to_string(), v.to_string()))
            .collect(),
    }
}

pub fn sample() -> Results {
    const VM: &str = "vm (qemu-tcg: emulated, not KVM speed)";
    Results {
        schema: SCHEMA,
        created: "2025-01-02T03:04:05Z".into(),
        isola_version: "0.1.0".into(),
        machine: Machine {
            cpu_model: "Intel Xeon Processor @ 2.50GHz".into(),
            cores: 2,
            mem_total_kib: 4_028_000,
            kernel: "6.18.44".into(),
            cgroup: "hybrid".into(),
            kvm: "none".into(),
            guest_kernel: Some("/var/lib/isola/vmlinux (9.8 MiB)".into()),
        },
        config: Config {
            image: "isola/busybox".into(),
            backends: vec!["container".into(), "vm".into()],
            peers: vec!["crun".into()],
            runs: 6,
            warmup: 2,
            density: 4,
            quick: true,
        },
        subjects: vec![
            subject("host", "host (no sandbox)", "host", false),
            subject("container", "isola container", "isola", false),
            subject(
                "container-detached",
                "container, detached (run -d: shim + workload)",
                "isola",
                false,
            ),
            subject("vm", VM, "isola", true),
            subject("crun", "crun 1.8.1", "peer", false),
            subject("runc", "runc 1.1.5", "peer", false),
            subject("floor", "floor (unshare+chroot)", "peer", false),
            subject("nsenter", "floor (nsenter -a)", "peer", false),
            subject("podman", "podman 4.3.1 (conmon 2.1.6, runc)", "peer", false),
            subject(
                "kernel-qemu-isola-6.1.192-0123456789ab",
                "qemu-tcg + isola-6.1.192-0123456789ab (emulated)",
                "isola",
                true,
            ),
        ],
        harness: Harness { overhead_ms: 0.42 },
        startup: Startup {
            warm: vec![
                series(
                    "container",
                    vec![5.1, 5.4, 4.9, 6.2, 5.3, 5.0],
                    Some(2_764),
                    &[("crun", 0.49)],
                ),
                series(
                    "vm",
                    vec![812.0, 790.5, 845.25, 801.0, 799.0, 830.0],
                    Some(151_000),
                    &[("container", 152.3)],
                ),
                series(
                    "crun",
                    vec![10.9, 11.2, 10.4, 13.1, 10.7, 11.0],
                    Some(3_380),
                    &[("container", 2.05)],
                ),
            ],
            cold: vec![
                ColdStart {
                    subject: "container".into(),
                    ms: 9.5,
                },
                ColdStart {
                    subject: "vm".into(),
                    ms: 1_420.0,
                },
            ],
            phases: vec![
                Phases {
                    subject: "container".into(),
                    at_ms: vec![
                        ("image lookup".into(), 0.8),
                        ("mounts".into(), 2.1),
                        ("namespaces".into(), 3.0),
                        ("exec".into(), 4.4),
                    ],
                },
                Phases {
                    subject: "vm".into(),
                    at_ms: vec![
                        ("image lookup".into(), 0.9),
                        ("rootfs archive".into(), 12.0),
                        ("kernel boot".into(), 610.0),
                        ("init".into(), 790.0),
                    ],
                },
            ],
            monitor: vec![],
            kernels: vec![KernelBoot {
                subject: "kernel-qemu-isola-6.1.192-0123456789ab".into(),
                kernel: "/var/lib/isola/kernels/isola-6.1.192-0123456789ab".into(),
                kernel_bytes: 18_939_392,
                vmm: "qemu".into(),
                to_init_ms: vec![2_010.0, 1_990.5, 2_050.0],
                to_exit_ms: vec![2_300.0, 2_280.0, 2_350.0],
                to_init_median_ms: Some(2_010.0),
                to_exit_median_ms: Some(2_300.0),
            }],
        },
        memory: vec![
            Memory {
                subject: "container".into(),
                host_pss_kib: 1_536,
                cgroup_kib: Some(1_024),
                vmm_rss_kib: None,
                guest_touched_kib: None,
                inside_total_kib: Some(4_028_000),
                inside_available_kib: Some(3_100_000),
            },
            Memory {
                subject: "vm".into(),
                host_pss_kib: 98_304,
                cgroup_kib: None,
                vmm_rss_kib: Some(102_400),
                guest_touched_kib: Some(40_960),
                inside_total_kib: Some(125_000),
                inside_available_kib: Some(101_000),
            },
        ],
        disk: Disk {
            image: ImageDisk {
                name: "isola/busybox".into(),
                layers: 2,
                bytes: 4_400_000,
                shared_bytes: 4_000_000,
                unique_bytes: 400_000,
            },
            per_sandbox: vec![
                item("container", "upper dir and scratch", 12_288),
                item("vm", "overlay disk", 1_048_576),
            ],
            vm_extra: vec![
                item("vm", "kernel", 10_276_044),
                item("vm", "rootfs archive", 2_300_000),
            ],
            sharing: vec![
                Sharing {
                    images: 1,
                    store_bytes: 4_400_000,
                    sum_of_images_bytes: 4_400_000,
                },
                Sharing {
                    images: 2,
                    store_bytes: 4_800_000,
                    sum_of_images_bytes: 8_800_000,
                },
                Sharing {
                    images: 4,
                    store_bytes: 5_600_000,
                    sum_of_images_bytes: 17_600_000,
                },
            ],
            distribution: Some(PullOnBase {
                image: "isola/bench:latest".into(),
                base: "isola/busybox:latest".into(),
                layers: 2,
                layers_fetched: 1,
                bytes_fetched: 1_048_576,
                bytes_total: 4_194_304,
            }),
        },
        runtime: vec![
            figure("cpu", "host", 1_000_000.0, "ops/s", None),
            figure("cpu", "container", 990_000.0, "ops/s", Some(0.99)),
            figure("cpu", "vm", 80_000.0, "ops/s", Some(0.08)),
            figure("memcpy", "host", 9_000.0, "MiB/s", None),
            figure("memcpy", "container", 8_950.5, "MiB/s", Some(0.994)),
        ],
        density: vec![
            Density {
                subject: "container".into(),
                sandboxes: 4,
                all_running_ms: 31.5,
                host_pss_kib: 6_144,
            },
            Density {
                subject: "container-detached".into(),
                sandboxes: 4,
                all_running_ms: 60.0,
                host_pss_kib: 9_216,
            },
            Density {
                subject: "vm".into(),
                sandboxes: 4,
                all_running_ms: 3_900.0,
                host_pss_kib: 393_216,
            },
        ],
        isolation: Isolation {
            rows: vec![
                row(
                    "kernel",
                    "kernel",
                    "a kernel bug is a host bug",
                    &[("host", "shared"), ("container", "shared"), ("vm", "own")],
                ),
                row(
                    "pid_ns",
                    "PID namespace",
                    "cannot see or signal host processes",
                    &[("host", "no"), ("container", "yes"), ("vm", "guest")],
                ),
            ],
            facts: vec![(
                "container".into(),
                serde_json::json!({"pid": 1, "uid": 0, "kernel": "6.18.44"}),
            )],
        },
        lifecycle: Some(Lifecycle {
            isola: IsolaBuild {
                path: "/usr/local/bin/isola".into(),
                profile: "release, static".into(),
                bytes: 17_272_888,
            },
            start: vec![
                lifecycle_series(
                    "container",
                    "isola run -d",
                    vec![8.0, 9.5, 7.5],
                    &[("floor", 1.8), ("podman", 0.08)],
                ),
                lifecycle_series(
                    "floor",
                    "unshare -fpmiun + chroot, /bin/true to its exit",
                    vec![4.5, 5.0, 4.0],
                    &[("container", 0.56)],
                ),
                lifecycle_series(
                    "podman",
                    "podman run -d",
                    vec![110.0, 120.0, 105.0],
                    &[("container", 12.5)],
                ),
            ],
            exec: vec![
                lifecycle_series(
                    "container",
                    "isola exec ID true",
                    vec![3.0, 3.5, 2.5],
                    &[("runc", 0.2), ("nsenter", 2.4)],
                ),
                lifecycle_series(
                    "nsenter",
                    "nsenter -a -t PID true (into isola's sandbox)",
                    vec![1.2, 1.4, 1.0],
                    &[("container", 0.41)],
                ),
            ],
            shims: vec![
                ShimMemory {
                    subject: "container".into(),
                    process: "isola".into(),
                    rss_kib: 2_560,
                    pss_kib: 1_100,
                    private_kib: 700,
                    rss_after_exec_kib: Some(2_600),
                    pss_after_exec_kib: Some(1_150),
                },
                ShimMemory {
                    subject: "podman".into(),
                    process: "conmon".into(),
                    rss_kib: 2_072,
                    pss_kib: 1_182,
                    private_kib: 600,
                    rss_after_exec_kib: None,
                    pss_after_exec_kib: None,
                },
            ],
            goals: vec![
                Goal {
                    key: "start_vs_floor".into(),
                    label: "isola run -d against the floor's start to exit (paired)".into(),
                    limit: 2.0,
                    unit: "x".into(),
                    value: Some(1.8),
                    met: Some(true),
                },
                Goal {
                    key: "exec_vs_nsenter".into(),
                    label: "isola exec against nsenter -a (paired)".into(),
                    limit: 2.0,
                    unit: "x".into(),
                    value: Some(2.4),
                    met: Some(false),
                },
                Goal {
                    key: "shim_rss".into(),
                    label: "isola's shim, resident (VmRSS)".into(),
                    limit: 1024.0,
                    unit: "KiB".into(),
                    value: Some(2_560.0),
                    met: Some(false),
                },
            ],
        }),
        distribution: Some(Distribution {
            isola: IsolaBuild {
                path: "/usr/local/bin/isola".into(),
                profile: "release, static".into(),
                bytes: 17_272_888,
            },
            image: DistributionImage {
                label: "Debian bookworm minbase (mmdebstrap)".into(),
                layers: 2,
                compressed_bytes: 73_400_320,
                unpacked_bytes: 183_500_800,
            },
            pull: vec![
                transfer(
                    "isola",
                    "isola pull",
                    vec![1000.0, 1400.0, 1200.0],
                    &[("podman", 0.4)],
                ),
                transfer(
                    "podman",
                    "podman pull (overlay storage)",
                    vec![3000.0, 2900.0, 3100.0],
                    &[("isola", 2.5)],
                ),
            ],
            push: vec![transfer(
                "isola",
                "isola push",
                vec![350.0, 340.0, 360.0],
                &[],
            )],
            on_base: Some(PullOnBase {
                image: "bench/dist:full".into(),
                base: "bench/dist:base".into(),
                layers: 2,
                layers_fetched: 1,
                bytes_fetched: 9_234_982,
                bytes_total: 72_630_142,
            }),
            goals: vec![Goal {
                key: "pull_vs_podman".into(),
                label: "isola pull against podman pull (paired)".into(),
                limit: 0.6,
                unit: "x".into(),
                value: Some(0.4),
                met: Some(true),
            }],
        }),
        build: Some(Build {
            isola: IsolaBuild {
                path: "/usr/local/bin/isola".into(),
                profile: "release, static".into(),
                bytes: 17_272_888,
            },
            workload: "11-line two-stage Dockerfile on busybox".into(),
            cold: vec![
                lifecycle_series(
                    "isola",
                    "isola build",
                    vec![900.0, 1100.0],
                    &[("buildah", 0.45)],
                ),
                lifecycle_series(
                    "buildah",
                    "buildah bud --layers",
                    vec![2200.0, 2300.0],
                    &[("isola", 2.2)],
                ),
            ],
            cached: vec![
                lifecycle_series(
                    "isola",
                    "isola build",
                    vec![40.0, 44.0],
                    &[("buildah", 0.04)],
                ),
                lifecycle_series(
                    "buildah",
                    "buildah bud --layers",
                    vec![1000.0, 1100.0],
                    &[("isola", 25.0)],
                ),
            ],
            goals: vec![Goal {
                key: "cached_ms".into(),
                label: "isola build, every step cached (median)".into(),
                limit: 100.0,
                unit: "ms".into(),
                value: Some(44.0),
                met: Some(true),
            }],
        }),
        oci: Some(Oci {
            runtime: IsolaBuild {
                path: "/usr/local/bin/isola-runtime".into(),
                profile: "release, static".into(),
                bytes: 9_000_000,
            },
            cgroup_view: None,
            workload: "/bin/true in a busybox (static) bundle".into(),
            create_start_delete: vec![
                lifecycle_series(
                    "container",
                    "isola-runtime create, start, (reaped), delete",
                    vec![9.0, 10.0],
                    &[("runc", 0.31)],
                ),
                lifecycle_series(
                    "runc",
                    "runc create, start, (reaped), delete",
                    vec![30.0, 32.0],
                    &[("container", 3.2)],
                ),
            ],
            steps: vec![OciSteps {
                subject: "container".into(),
                median_ms: vec![
                    ("create".into(), 5.0),
                    ("start".into(), 1.5),
                    ("exited".into(), 0.5),
                    ("delete".into(), 2.5),
                ],
            }],
            run: vec![lifecycle_series(
                "container",
                "isola-runtime run",
                vec![8.0, 9.0],
                &[("runc", 0.33)],
            )],
            containerd: Some(OciContainerd {
                label: "containerd 1.6.20~ds1".into(),
                first: vec![
                    ColdStart {
                        subject: "container".into(),
                        ms: 390.0,
                    },
                    ColdStart {
                        subject: "runc".into(),
                        ms: 180.0,
                    },
                ],
                warm: vec![lifecycle_series(
                    "container",
                    "ctr run --rm --runc-binary isola-runtime",
                    vec![80.0, 90.0],
                    &[("runc", 0.7)],
                )],
            }),
            goals: vec![Goal {
                key: "vs_crun".into(),
                label: "isola-runtime create+start+delete against crun (paired)".into(),
                limit: 1.0,
                unit: "x".into(),
                value: None,
                met: None,
            }],
        }),
        errors: vec![RunError {
            subject: "runc".into(),
            dimension: "startup".into(),
            message: "runc: <script>alert('x')</script> & cgroups in hybrid mode not supported"
                .into(),
        }],
    }
}
