//! [`FileJournal`]: the journal file as the engine's [`Journal`] port.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::file::JournalFile;
use super::record::Record;
use crate::engine::{Journal, JournalError, OperationResult, PutIntent};
use crate::plan::resolved::ExpandedPlan;

/// The file journal as the engine sees it.
pub struct FileJournal {
    file: JournalFile,
    /// For the wave names of end lines, and the redactor that masks their free text.
    plan: Arc<ExpandedPlan>,
}

impl FileJournal {
    pub fn new(file: JournalFile, plan: Arc<ExpandedPlan>) -> Self {
        FileJournal { file, plan }
    }

    /// Records the end of `run`, once the engine returned it; resolves when it is durable.
    pub async fn run_ended(&self, run: &crate::engine::RunReport) -> Result<(), JournalError> {
        let record = Record::ended(run, &self.plan.redactor);
        self.file.append(&record).await.map_err(JournalError::from)
    }
}

impl Journal for FileJournal {
    fn before_put<'a>(&'a self, intent: PutIntent<'a>) -> BoxFuture<'a, Result<(), JournalError>> {
        let record = Record::intent(&intent, jiff::Timestamp::now());
        let durable = self.file.append(&record);
        Box::pin(async move { durable.await.map_err(JournalError::from) })
    }

    /// On the engine's thread only the clone of the result and the clock's reading; turning
    /// it into the journal's record, masking and encoding it are the writer thread's work.
    fn finished(&self, result: &OperationResult) -> Result<(), JournalError> {
        let wave = self.plan.wave_name(result.wave).to_owned();
        let result = result.clone();
        let at = jiff::Timestamp::now();
        let plan = Arc::clone(&self.plan);
        self.file
            .record_with(move || Record::finished(wave, result, at, &plan.redactor))
            .map_err(JournalError::from)
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        let durable = self.file.sync();
        Box::pin(async move { durable.await.map_err(JournalError::from) })
    }
}
