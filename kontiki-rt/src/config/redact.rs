//! Hiding secrets: passwords in broker URLs (logs, errors, `Debug`, `--print-config`).

/// Hides the password of an AMQP URL, or of each URL of a comma-separated list, for logs,
/// errors and printed configuration.
///
/// URLs are read with a real URL parser (WHATWG rules: the user information ends at the
/// authority's last `@`), so a password that contains `@`, `:` or `,` is hidden whole. Text
/// that does not parse is cut the same way by hand.
pub(crate) fn redact_url(url: &str) -> String {
    split_url_list(url)
        .into_iter()
        .map(redact_one_url)
        .collect::<Vec<_>>()
        .join(",")
}

/// Splits a URL list at the commas that start another URL (`,scheme://`), so that a comma
/// inside a password does not split it.
fn split_url_list(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, _) in list.match_indices(',') {
        let rest = &list[i + 1..];
        let scheme = rest.split("://").next().unwrap_or("");
        let starts_url = rest.contains("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if starts_url {
            parts.push(&list[start..i]);
            start = i + 1;
        }
    }
    parts.push(&list[start..]);
    parts
}

fn redact_one_url(one: &str) -> String {
    const HIDDEN: &str = "***";
    let trimmed = one.trim();
    if let Ok(mut parsed) = url::Url::parse(trimmed)
        && parsed.password().is_some()
        && parsed.set_password(Some(HIDDEN)).is_ok()
    {
        // The parser percent-encodes the stars; show them as typed.
        return parsed.as_str().replacen("%2A%2A%2A", HIDDEN, 1);
    }
    // Not a URL the parser takes: cut the user information by hand.
    let Some((scheme, rest)) = one.split_once("://") else {
        return one.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return one.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:{HIDDEN}@{host}{tail}"),
        None => one.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden_whatever_they_contain() {
        for (url, shown) in [
            (
                "amqp://guest:guest@localhost:5672/%2F",
                "amqp://guest:***@localhost:5672/%2F",
            ),
            ("amqp://u:p@ss@host/vh", "amqp://u:***@host/vh"),
            ("amqp://u:a:b@host", "amqp://u:***@host"),
            (
                "amqps://u:a,b@h1,amqps://v:c@h2",
                "amqps://u:***@h1,amqps://v:***@h2",
            ),
            ("amqp://host:5672", "amqp://host:5672"),
            ("amqp://user@host", "amqp://user@host"),
            ("memory://", "memory://"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        for url in [
            "amqp://u:p@ss@host/vh",
            "amqp://u:a,b@h1",
            "amqp://u:a:b@host",
        ] {
            let out = redact_url(url);
            for secret in ["p@ss", "a,b", "a:b"] {
                assert!(!out.contains(secret), "{out}");
            }
        }
    }
}
