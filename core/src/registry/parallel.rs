//! A few blobs at a time: the pull's downloads and the push's uploads run
//! on a small pool of threads; the first failure stops the rest.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Call `work` on each item from `workers` threads, in no set order. On the
/// first error, `cancel` is set (long-running work checks it) and no new
/// item starts; that error is returned. Otherwise the results by position.
pub fn each<T: Sync, R: Send, E: Send>(
    items: &[T],
    workers: usize,
    cancel: &AtomicBool,
    work: impl Fn(usize, &T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(items.len()));
    let failed = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let at = next.fetch_add(1, Ordering::SeqCst);
                if at >= items.len() || cancel.load(Ordering::SeqCst) {
                    return;
                }
                match work(at, &items[at]) {
                    Ok(r) => done.lock().unwrap_or_else(|e| e.into_inner()).push((at, r)),
                    Err(e) => {
                        let mut f = failed.lock().unwrap_or_else(|e| e.into_inner());
                        // Errors after the first are mostly "stopped because
                        // another failed": the first one is the cause.
                        if f.is_none() && !cancel.swap(true, Ordering::SeqCst) {
                            *f = Some(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(at, _)| *at);
    Ok(done.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_stops_at_the_first_error() {
        let cancel = AtomicBool::new(false);
        let out: Result<Vec<u32>, ()> = each(&[1, 2, 3, 4, 5], 3, &cancel, |_, x| Ok(x * 10));
        assert_eq!(out, Ok(vec![10, 20, 30, 40, 50]));
        let cancel = AtomicBool::new(false);
        let out: Result<Vec<u32>, String> = each(&[1, 2, 3], 1, &cancel, |i, _| {
            if i == 1 {
                Err(format!("item {i}"))
            } else {
                Ok(0)
            }
        });
        assert_eq!(out, Err("item 1".to_string()));
        assert!(cancel.load(Ordering::SeqCst));
    }
}
