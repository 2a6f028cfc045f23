//! UI tests live in ui.rs, fail/ and pass/.
