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
    /// For the wave names of end lines.
    plan: Arc<ExpandedPlan>,
}

impl FileJournal {
    pub fn new(file: JournalFile, plan: Arc<ExpandedPlan>) -> Self {
        FileJournal { file, plan }
    }
}

impl Journal for FileJournal {
    fn before_put<'a>(&'a self, intent: PutIntent<'a>) -> BoxFuture<'a, Result<(), JournalError>> {
        let record = Record::intent(&intent, jiff::Timestamp::now());
        let durable = self.file.append(&record);
        Box::pin(async move { durable.await.map_err(JournalError::from) })
    }

    /// On the engine's thread only the clone of the result; turning it into the journal's
    /// record and encoding it are the writer thread's work.
    fn finished(&self, result: &OperationResult) -> Result<(), JournalError> {
        let wave = self.plan.wave_name(result.wave).to_owned();
        let result = result.clone();
        self.file
            .record_with(move || Record::finished(wave, result))
            .map_err(JournalError::from)
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        let durable = self.file.sync();
        Box::pin(async move { durable.await.map_err(JournalError::from) })
    }
}
