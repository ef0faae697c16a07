//! Live job states for the events stream: one `watch` channel per job that
//! is queued or running in this process, fed by the runner from the bulk
//! processor's progress events (never by polling the store).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ledgerline_api::JobStatus;
use ledgerline_core::CancelToken;
use tokio::sync::watch;

/// One job's channel and its cancel token while it runs here.
struct Entry {
    status: watch::Sender<JobStatus>,
    cancel: Option<CancelToken>,
}

/// The jobs this process knows live.
#[derive(Clone, Default)]
pub(crate) struct Live {
    jobs: Arc<Mutex<HashMap<String, Entry>>>,
}

impl Live {
    /// A receiver of `status.job_id`'s changes, the channel created with
    /// `status` when there is none yet.
    pub(crate) fn subscribe(&self, status: &JobStatus) -> watch::Receiver<JobStatus> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.entry(status.job_id.clone())
            .or_insert_with(|| Entry {
                status: watch::Sender::new(status.clone()),
                cancel: None,
            })
            .status
            .subscribe()
    }

    /// Publishes `status` to the job's subscribers (creating the channel).
    /// A finished state is the last: the channel is then dropped, and its
    /// receivers see the final value and the end.
    pub(crate) fn publish(&self, status: JobStatus) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let finished = status.state.is_finished();
        let id = status.job_id.clone();
        match jobs.get(&id) {
            Some(entry) => {
                entry.status.send_replace(status);
            }
            None if !finished => {
                jobs.insert(
                    id.clone(),
                    Entry {
                        status: watch::Sender::new(status),
                        cancel: None,
                    },
                );
            }
            None => {}
        }
        if finished {
            jobs.remove(&id);
        }
    }

    /// The job's latest state, when it is live here.
    pub(crate) fn current(&self, job: &str) -> Option<JobStatus> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(job).map(|e| e.status.borrow().clone())
    }

    /// The jobs live here.
    pub(crate) fn watched(&self) -> Vec<String> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.keys().cloned().collect()
    }

    /// Records the token that cancels `job` while it runs here.
    pub(crate) fn set_cancel(&self, job: &str, token: CancelToken) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = jobs.get_mut(job) {
            entry.cancel = Some(token);
        }
    }

    /// Trips `job`'s token if it runs here; `false` otherwise.
    pub(crate) fn cancel(&self, job: &str) -> bool {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        match jobs.get(job).and_then(|e| e.cancel.as_ref()) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgerline_api::{JobProgress, JobState};

    fn status(state: JobState) -> JobStatus {
        JobStatus {
            job_id: "j".into(),
            state,
            use_optimized: true,
            progress: JobProgress::default(),
            files: Vec::new(),
            created_at: String::new(),
            started_at: None,
            finished_at: None,
            metrics: serde_json::json!({}),
            error: None,
            outputs: Default::default(),
        }
    }

    #[test]
    fn a_final_state_closes_the_channel_and_forgets_the_job() {
        let live = Live::default();
        let mut rx = live.subscribe(&status(JobState::Queued));
        live.publish(status(JobState::Running));
        assert_eq!(live.current("j").map(|s| s.state), Some(JobState::Running));
        live.publish(status(JobState::Succeeded));
        assert_eq!(live.current("j"), None, "an ended job is still held");
        // The receiver sees the final state, then the end.
        assert_eq!(rx.borrow_and_update().state, JobState::Succeeded);
        assert!(rx.has_changed().is_err(), "the channel is still open");
        // A late subscriber re-creates a channel; the final state, published
        // again, forgets it (what the events handler does in that race).
        let _late = live.subscribe(&status(JobState::Running));
        assert!(live.current("j").is_some());
        live.publish(status(JobState::Succeeded));
        assert_eq!(live.current("j"), None);
        // A cancel reaches only a job running here.
        assert!(!live.cancel("j"));
        let _rx = live.subscribe(&status(JobState::Running));
        let token = CancelToken::new();
        live.set_cancel("j", token.clone());
        assert!(live.cancel("j"));
        assert!(token.is_cancelled());
    }
}
