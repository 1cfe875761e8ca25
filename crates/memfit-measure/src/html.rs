//! HTML report of a run.
use crate::RunReport;

pub fn render(_report: &RunReport) -> String {
    String::new()
}
