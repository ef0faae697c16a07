//! Small inputs: the prelude's session read, validated and merged on the
//! calling thread, with the same checks, cancellation and panic isolation
//! as the threaded paths (see `ledgerline_session::run_sequential`).

use std::time::Instant;

use ledgerline_core::{FileError, Report, RunContext};
use ledgerline_read::RecordReader;
use ledgerline_session::{self as session, Session};

use crate::OptimizedProcessor;

impl OptimizedProcessor {
    /// Finishes a started session on the calling thread.
    pub(crate) fn sequential(
        &self,
        session: Session,
        name: &str,
        reader: Box<dyn RecordReader>,
        run: &RunContext,
        started: Instant,
        prelude_seconds: f64,
    ) -> Result<Report, FileError> {
        let level = self.settings.optimization_level.clamp(1, 3);
        let mut report = session::run_sequential(
            "optimized",
            Some(level),
            session,
            name,
            reader,
            &self.settings,
            run,
            started,
        )?;
        report
            .metrics
            .stages
            .insert("prelude".into(), prelude_seconds);
        report
            .metrics
            .notes
            .push("small input: validated on the calling thread, without worker threads".into());
        Ok(report)
    }
}
