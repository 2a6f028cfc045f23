//! Is what the user wrote right? Every check here has a span and a message that says what is
//! allowed; all problems are collected, so one build reports them all.

use std::cell::RefCell;
use std::fmt::Display;

use quote::ToTokens;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Type};

use syn::LitStr;

use crate::args::Args;
use crate::spec;

/// Collects errors, so a user with three mistakes learns of all three at once.
#[derive(Default)]
pub struct Ctxt {
    errors: RefCell<Vec<syn::Error>>,
}

impl Ctxt {
    pub fn error(&self, at: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(at, message));
    }

    pub fn push(&self, err: syn::Error) {
        self.errors.borrow_mut().push(err);
    }

    /// All errors combined, or `None` if there were none.
    pub fn finish(self) -> Option<syn::Error> {
        self.errors.into_inner().into_iter().reduce(|mut all, err| {
            all.combine(err);
            all
        })
    }
}

/// A job proven valid: everything expansion needs, already normalised.
pub struct Job {
    pub name: String,
    pub schedule: String,
    pub tz: String,
    pub allow_overlap: bool,
    pub timeout_ms: Option<u64>,
    pub grace_ms: Option<u64>,
    pub takes_context: bool,
    pub krate: syn::Path,
    /// Where to point a type error about the return type.
    pub output_span: proc_macro2::Span,
}

/// Checks the options and the function; `None` when anything is wrong (and `cx` says what).
pub fn job(args: Args, func: &ItemFn, cx: &Ctxt) -> Option<Job> {
    let schedule = match &args.schedule {
        Some(arg) => check(cx, arg, spec::parse_cron).map(|_| arg.value().trim().to_string()),
        None => {
            if args.complete && !args.wrote("schedule") {
                cx.push(syn::Error::new(
                    args.span,
                    "missing `schedule`; add one, e.g. #[fourit::job(schedule = \"*/5 * * * *\")]",
                ));
            }
            None
        }
    };
    let name = match &args.name {
        Some(arg) => check(cx, arg, |name| {
            spec::check_name(name).map(|()| name.to_string())
        }),
        None => Some(func.sig.ident.unraw().to_string()),
    };
    let tz = match &args.tz {
        Some(arg) => check(cx, arg, |tz| {
            spec::parse_tz(tz).map(|tz| tz.name().to_string())
        }),
        None => Some("UTC".to_string()),
    };
    let allow_overlap = match &args.overlap {
        Some(arg) => check(cx, arg, |policy| match policy {
            "skip" => Ok(false),
            "allow" => Ok(true),
            other => Err(format!(
                "unknown overlap policy `{other}`; use \"skip\" (the default: a tick is skipped \
                 while the previous run still runs) or \"allow\""
            )),
        }),
        None => Some(false),
    };
    let timeout_ms = duration(cx, args.timeout.as_ref());
    let grace_ms = duration(cx, args.grace.as_ref());
    let krate = match &args.krate {
        Some(arg) => arg
            .parse::<syn::Path>()
            .map_err(|_| cx.error(arg, "`crate` takes a path, e.g. crate = \"my_app::fourit\""))
            .ok(),
        None => Some(syn::parse_quote!(::fourit)),
    };
    let takes_context = check_signature(func, cx);
    let output_span = match &func.sig.output {
        ReturnType::Default => func.sig.ident.span(),
        ReturnType::Type(_, ty) => error_type(ty).unwrap_or(ty).span(),
    };
    Some(Job {
        name: name?,
        schedule: schedule?,
        tz: tz?,
        allow_overlap: allow_overlap?,
        timeout_ms: timeout_ms?,
        grace_ms: grace_ms?,
        takes_context: takes_context?,
        krate: krate?,
        output_span,
    })
}

/// Runs `f` on the option's text, reporting its error at the string literal.
fn check<T>(cx: &Ctxt, arg: &LitStr, f: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
    f(&arg.value())
        .map_err(|message| cx.error(arg, message))
        .ok()
}

fn duration(cx: &Ctxt, arg: Option<&LitStr>) -> Option<Option<u64>> {
    match arg {
        None => Some(None),
        Some(arg) => check(cx, arg, spec::parse_duration)
            .map(|d| Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
    }
}

/// Checks the function's shape; returns whether it takes a `JobContext`.
fn check_signature(func: &ItemFn, cx: &Ctxt) -> Option<bool> {
    let sig = &func.sig;
    let before = cx.errors.borrow().len();
    if sig.asyncness.is_none() {
        cx.error(
            sig.fn_token,
            format!(
                "a fourit job must be an `async fn`; write `async fn {}`",
                sig.ident
            ),
        );
    }
    if let Some(constness) = &sig.constness {
        cx.error(constness, "a fourit job cannot be a `const fn`");
    }
    if let Some(unsafety) = &sig.unsafety {
        cx.error(
            unsafety,
            "a fourit job cannot be an `unsafe fn`: the scheduler calls it with no safety \
             contract to uphold; make it safe and use `unsafe` blocks inside",
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error(abi, "a fourit job cannot have an `extern` ABI");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        // `Generics` prints its parameters only; a lone `where` clause is spanned on its own.
        let at = if sig.generics.params.is_empty() {
            sig.generics.where_clause.to_token_stream()
        } else {
            sig.generics.to_token_stream()
        };
        cx.error(
            at,
            "a fourit job cannot be generic: the scheduler must know the one function to call; \
             remove the type, lifetime or const parameters",
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error(variadic, "a fourit job cannot be variadic");
    }
    let mut takes_context = false;
    for (index, input) in sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(receiver) => cx.error(
                receiver,
                "a fourit job must be a free function, not a method: remove `self` and define \
                 it outside the `impl` block",
            ),
            FnArg::Typed(typed) if index == 0 && is_job_context(&typed.ty) => takes_context = true,
            FnArg::Typed(typed) => cx.error(
                typed,
                "a fourit job takes no argument or one `fourit::JobContext` (the tick, fence \
                 token, node id and cancellation of the run)",
            ),
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && !is_unit_or_unit_result(ty)
    {
        cx.error(
            ty,
            "a fourit job returns `()` or `Result<(), E>` where `E: std::fmt::Display` \
             (the error is recorded as the run's outcome)",
        );
    }
    (cx.errors.borrow().len() == before).then_some(takes_context)
}

fn is_job_context(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|seg| seg.ident == "JobContext" && seg.arguments.is_none()),
        Type::Paren(inner) => is_job_context(&inner.elem),
        _ => false,
    }
}

fn is_unit(ty: &Type) -> bool {
    match ty {
        Type::Tuple(tuple) => tuple.elems.is_empty(),
        Type::Paren(inner) => is_unit(&inner.elem),
        _ => false,
    }
}

/// `E` in `Result<(), E>`: where a type error about it belongs.
fn error_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let PathArguments::AngleBracketed(args) = &path.path.segments.last()?.arguments else {
        return None;
    };
    match args.args.iter().nth(1) {
        Some(GenericArgument::Type(error)) => Some(error),
        _ => None,
    }
}

/// `()`, `Result<(), E>`, or an alias such as `anyhow::Result<()>` / `io::Result<()>`.
fn is_unit_or_unit_result(ty: &Type) -> bool {
    if is_unit(ty) {
        return true;
    }
    let Type::Path(path) = ty else {
        return false;
    };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    if last.ident != "Result" {
        return false;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    matches!(args.args.first(), Some(GenericArgument::Type(ok)) if is_unit(ok))
}
