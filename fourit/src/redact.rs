//! The one URL redactor: what every log line, error, page and CLI output shows of a
//! coordinator URL. Secrets go, whatever characters they hold; everything else stays.

/// Query parameters whose values are secrets: any name that contains one of these words
/// (`password`, `sslpassword`, `sentinel_password`, `aws_secret_access_key`,
/// `aws_session_token`, `token`, ...). Other parameters (`sslmode`, `sslkey`, a file's path,
/// `target_session_attrs`, `region`) are shown as written.
const SECRET_WORDS: [&str; 3] = ["password", "secret", "token"];

/// The URL with every secret replaced by `***`, fit for logs and errors. Public as
/// `fourit::redact_url`.
///
/// The user-info ends at the **last** `@`, as the drivers read it, so a password holding an
/// unencoded `/`, `?`, `#`, `:` or `@` is hidden whole. In the query, the values of
/// parameters naming a password, secret or token are hidden, and nothing else.
///
/// ```
/// assert_eq!(
///     fourit::redact_url("redis://app:s3cret@cache:6379/2"),
///     "redis://app:***@cache:6379/2"
/// );
/// assert_eq!(fourit::redact_url("redis://:s3cret@cache"), "redis://:***@cache");
/// assert_eq!(fourit::redact_url("redis://cache:6379"), "redis://cache:6379");
/// assert_eq!(
///     fourit::redact_url("postgres://pg:pa/ss#w?rd@db/app?target_session_attrs=read-write"),
///     "postgres://pg:***@db/app?target_session_attrs=read-write"
/// );
/// assert_eq!(
///     fourit::redact_url("postgres://db/app?user=pg&password=hunter2"),
///     "postgres://db/app?user=pg&password=***"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL we can read: show nothing that might be a secret.
        return "<unparsable URL>".to_string();
    };
    let mut out = format!("{scheme}://");
    let (userinfo, after_userinfo) = split_userinfo(rest);
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            // Everything after the first `:` is the password, whatever it holds.
            Some((user, _password)) => {
                out.push_str(user);
                out.push_str(":***@");
            }
            None => {
                out.push_str(userinfo);
                out.push('@');
            }
        }
    }
    match after_userinfo.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let (query, fragment) = match query.split_once('#') {
                Some((query, fragment)) => (query, Some(fragment)),
                None => (query, None),
            };
            let shown: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if is_secret(key) => format!("{key}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            out.push_str(&shown.join("&"));
            if let Some(fragment) = fragment {
                out.push('#');
                out.push_str(fragment);
            }
        }
        None => out.push_str(after_userinfo),
    }
    // The user-info read to an `@` that follows a `?` may be a query instead (a secret value
    // holding `@`, `?application_name=a@b&password=@x/y`): hide that reading's secret values
    // too, whole.
    if userinfo.is_some_and(|userinfo| userinfo.contains('?'))
        && let Some((_, query)) = rest.split_once('?')
    {
        for pair in query.split(['&', '#']) {
            if let Some((key, value)) = pair.split_once('=')
                && is_secret(key)
                && !value.is_empty()
            {
                out = out.replace(value, "***");
                out = out.replace(&percent_decoded(value), "***");
            }
        }
    }
    out
}

/// The user-info of what follows a URL's `://` (without its `@`), if any, and the rest.
///
/// Drivers disagree on where a password with unencoded `/ ? # @` ends (the first `@` for
/// libpq-style parsers, the last `@` of the authority for URL parsers), so the reading here
/// is the widest: the user-info ends at the **last** `@` that a host list follows (host names,
/// addresses, ports, commas, up to the path or the end). An `@` in the query (`?options=a@b`)
/// is not followed by one, so it does not end the user-info, and the query is redacted as a
/// query.
pub(crate) fn split_userinfo(rest: &str) -> (Option<&str>, &str) {
    for (at, _) in rest
        .match_indices('@')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let (userinfo, after) = (&rest[..at], &rest[at + 1..]);
        if !host_like(after) {
            continue;
        }
        // A user name holds none of `/ ? #`: without a `:` (no password), such an `@` is in
        // the path or the query, and there is no user-info.
        if !userinfo.contains(':') && userinfo.contains(['/', '?', '#']) {
            return (None, rest);
        }
        return (Some(userinfo), after);
    }
    (None, rest)
}

/// Whether `text` (what follows an `@`) begins with a host list: host names, addresses,
/// ports and commas, up to the path, the query or the end.
fn host_like(text: &str) -> bool {
    let end = text.find(['/', '?', '#']).unwrap_or(text.len());
    let hosts = &text[..end];
    !hosts.is_empty()
        && hosts.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | ',' | '[' | ']' | '%')
        })
}

/// `url` with the user-info's `/ ? # @` percent-encoded, read as [`redact_url`] reads it
/// (to the last `@` a host list follows): a client that ends the authority at the first `/`
/// (redis-rs) or the user-info at the first `@` (tokio-postgres) then reads the password the
/// user meant, and its parsers never take half of it for a path or a host. The one reading
/// this gets wrong is an `@` in the last query value followed by a host-like word
/// (`?sentinel_username=ops@corp` at the very end): write that `@` as `%40` (README).
pub(crate) fn encode_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (Some(userinfo), after) = split_userinfo(rest) else {
        return url.to_string();
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return url.to_string();
    };
    let mut encoded = String::with_capacity(password.len());
    for ch in password.chars() {
        match ch {
            '/' => encoded.push_str("%2F"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            '@' => encoded.push_str("%40"),
            other => encoded.push(other),
        }
    }
    format!("{scheme}://{user}:{encoded}@{after}")
}

/// `text` (a driver's message about `url`) with every secret of `url` replaced by `***`:
/// the password whole, percent-decoded, and each piece of it between the characters a
/// driver may cut it at (`/ ? # @ : &`), so a message quoting the half of a password a
/// misreading parser took for a path or a port shows none of it either. Short pieces
/// (under 4 characters) are left: they would blank out ordinary words.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut out = text.to_string();
    for secret in secrets_of(url) {
        out = scrub_secret(&out, &secret);
    }
    out
}

/// `text` without `secret`: whole, percent-decoded, and each of its pieces of 4 characters
/// or more between `/ ? # @ : &` (longest first, so no piece leaves part of another).
pub(crate) fn scrub_secret(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let mut forms = vec![secret.to_string(), percent_decoded(secret)];
    forms.extend(
        secret
            .split(['/', '?', '#', '@', ':', '&'])
            .filter(|piece| piece.len() >= 4)
            .map(str::to_string),
    );
    forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
    let mut out = text.to_string();
    for form in forms.iter().filter(|form| !form.is_empty()) {
        out = out.replace(form.as_str(), "***");
    }
    out
}

/// The secrets `url` holds, as written: its password and its secret query values.
fn secrets_of(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let mut secrets = Vec::new();
    if let (Some(userinfo), _) = split_userinfo(rest)
        && let Some((_, password)) = userinfo.split_once(':')
    {
        secrets.push(password.to_string());
    }
    if let Some((_, query)) = rest.split_once('?') {
        for pair in query.split(['&', '#']) {
            if let Some((key, value)) = pair.split_once('=')
                && is_secret(key)
            {
                secrets.push(value.to_string());
            }
        }
    }
    secrets
}

/// `%XX` as its byte (lossy UTF-8); anything else as written.
pub(crate) fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::redact_url;

    /// Found by `no_password_shows_whatever_it_holds`: an `@` inside a secret query value,
    /// after an `@` in another value, was read as the end of a user-info, and the value shown.
    #[test]
    fn a_secret_query_value_holding_an_at_sign_is_hidden() {
        let url = "redis://cache:6379/0?application_name=ops@x&password=@A/A00";
        let shown = redact_url(url);
        assert!(!shown.contains("@A/A00"), "{shown}");
        assert!(shown.starts_with("redis://cache:"), "{shown}");
    }

    #[test]
    fn only_secrets_are_hidden() {
        for (url, shown) in [
            (
                "postgres://postgres:pa/ss-SECRET@127.0.0.1:5432/postgres",
                "postgres://postgres:***@127.0.0.1:5432/postgres",
            ),
            ("redis://:a@b@c@cache:1/0", "redis://:***@cache:1/0"),
            (
                "postgres://h1:5432,h2:5432/db?target_session_attrs=read-write&sslmode=require",
                "postgres://h1:5432,h2:5432/db?target_session_attrs=read-write&sslmode=require",
            ),
            (
                "postgres://u@db/x?sslkey=/etc/k.pem&sslpassword=p4ss",
                "postgres://u@db/x?sslkey=/etc/k.pem&sslpassword=***",
            ),
            (
                "redis+sentinel://s:1/m?sentinel_password=x&sentinel_username=watch",
                "redis+sentinel://s:1/m?sentinel_password=***&sentinel_username=watch",
            ),
            (
                "dynamodb://jobs?region=eu-west-1&aws_secret_access_key=K&aws_session_token=T",
                "dynamodb://jobs?region=eu-west-1&aws_secret_access_key=***&aws_session_token=***",
            ),
            ("redis://cache/0?client=a@b", "redis://cache/0?client=a@b"),
            (
                "postgres://h1:5432,h2:5432/db?application_name=ops@x&password=hunter2",
                "postgres://h1:5432,h2:5432/db?application_name=ops@x&password=***",
            ),
            (
                "postgres://u:pw@db/app?application_name=a@b&sslpassword=hunter2",
                "postgres://u:***@db/app?application_name=a@b&sslpassword=***",
            ),
            ("redis://:p@ss/wo?rd@cache:1/0", "redis://:***@cache:1/0"),
            ("no scheme", "<unparsable URL>"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_drivers_message_loses_every_piece_of_the_password() {
        let url = "redis://app:pa/ss-SECRET@cache:6379/0?token=tok%2Fen-XYZ";
        let message = "invalid database `ss-SECRET@cache` in pa/ss-SECRET, token tok/en-XYZ";
        let scrubbed = super::scrub(message, url);
        for piece in ["ss-SECRET", "pa/ss", "tok/en-XYZ", "en-XYZ"] {
            assert!(!scrubbed.contains(piece), "{piece} in {scrubbed}");
        }
        assert_eq!(
            super::scrub("connection refused", url),
            "connection refused"
        );
    }

    #[test]
    fn a_password_holding_url_delimiters_is_encoded_for_the_client() {
        assert_eq!(
            super::encode_userinfo("redis://app:pa/ss?#x@y@cache:1/0?a=b"),
            "redis://app:pa%2Fss%3F%23x%40y@cache:1/0?a=b"
        );
        assert_eq!(
            super::encode_userinfo("redis://cache:1/0"),
            "redis://cache:1/0"
        );
        assert_eq!(super::encode_userinfo("redis://u@cache"), "redis://u@cache");
        assert_eq!(
            super::encode_userinfo("postgres://u:p@ss@db/app"),
            "postgres://u:p%40ss@db/app"
        );
    }

    proptest! {
        /// Whatever printable bytes a password holds, unencoded, it never shows.
        #[test]
        fn no_password_shows_whatever_it_holds(
            password in "[ -~]{6,24}",
            scheme in prop::sample::select(vec!["redis", "rediss", "postgres", "redis+sentinel"]),
            query in prop::sample::select(vec![
                "", "?sslmode=require", "?password=", "#x", "?application_name=ops@x",
            ]),
        ) {
            // A password that is one word of the URL's own text would "show" trivially.
            prop_assume!(!"postgresrediss+sentinel://app@cache:6379/0?sslmode=require#x\
                ?application_name=ops@x"
                .contains(password.as_str()));
            let (password, with_query) = if query == "?password=" {
                // In a query, an unencoded `&` or `#` ends the value for every reader.
                let password = password.replace(['&', '#'], "_");
                let url = format!("{scheme}://cache:6379/0?application_name=ops@x&password={password}");
                (password, url)
            } else {
                let url = format!("{scheme}://app:{password}@cache:6379/0{query}");
                (password, url)
            };
            let shown = redact_url(&with_query);
            prop_assert!(!shown.contains(password.as_str()), "{with_query} -> {shown}");
        }
    }
}
