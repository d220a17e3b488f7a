//! The `none` runner (platform.md 3): skupperd writes every file and starts
//! nothing. A router started by hand is still used over management.

use super::{RouterDefinition, RouterProcessState, Runner, RunnerFuture};

#[derive(Debug, Default)]
pub struct NoneRunner;

impl NoneRunner {
    pub fn new() -> NoneRunner {
        NoneRunner
    }
}

impl Runner for NoneRunner {
    fn ensure<'a>(&'a mut self, _def: &'a RouterDefinition) -> RunnerFuture<'a> {
        Box::pin(async { Ok(()) })
    }

    fn restart(&mut self) -> RunnerFuture<'_> {
        Box::pin(async { Ok(()) })
    }

    fn stop(&mut self) -> RunnerFuture<'_> {
        Box::pin(async { Ok(()) })
    }

    fn state(&self) -> RouterProcessState {
        RouterProcessState::NotCreated
    }

    fn last_exit(&self) -> Option<super::RouterExit> {
        None
    }

    fn restarts(&self) -> u32 {
        0
    }

    fn name(&self) -> &'static str {
        "none"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[tokio::test]
    async fn the_none_runner_never_creates_a_router() {
        let mut r: Box<dyn Runner> = Box::new(NoneRunner::new());
        let def = RouterDefinition {
            namespace: "ns".into(),
            config_path: PathBuf::from("/nonexistent/skrouterd.json"),
            site_id: "id".into(),
            binary: PathBuf::from("/nonexistent/skrouterd"),
        };
        r.ensure(&def).await.unwrap();
        r.restart().await.unwrap();
        assert_eq!(r.state(), RouterProcessState::NotCreated);
        r.stop().await.unwrap();
        assert_eq!(r.state(), RouterProcessState::NotCreated);
        assert_eq!(r.name(), "none");
        assert_eq!(r.last_exit(), None);
        assert_eq!(r.restarts(), 0);
    }
}
