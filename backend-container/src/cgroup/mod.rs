//! Cgroup managers (v1 and v2): limits, membership, statistics, teardown.
