//! What `#[fourit::job]` generates: the function unchanged, plus its registration.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::ItemFn;

use crate::args::Args;
use crate::validate::{self, Ctxt};

/// Entry point: parse, validate, expand. On any error the function is still emitted, so the
/// IDE keeps working inside it, next to every error found.
pub fn job(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(err) => {
            let is_fn = item
                .clone()
                .into_iter()
                .any(|token| matches!(&token, TokenTree::Ident(ident) if ident == "fn"));
            let err = if is_fn {
                // A function that does not parse (the compiler says why, too): say where.
                syn::Error::new(
                    err.span(),
                    format!("#[fourit::job] cannot read this function: {err}"),
                )
            } else {
                syn::Error::new_spanned(
                    &item,
                    "#[fourit::job] goes on an `async fn`, e.g. `async fn report() { ... }`",
                )
            };
            let error = err.to_compile_error();
            return quote! { #error #item };
        }
    };
    let cx = Ctxt::default();
    let args = Args::parse(attr, &cx);
    let job = validate::job(args, &func, &cx);
    match (cx.finish(), job) {
        (None, Some(job)) => registration(&func, &job),
        (Some(err), _) => {
            let error = err.to_compile_error();
            quote! { #error #func }
        }
        (None, None) => quote! { #func },
    }
}

/// Every path into the `fourit` crate that generated code uses, in one place.
struct Paths {
    root: syn::Path,
}

impl Paths {
    fn private(&self) -> TokenStream {
        let root = &self.root;
        quote!(#root::__private)
    }

    fn job_context(&self) -> TokenStream {
        let root = &self.root;
        quote!(#root::JobContext)
    }
}

fn registration(func: &ItemFn, job: &validate::Job) -> TokenStream {
    let paths = Paths {
        root: job.krate.clone(),
    };
    let private = paths.private();
    let job_context = paths.job_context();
    let ident = &func.sig.ident;
    // One named item per job holds everything generated. Named, because it is an associated
    // const when the attribute is (wrongly) put on a function in an `impl` block: the only error
    // then is that the function is not found, rather than errors from inside `inventory`.
    let holder = format_ident!("__FOURIT_JOB_{}", syn::ext::IdentExt::unraw(ident));
    let validate::Job {
        name,
        schedule,
        tz,
        allow_overlap,
        timeout_ms,
        grace_ms,
        takes_context,
        ..
    } = job;
    // Generated names start with `__fourit_`, so they cannot shadow the user's.
    let call = if *takes_context {
        quote!(#ident(__fourit_ctx))
    } else {
        quote!({
            ::core::mem::drop(__fourit_ctx);
            #ident()
        })
    };
    let overlap = if *allow_overlap {
        quote!(#private::Overlap::Allow)
    } else {
        quote!(#private::Overlap::Skip)
    };
    let option = |ms: &Option<u64>| match ms {
        Some(ms) => quote!(::core::option::Option::Some(#ms)),
        None => quote!(::core::option::Option::None),
    };
    let timeout_ms = option(timeout_ms);
    let grace_ms = option(grace_ms);
    // Every token of the conversion, its argument included, is spanned at the return type, so
    // an error type that is not `Display` is reported there rather than at the attribute.
    let into_result = respan(
        quote!(#private::IntoJobResult::into_job_result(__fourit_output)),
        job.output_span,
    );
    let output = proc_macro2::Ident::new("__fourit_output", job.output_span);
    let line = quote_spanned!(ident.span()=> ::core::line!());
    quote! {
        #func

        #[doc(hidden)]
        #[allow(dead_code, non_upper_case_globals)]
        const #holder: () = {
            fn __fourit_call(
                __fourit_ctx: #job_context,
            ) -> #private::BoxFuture<'static, #private::JobResult> {
                #private::Box::pin(async move {
                    let #output = #call.await;
                    #into_result
                })
            }

            #private::inventory::submit! {
                #private::Registration {
                    name: #name,
                    schedule: #schedule,
                    tz: #tz,
                    overlap: #overlap,
                    timeout_ms: #timeout_ms,
                    grace_ms: #grace_ms,
                    file: ::core::file!(),
                    line: #line,
                    call: __fourit_call,
                }
            }
        };
    }
}

/// The tokens with every span, inside groups too, set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                TokenTree::Group(respanned)
            }
            mut token => {
                token.set_span(span);
                token
            }
        })
        .collect()
}
