//! The jobs of this binary: those `#[fourit::job]` registered, checked for duplicate names.

use std::collections::HashMap;

use crate::error::Error;
use crate::job::{Job, Registration};

inventory::collect!(Registration);

/// Every job registered with `#[fourit::job]` in this binary, sorted by name.
///
/// A job defined in a library crate is listed only if that crate is linked into the binary:
/// a crate that nothing references is not linked. If the jobs live in `my_jobs`, reference it
/// once from the binary, e.g. `use my_jobs as _;`.
///
/// ```
/// for job in fourit::jobs()? {
///     println!("{} at {} ({})", job.name(), job.schedule(), job.location());
/// }
/// # Ok::<(), fourit::Error>(())
/// ```
///
/// Names are not checked for duplicates here: the scheduler refuses two jobs of one name when
/// it is built, naming both definitions.
pub fn jobs() -> Result<Vec<Job>, Error> {
    let mut jobs = inventory::iter::<Registration>
        .into_iter()
        .map(Job::from_definition)
        .collect::<Result<Vec<_>, _>>()?;
    jobs.sort_by(|a, b| {
        (a.name(), a.location().file, a.location().line).cmp(&(
            b.name(),
            b.location().file,
            b.location().line,
        ))
    });
    Ok(jobs)
}

/// Checks that no two jobs share a name, naming both definitions if they do.
pub(crate) fn check_unique_names(jobs: &[Job]) -> Result<(), Error> {
    let mut seen: HashMap<&str, &Job> = HashMap::with_capacity(jobs.len());
    for job in jobs {
        if let Some(first) = seen.insert(job.name(), job) {
            return Err(Error::DuplicateJob {
                name: job.name().to_string(),
                first: first.location().to_string(),
                second: job.location().to_string(),
            });
        }
    }
    Ok(())
}
