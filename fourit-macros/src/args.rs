//! What the user wrote in `#[fourit::job(...)]`, parsed but not yet judged.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, Lit, LitStr, Token};

use crate::spec;
use crate::validate::Ctxt;

/// The options a job accepts, in the order the docs list them.
pub const OPTIONS: [&str; 7] = [
    "schedule", "name", "tz", "overlap", "timeout", "grace", "crate",
];

/// The attribute's arguments, each kept with its key for error spans.
pub struct Args {
    pub schedule: Option<LitStr>,
    pub name: Option<LitStr>,
    pub tz: Option<LitStr>,
    pub overlap: Option<LitStr>,
    pub timeout: Option<LitStr>,
    pub grace: Option<LitStr>,
    pub krate: Option<LitStr>,
    /// The attribute, for errors about what is missing.
    pub span: Span,
    /// Whether the whole attribute parsed; if not, options after the syntax error were never
    /// read, so none of them is reported missing.
    pub complete: bool,
    /// The options written, even those whose value was rejected (so a bad value is not also
    /// reported as a missing option).
    pub written: Vec<String>,
}

impl Args {
    /// Parses the arguments, recording every problem in `cx` and keeping what parsed.
    pub fn parse(tokens: TokenStream, cx: &Ctxt) -> Args {
        // The attribute as a whole: where a missing option is reported.
        let span = Span::call_site();
        let mut args = Args {
            schedule: None,
            name: None,
            tz: None,
            overlap: None,
            timeout: None,
            grace: None,
            krate: None,
            span,
            complete: true,
            written: Vec::new(),
        };
        // syn's own message, completed with what the attribute expects.
        let syntax = |err: syn::Error| {
            syn::Error::new(
                err.span(),
                format!(
                    "{err}; write options as `key = \"value\"` separated by commas, e.g. \
                     #[fourit::job(schedule = \"*/5 * * * *\")]"
                ),
            )
        };
        let parser = |input: ParseStream| -> syn::Result<()> {
            while !input.is_empty() {
                let key = input.call(Ident::parse_any).map_err(syntax)?;
                if !input.peek(Token![=]) {
                    let name = key.to_string();
                    let message = if OPTIONS.contains(&name.as_str()) {
                        format!(
                            "option `{name}` needs a value; write `{name} = \"{}\"`",
                            example(&name)
                        )
                    } else {
                        unknown_option(&name).0
                    };
                    return Err(syn::Error::new(key.span(), message));
                }
                input.parse::<Token![=]>()?;
                let value: Expr = input.parse().map_err(syntax)?;
                args.record(key, value, cx);
                if input.is_empty() {
                    break;
                }
                input.parse::<Token![,]>().map_err(syntax)?;
            }
            Ok(())
        };
        if let Err(err) = parser.parse2(tokens) {
            args.complete = false;
            cx.push(err);
        }
        args
    }

    /// Whether the option was written, with a valid value or not.
    pub fn wrote(&self, option: &str) -> bool {
        self.written.iter().any(|written| written == option)
    }

    fn record(&mut self, key: Ident, value: Expr, cx: &Ctxt) {
        self.written.push(key.to_string());
        let slot = match key.to_string().as_str() {
            "schedule" => &mut self.schedule,
            "name" => &mut self.name,
            "tz" => &mut self.tz,
            "overlap" => &mut self.overlap,
            "timeout" => &mut self.timeout,
            "grace" => &mut self.grace,
            "crate" => &mut self.krate,
            other => {
                let (message, intended) = unknown_option(other);
                // A misspelt `schedule` is reported as such, not also as missing.
                self.written.extend(intended.map(str::to_string));
                cx.error(&key, message);
                return;
            }
        };
        let value = match value {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Str(value),
                ..
            }) => value,
            other => {
                cx.error(
                    &other,
                    format!(
                        "`{key}` takes a string literal, e.g. {key} = \"{}\"",
                        example(&key.to_string())
                    ),
                );
                return;
            }
        };
        if slot.is_some() {
            cx.error(&key, format!("option `{key}` is given twice; keep one"));
            return;
        }
        *slot = Some(value);
    }
}

/// The message for an option fourit does not know, with the likely intended one if any.
fn unknown_option(name: &str) -> (String, Option<&'static str>) {
    let known = OPTIONS
        .iter()
        .map(|option| format!("`{option}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let intended = match name.to_ascii_lowercase().as_str() {
        "timezone" | "time_zone" | "zone" => Some("tz"),
        "cron" | "every" | "when" => Some("schedule"),
        "overlapping" | "concurrency" => Some("overlap"),
        "deadline" | "max_duration" => Some("timeout"),
        lower => OPTIONS.iter().copied().find(|option| {
            spec::edit_distance(lower, option) <= (lower.len().min(option.len()) / 3).max(1)
        }),
    };
    let message = match intended {
        Some(option) => {
            format!("unknown option `{name}`; did you mean `{option}`? A job takes {known}")
        }
        None => format!("unknown option `{name}`; a job takes {known}"),
    };
    (message, intended)
}

fn example(key: &str) -> &'static str {
    match key {
        "schedule" => "*/5 * * * *",
        "name" => "report",
        "tz" => "Europe/Berlin",
        "overlap" => "skip",
        "timeout" | "grace" => "90s",
        _ => "fourit",
    }
}
