//! Reading an HTML form's body (`application/x-www-form-urlencoded`) by hand: the body is
//! taken as bytes, so a request is checked for its credential before its form is looked at.

/// The value of `name` in a form body, decoded.
pub(super) fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_form(key) == name).then(|| decode_form(value))
    })
}

/// `+` as space and `%XX` as its byte; a malformed escape is kept as it is.
fn decode_form(text: &str) -> String {
    crate::redact::percent_decoded(&text.replace('+', " "))
}
