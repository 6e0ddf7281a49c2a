//! A `postgres://` URL as steprule shows it: without its password, in every message of the
//! ledger and of the patient source alike. The password is also scrubbed from any text that
//! passes through (a driver's error), as a last guard.

use std::str::FromStr;

use postgres::config::Host;

use crate::printable::printable;

/// Whether `text` names a PostgreSQL database rather than a file.
pub fn is_url(text: &str) -> bool {
    let lower = text.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `postgres://user@host:port/db`: the URL without its password (in the user part or a
/// `?password=` option) and without its options.
pub fn shown(url: &str) -> String {
    match postgres::Config::from_str(url.trim()) {
        Ok(config) => display_name(&config),
        Err(_) => "(a PostgreSQL URL that cannot be read)".to_owned(),
    }
}

/// The URL's parts that are not secret.
pub(crate) fn display_name(config: &postgres::Config) -> String {
    let user = config
        .get_user()
        .map(|user| format!("{user}@"))
        .unwrap_or_default();
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let host = match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]"),
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            };
            match ports.get(index).or(ports.first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let db = config.get_dbname().unwrap_or_default();
    let name = format!("postgres://{user}{}/{db}", hosts.join(","));
    printable(&name).into_owned()
}

/// The password of `postgres://user:password@host/…` as written (percent-encoded or not), found
/// without trusting the URL to parse.
pub(crate) fn password_in(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then(|| password.to_owned())
}

/// `message` with every occurrence of the password (as written, and percent-decoded) replaced.
pub(crate) fn scrub(message: &str, secret: Option<&str>) -> String {
    let Some(secret) = secret else {
        return message.to_owned();
    };
    let mut scrubbed = message.replace(secret, "********");
    let decoded = percent_decoded(secret);
    if !decoded.is_empty() && decoded != secret {
        scrubbed = scrubbed.replace(&decoded, "********");
    }
    scrubbed
}

fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// An error and its causes, one after another (`error connecting to server: Connection
/// refused`). A server's own error is described by its user (the patient source knows which of its
/// parts can quote data).
pub(crate) fn describe_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    let mut depth = 0;
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
        depth += 1;
        if depth == 8 {
            break;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_url_has_no_password() {
        let shown = shown("postgres://clinic:s3cret-pw@db.example:5432/ledger");
        assert_eq!(shown, "postgres://clinic@db.example:5432/ledger");
        let shown =
            super::shown("postgresql://clinic@db/ledger?password=s3cret-pw&sslmode=disable");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(shown, "postgres://clinic@db:5432/ledger");
        assert!(!super::shown("postgres://a:s3cret@[bad").contains("s3cret"));
        assert!(is_url(" PostgreSQL://db/x") && !is_url("ledger.db"));
    }

    #[test]
    fn a_password_is_scrubbed_as_written_and_decoded() {
        let secret = password_in("postgres://u:p%40ss@db/x").unwrap();
        assert_eq!(secret, "p%40ss");
        assert_eq!(
            scrub("bad p@ss and p%40ss", Some(&secret)),
            "bad ******** and ********"
        );
    }
}
