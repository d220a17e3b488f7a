//! Reconcile-core benchmark: cost of one pass at 1, 1,000 and 10,000
//! listeners, cold (no runtime state) and warm (one file changed).
//! Run: cargo bench --bench reconcile

use skupperd::certs::MemoMint;
use skupperd::plan::{self, read_prior, Inputs, Platform, RouterState};
use skupperd::resources::{load_file as parse_file, DecodedFile as ParsedFile};
use skupperd::store::ports::FixedPorts;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn listener(i: usize, port: usize) -> String {
    format!("apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: l{i}\nspec:\n  host: 127.0.0.1\n  port: {port}\n")
}

fn files(n: usize) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert(
        "input/resources/site.yaml".to_string(),
        "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\n".to_string(),
    );
    for i in 0..n {
        f.insert(format!("input/resources/l{i}.yaml"), listener(i, 10000 + i));
    }
    f
}

fn pass(
    parsed: &BTreeMap<String, ParsedFile>,
    runtime: &BTreeMap<String, Vec<u8>>,
    prior: &plan::Prior,
    memo: &mut plan::Memo,
) -> plan::Outcome {
    let certs = skupperd::validate::InputCerts::default();
    let inputs = Inputs {
        namespace: "west",
        namespace_path: "/data/namespaces/west",
        platform: Ok(Platform::Linux),
        hostname: "h",
        addresses: &[],
        version: "0.1.0",
        now: time::OffsetDateTime::now_utc(),
        files: parsed,
        certs: &certs,
        issuers: &certs,
        renew_before: skupperd::certs::DEFAULT_RENEW_BEFORE,
        runtime,
        prior,
        router: RouterState::default(),
        trigger: "input",
        notices: &[],
    };
    plan::reconcile_with(
        &inputs,
        memo,
        &mut MemoMint::new(1),
        &mut FixedPorts(BTreeSet::new()),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    // SKUPPERD_BENCH_SIZES=10000 limits the run, e.g. for profiling.
    let sizes: Vec<usize> = std::env::var("SKUPPERD_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 1_000, 10_000]);
    for n in sizes {
        let texts = files(n);
        let t = Instant::now();
        let parsed: BTreeMap<String, ParsedFile> = texts
            .iter()
            .map(|(p, t)| (p.clone(), parse_file(p, t.as_bytes())))
            .collect();
        let parse = t.elapsed();
        let prior0 = read_prior(&BTreeMap::new());
        let t = Instant::now();
        let cold = pass(&parsed, &BTreeMap::new(), &prior0, &mut plan::Memo::new());
        let cold_t = t.elapsed();
        let mut runtime: BTreeMap<String, Vec<u8>> = cold
            .writes
            .iter()
            .map(|(p, f)| (p.clone(), f.content().into_owned()))
            .collect();
        // What a restart pays: the runtime records read back.
        let t = Instant::now();
        let mut prior = read_prior(&runtime);
        let prior_t = t.elapsed();
        let rounds = std::env::var("SKUPPERD_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(5);
        // SKUPPERD_BENCH_COMPARE=0 skips the passes from nothing (profiling).
        let compare = std::env::var("SKUPPERD_BENCH_COMPARE").map_or(true, |v| v != "0");
        let mut parsed = parsed;
        let p = "input/resources/l0.yaml".to_string();
        // As the namespace actor does: the memo and the outcome's prior
        // state carried from pass to pass, writes applied to `runtime`.
        // The first pass after a start settles the memo on the records.
        let mut memo = plan::Memo::new();
        let mut warm = Vec::new();
        let mut fresh = Vec::new();
        for round in 0..=rounds {
            parsed.insert(
                p.clone(),
                parse_file(&p, listener(0, 20000 + round).as_bytes()),
            );
            if compare {
                let t = Instant::now();
                let outcome = pass(&parsed, &runtime, &prior, &mut plan::Memo::new());
                fresh.push(t.elapsed());
                drop(outcome);
            }
            let t = Instant::now();
            let outcome = pass(&parsed, &runtime, &prior, &mut memo);
            if round > 0 {
                warm.push(t.elapsed());
            }
            for d in &outcome.deletes {
                runtime.remove(d);
            }
            for (path, f) in outcome.writes {
                runtime.insert(path, f.into_content());
            }
            outcome.prior.apply(&mut prior);
        }
        println!(
            "listeners={n:>6} parse={parse:?} cold_reconcile={cold_t:?} read_prior={prior_t:?} one_change_median: memoised={:?} from_nothing={:?}",
            median(warm),
            median(fresh)
        );
    }
}
