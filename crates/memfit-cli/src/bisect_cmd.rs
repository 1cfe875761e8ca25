use anyhow::Result;

use crate::args::BisectArgs;

pub fn execute(_args: BisectArgs) -> Result<u8> {
    anyhow::bail!("bisect is not built yet")
}
