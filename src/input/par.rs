//! Spreading independent per-file work over the machine's cores.
//!
//! Startup reads and parses one file per resource (ten thousand of them
//! in a big namespace) while every other core is idle; the work items are
//! independent, so a few scoped threads over contiguous chunks cut the
//! wall time without changing the result or its order.

/// Below this many items the threads cost more than they save.
pub const MIN_PARALLEL: usize = 256;
/// More threads than this only contend for the same disk and allocator.
const MAX_THREADS: usize = 4;

/// `items.iter().map(f).collect()`, computed on up to [`MAX_THREADS`]
/// threads when there are enough items; same order either way. A chunk
/// whose thread cannot be started runs on the calling thread; a panic in
/// `f` is resumed on the calling thread, as if it had run there.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(MAX_THREADS);
    if threads < 2 || items.len() < MIN_PARALLEL {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let jobs: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let spawned = std::thread::Builder::new()
                    .name("skupperd-par".to_string())
                    .spawn_scoped(scope, move || part.iter().map(f).collect::<Vec<R>>());
                (part, spawned.ok())
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for (part, handle) in jobs {
            match handle.map(|h| h.join()) {
                Some(Ok(done)) => out.extend(done),
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => out.extend(part.iter().map(f)),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_order_of_the_items() {
        for n in [0, 1, MIN_PARALLEL - 1, MIN_PARALLEL, 10_007] {
            let items: Vec<usize> = (0..n).collect();
            let out = map(&items, |i| i * 3);
            assert_eq!(out, items.iter().map(|i| i * 3).collect::<Vec<_>>(), "{n}");
        }
    }

    #[test]
    #[should_panic(expected = "item 700")]
    fn a_panic_reaches_the_caller() {
        let items: Vec<usize> = (0..2_000).collect();
        map(&items, |&i| {
            if i == 700 {
                panic!("item 700");
            }
            i
        });
    }
}
