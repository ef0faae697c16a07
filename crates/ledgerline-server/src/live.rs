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
