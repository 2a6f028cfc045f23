//! What `#[fourit::job]` generates: the function unchanged, plus its registration.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ItemFn;

use crate::args::Args;
use crate::validate::{self, Ctxt};

/// Entry point: parse, validate, expand. On any error the function is still emitted, so the
/// IDE keeps working inside it, next to every error found.
pub fn job(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let err = syn::Error::new_spanned(
                &item,
                "#[fourit::job] goes on an `async fn`, e.g. `async fn report() { ... }`",
            );
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
    let call_fn = format_ident!("__fourit_call_{}", syn::ext::IdentExt::unraw(ident));
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
    let call = if *takes_context {
        quote!(#ident(ctx))
    } else {
        quote!({
            ::core::mem::drop(ctx);
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
    // Spanned at the return type, so a non-Display error type is reported there.
    let into_result = quote_spanned!(job.output_span=> #private::IntoJobResult::into_job_result);
    let line = quote_spanned!(ident.span()=> ::core::line!());
    quote! {
        #func

        #[doc(hidden)]
        #[allow(non_snake_case)]
        fn #call_fn(
            ctx: #job_context,
        ) -> #private::BoxFuture<'static, #private::JobResult> {
            #private::Box::pin(async move { #into_result(#call.await) })
        }

        #private::inventory::submit! {
            #private::JobDefinition {
                name: #name,
                schedule: #schedule,
                tz: #tz,
                overlap: #overlap,
                timeout_ms: #timeout_ms,
                grace_ms: #grace_ms,
                file: ::core::file!(),
                line: #line,
                call: #call_fn,
            }
        }
    }
}
