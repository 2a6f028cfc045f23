//! The `#[fourit::job]` attribute. Use it through the `fourit` crate, which re-exports it;
//! the generated code refers to `::fourit` only.
//!
//! The stages read like the data flows: [`args`] parses what the user wrote, [`validate`]
//! checks it with the very parser the run time uses (collecting every error), [`expand`]
//! generates the registration.

use proc_macro::TokenStream;

mod args;
mod expand;
mod validate;

// The checks of cron strings, names, durations and time zones, shared with the run time so
// both say the same thing about the same text.
#[allow(dead_code)]
#[path = "../../fourit/src/spec/mod.rs"]
mod spec;

/// Runs an `async fn` on a cron schedule, once per tick across the fleet.
///
/// ```ignore
/// #[fourit::job(schedule = "0 9 * * MON-FRI", tz = "Europe/Berlin", timeout = "10m")]
/// async fn morning_report(ctx: fourit::JobContext) -> Result<(), std::io::Error> {
///     Ok(())
/// }
/// ```
///
/// Options: `schedule` (required), `name`, `tz`, `overlap` (`"skip"` or `"allow"`),
/// `timeout`, `grace`, and `crate` (the path to fourit when it is re-exported elsewhere).
#[proc_macro_attribute]
pub fn job(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::job(attr.into(), item.into()).into()
}
