//! What the user wrote in `#[fourit::job(...)]`, parsed but not yet judged.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, Lit, LitStr, Token};

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
        };
        let parser = |input: ParseStream| -> syn::Result<()> {
            while !input.is_empty() {
                let key = input.call(Ident::parse_any)?;
                input.parse::<Token![=]>()?;
                let value: Expr = input.parse()?;
                args.record(key, value, cx);
                if input.is_empty() {
                    break;
                }
                input.parse::<Token![,]>()?;
            }
            Ok(())
        };
        if let Err(err) = parser.parse2(tokens) {
            cx.push(syn::Error::new(
                err.span(),
                format!(
                    "{err}; write options as `key = \"value\"` separated by commas, e.g. \
                     #[fourit::job(schedule = \"*/5 * * * *\")]"
                ),
            ));
        }
        args
    }

    fn record(&mut self, key: Ident, value: Expr, cx: &Ctxt) {
        let slot = match key.to_string().as_str() {
            "schedule" => &mut self.schedule,
            "name" => &mut self.name,
            "tz" => &mut self.tz,
            "overlap" => &mut self.overlap,
            "timeout" => &mut self.timeout,
            "grace" => &mut self.grace,
            "crate" => &mut self.krate,
            other => {
                cx.error(
                    &key,
                    format!(
                        "unknown option `{other}`; a job takes {}",
                        OPTIONS
                            .iter()
                            .map(|o| format!("`{o}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
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
