//! The `track` setting: where tracked links point. Checked here, once, so that delivery can
//! trust it: an https URL (plain http only to this machine), without user info, query or
//! fragment, and short enough that every tracked link fits LINE's limit for links.

use super::Checker;
use crate::diagnostic::Code;
use crate::line::limits::MAX_ACTION_URI;
use crate::line::track::{TrackBase, TrackBaseError, MAX_TRACK_BASE, TOKEN_LEN, TRACK_PATH};
use crate::source::Spanned;

impl Checker<'_> {
    pub(super) fn track(&mut self, url: &Spanned<String>) {
        match TrackBase::parse(&url.node) {
            Ok(base) => self.decls.track = Some(base),
            Err(error) => {
                let help = match error {
                    TrackBaseError::TooLong { .. } => format!(
                        "a tracked link is this URL, `{TRACK_PATH}` and a {TOKEN_LEN}-character \
                         token, and LINE takes links of at most {MAX_ACTION_URI} characters: use \
                         a URL of at most {MAX_TRACK_BASE} characters, e.g. \
                         `track \"https://go.example-clinic.jp\"`"
                    ),
                    _ => "give the https address that answers tracked links (`steprule serve` \
                          behind the clinic's proxy) alone, e.g. \
                          `track \"https://go.example-clinic.jp\"`; plain http is accepted only \
                          for 127.0.0.1, ::1 or localhost"
                        .to_owned(),
                };
                let diag = self.report(
                    Code::InvalidTrackUrl,
                    url.span,
                    format!("the `track` URL {error}"),
                );
                diag.label = Some("not usable for tracked links".into());
                diag.help = Some(help);
            }
        }
    }
}
