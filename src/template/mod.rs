//! Message templates: `templates/<name>.toml` next to the rules. A template is what a clinic's
//! designer edits; it becomes LINE message objects in [`render`].

mod context;
mod error;
pub mod line;
mod render;

pub use context::{patient_context, Variables};
pub use error::{FailureKind, RenderError, RenderFailure};
pub use render::{
    describe_error, environment, parse_line_json, precompile, Tracking, MAX_FUEL,
    MAX_RENDERED_BYTES, SAMPLE_TIME,
};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use crate::diagnostic::{Code, Diagnostic};
use crate::source::{SourceFile, Span, Spanned};

/// One message template as written in its TOML file, with the spans of its fields so problems
/// can be pointed at.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub file: SourceFile,
    pub body: TemplateBody,
    /// Keys the template has that no template knows (`imgae`), each at its place: `check`
    /// reports them all with whatever else is wrong in the template, and nothing is sent while
    /// there is one (they are errors).
    pub unknown_keys: Vec<Diagnostic>,
    /// `self_pay = true`: the message advertises self-pay (自由診療) treatment, so it must
    /// state what the guideline requires of one (docs/compliance.md).
    pub self_pay: Option<Spanned<bool>>,
    /// `allow = [{ code = "ad-…", reason = "…" }]`: advertising lints a person reviewed and
    /// silenced for this template, each with the reason the review sheet shows.
    pub allow: Vec<Allowance>,
    /// The messages as written, made when first rendered (see `render::written_messages`).
    written: OnceLock<Vec<crate::line::Message>>,
}

/// One `allow` entry of a template.
#[derive(Debug, Clone)]
pub struct Allowance {
    /// The code as written, without `steprule::` (`ad-superiority`).
    pub code: Spanned<String>,
    pub reason: Spanned<String>,
}

#[derive(Debug, Clone)]
pub enum TemplateBody {
    /// The simple form: a text, an optional image and call-to-action buttons.
    Simple {
        text: Spanned<String>,
        image: Option<Spanned<String>>,
        alt: Option<Spanned<String>>,
        buttons: Spanned<Vec<Button>>,
    },
    /// Raw LINE message objects (a JSON object or array), for designers who build Flex
    /// messages elsewhere. Still a minijinja template, so `{{ name }}` works inside strings.
    LineJson(Spanned<String>),
}

/// A call to action, e.g. 「ご予約はこちら」 opening the booking page.
#[derive(Debug, Clone)]
pub struct Button {
    pub label: Spanned<String>,
    pub url: Spanned<String>,
}

impl Template {
    /// Every minijinja source in the template, with the field it came from.
    pub fn sources(&self) -> Vec<(&'static str, &Spanned<String>)> {
        match &self.body {
            TemplateBody::Simple {
                text,
                image,
                alt,
                buttons,
            } => {
                let mut sources = vec![("text", text)];
                sources.extend(image.iter().map(|i| ("image", i)));
                sources.extend(alt.iter().map(|a| ("alt", a)));
                for button in &buttons.node {
                    sources.push(("buttons.label", &button.label));
                    sources.push(("buttons.url", &button.url));
                }
                sources
            }
            TemplateBody::LineJson(json) => vec![("line_json", json)],
        }
    }
}

/// The known keys, read after the unknown ones were found (see [`unknown_keys`]).
#[derive(Deserialize)]
struct TemplateToml {
    text: Option<toml::Spanned<String>>,
    image: Option<toml::Spanned<String>>,
    alt: Option<toml::Spanned<String>>,
    buttons: Option<toml::Spanned<Vec<ButtonToml>>>,
    line_json: Option<toml::Spanned<String>>,
    self_pay: Option<toml::Spanned<bool>>,
    #[serde(default)]
    allow: Vec<AllowToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowToml {
    code: toml::Spanned<String>,
    reason: toml::Spanned<String>,
}

#[derive(Deserialize)]
struct ButtonToml {
    label: toml::Spanned<String>,
    url: toml::Spanned<String>,
}

fn spanned<T>(value: toml::Spanned<T>) -> Spanned<T> {
    let range = value.span();
    Spanned::new(value.into_inner(), Span::new(range.start, range.end))
}

/// Why a template could not be had.
#[derive(Debug, Clone)]
pub enum LoadError {
    /// No file for that name; `available` lists the names that do exist.
    NotFound {
        path: PathBuf,
        available: Vec<String>,
    },
    /// The file exists but is not a valid template.
    Invalid(Box<Diagnostic>),
    Io {
        path: PathBuf,
        message: String,
    },
}

/// The templates of one rules directory, each read and parsed once.
#[derive(Debug)]
pub struct TemplateStore {
    dir: PathBuf,
    loaded: HashMap<String, Result<Arc<Template>, LoadError>>,
}

impl TemplateStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TemplateStore {
            dir: dir.into(),
            loaded: HashMap::new(),
        }
    }

    /// The store for a rules file: `templates/` beside it.
    pub fn beside(rules_file: &Path) -> Self {
        let parent = rules_file.parent().unwrap_or(Path::new(""));
        TemplateStore::new(parent.join("templates"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn get(&mut self, name: &str) -> Result<Arc<Template>, LoadError> {
        if let Some(result) = self.loaded.get(name) {
            return result.clone();
        }
        let result = self.load(name).map(Arc::new);
        self.loaded.insert(name.to_owned(), result.clone());
        result
    }

    /// The template names present in the directory, sorted.
    pub fn available(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                let is_toml = path.extension().is_some_and(|e| e == "toml");
                let stem = path.file_stem()?.to_str()?.to_owned();
                is_toml.then_some(stem)
            })
            .collect();
        names.sort();
        names
    }

    fn load(&self, name: &str) -> Result<Template, LoadError> {
        let path = self.dir.join(format!("{name}.toml"));
        if !path.is_file() {
            return Err(LoadError::NotFound {
                path,
                available: self.available(),
            });
        }
        let file = SourceFile::read(&path).map_err(|err| LoadError::Io {
            path: path.clone(),
            message: err.to_string(),
        })?;
        parse(name, file).map_err(LoadError::Invalid)
    }
}

/// The keys a template may have at its top level, and in each `[[buttons]]`.
const TOP_KEYS: [&str; 7] = [
    "text",
    "image",
    "alt",
    "buttons",
    "line_json",
    "self_pay",
    "allow",
];
const BUTTON_KEYS: [&str; 2] = ["label", "url"];

const TEMPLATE_SHAPE: &str = "a template has `text` (and optionally `image`, `alt`, \
     `[[buttons]]` with `label` and `url`), or `line_json` with LINE message objects";

/// Every key no template knows, each reported at its place: all of them at once, so that one
/// `check` shows them together with the template's other problems.
fn unknown_keys(name: &str, file: &SourceFile) -> Vec<Diagnostic> {
    type Table = std::collections::BTreeMap<toml::Spanned<String>, toml::Value>;
    #[derive(Deserialize)]
    struct Buttons {
        buttons: Option<Vec<Table>>,
    }
    let mut found = Vec::new();
    let top: Table = toml::from_str(file.text()).unwrap_or_default();
    let buttons = toml::from_str::<Buttons>(file.text())
        .ok()
        .and_then(|b| b.buttons)
        .unwrap_or_default();
    let keys = top
        .keys()
        .filter(|key| !TOP_KEYS.contains(&key.get_ref().as_str()))
        .map(|key| (key, "", &TOP_KEYS[..]));
    let button_keys = buttons.iter().flat_map(|table| {
        table
            .keys()
            .filter(|key| !BUTTON_KEYS.contains(&key.get_ref().as_str()))
            .map(|key| (key, " in `[[buttons]]`", &BUTTON_KEYS[..]))
    });
    for (key, place, known) in keys.chain(button_keys) {
        let range = key.span();
        let text = key.get_ref();
        let mut diagnostic = Diagnostic::new(
            Code::TemplateInvalid,
            file,
            Span::new(range.start, range.end),
            format!(
                "template `{name}` has an unknown key `{}`{place}",
                crate::printable::printable(text)
            ),
        );
        diagnostic.label = Some("not a template key".into());
        diagnostic = match crate::diagnostic::suggest(text, known.iter().copied()) {
            Some(close) => diagnostic.with_help(format!("did you mean `{close}`?")),
            None => diagnostic.with_help(TEMPLATE_SHAPE),
        };
        found.push(diagnostic);
    }
    found
}

/// Parses a template file's text. A TOML syntax error, a key of the wrong type or a shape no
/// template has is the one error; unknown keys are collected in [`Template::unknown_keys`]
/// and the known ones read on, so that `check` can say everything else too.
pub fn parse(name: &str, file: SourceFile) -> Result<Template, Box<Diagnostic>> {
    let raw: TemplateToml = toml::from_str(file.text()).map_err(|err| -> Box<Diagnostic> {
        let span = err
            .span()
            .map(|r| Span::new(r.start, r.end))
            .unwrap_or_default();
        Diagnostic::new(
            Code::TemplateInvalid,
            &file,
            span,
            format!("template `{name}` is not valid: {}", err.message()),
        )
        .with_help(TEMPLATE_SHAPE)
        .into()
    })?;
    let unknown_keys = unknown_keys(name, &file);
    let whole = Span::new(0, file.text().len().min(1));
    let self_pay = raw.self_pay.map(spanned);
    let allow = raw
        .allow
        .into_iter()
        .map(|a| Allowance {
            code: spanned(a.code),
            reason: spanned(a.reason),
        })
        .collect();
    let body = match (raw.text, raw.line_json) {
        (Some(_), None) if raw.buttons.is_none() && raw.alt.is_some() => {
            let range = raw.alt.as_ref().map_or(0..0, |alt| alt.span());
            return Err(Diagnostic::new(
                Code::TemplateInvalid,
                &file,
                Span::new(range.start, range.end),
                format!("template `{name}` has `alt` but no `[[buttons]]`; the alt text would never be shown"),
            )
            .with_help(
                "`alt` is the notification text of the button card; a plain text message shows \
                 its own first line instead, so remove `alt` or add buttons",
            )
            .into());
        }
        (Some(text), None) => TemplateBody::Simple {
            text: spanned(text),
            image: raw.image.map(spanned),
            alt: raw.alt.map(spanned),
            buttons: match raw.buttons {
                Some(buttons) => {
                    let buttons = spanned(buttons);
                    let list = buttons
                        .node
                        .into_iter()
                        .map(|b| Button {
                            label: spanned(b.label),
                            url: spanned(b.url),
                        })
                        .collect();
                    Spanned::new(list, buttons.span)
                }
                None => Spanned::new(Vec::new(), whole),
            },
        },
        (None, Some(json)) => {
            let json = spanned(json);
            let extra = raw
                .image
                .map(|i| i.span())
                .or(raw.alt.map(|a| a.span()))
                .or(raw.buttons.map(|b| b.span()));
            if let Some(range) = extra {
                return Err(Diagnostic::new(
                    Code::TemplateInvalid,
                    &file,
                    Span::new(range.start, range.end),
                    format!(
                        "template `{name}` mixes `line_json` with `image`, `alt` or `[[buttons]]`"
                    ),
                )
                .with_help("put the image, alt text and buttons inside the LINE message objects")
                .into());
            }
            TemplateBody::LineJson(json)
        }
        (Some(text), Some(_)) => {
            return Err(Diagnostic::new(
                Code::TemplateInvalid,
                &file,
                spanned(text).span,
                format!("template `{name}` has both `text` and `line_json`"),
            )
            .with_help("use one: `text` for a plain message, `line_json` for raw LINE objects")
            .into())
        }
        (None, None) => {
            return Err(Diagnostic::new(
                Code::TemplateInvalid,
                &file,
                whole,
                format!("template `{name}` has no `text` and no `line_json`"),
            )
            .with_help("add `text = \"…\"`: the message the patient reads")
            .into())
        }
    };
    Ok(Template {
        name: name.to_owned(),
        file,
        body,
        unknown_keys,
        self_pay,
        allow,
        written: OnceLock::new(),
    })
}

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod patient_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_simple_form_with_spans() {
        let text = "text = \"{{ name }} 様\"\nimage = \"https://x.jp/a.png\"\n\n[[buttons]]\nlabel = \"ご予約はこちら\"\nurl = \"https://x.jp/r\"\n";
        let file = SourceFile::new("t.toml", text);
        let template = parse("t", file.clone()).unwrap();
        let TemplateBody::Simple { text, buttons, .. } = &template.body else {
            panic!("simple form expected")
        };
        assert_eq!(text.node, "{{ name }} 様");
        assert_eq!(file.slice(buttons.node[0].label.span), "\"ご予約はこちら\"");
    }

    #[test]
    fn reports_every_unknown_key_with_its_span() {
        let text = "text = \"a\"\nimgae = \"https://x\"\ncolour = 1\n\n[[buttons]]\nlabel = \"予約\"\nurl = \"https://x.jp\"\nlink = \"https://y.jp\"\n";
        let file = SourceFile::new("t.toml", text);
        let template = parse("t", file.clone()).unwrap();
        let found: Vec<(String, usize, Option<String>)> = template
            .unknown_keys
            .iter()
            .map(|d| {
                assert_eq!(d.code, Code::TemplateInvalid);
                (
                    file.slice(d.span).to_owned(),
                    file.line_column(d.span.start).0,
                    d.help.clone(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("colour".to_owned(), 3, Some(TEMPLATE_SHAPE.to_owned())),
                (
                    "imgae".to_owned(),
                    2,
                    Some("did you mean `image`?".to_owned())
                ),
                ("link".to_owned(), 8, Some(TEMPLATE_SHAPE.to_owned())),
            ]
        );
        // The known keys are read on.
        let TemplateBody::Simple { buttons, .. } = &template.body else {
            panic!("simple form expected")
        };
        assert_eq!(buttons.node[0].url.node, "https://x.jp");
    }

    #[test]
    fn reads_self_pay_and_allowances_with_spans() {
        let text = "text = \"a\"\nself_pay = true\nallow = [{ code = \"ad-superiority\", reason = \"院内掲示の文言\" }]\n";
        let file = SourceFile::new("t.toml", text);
        let template = parse("t", file.clone()).unwrap();
        assert_eq!(template.self_pay.as_ref().map(|s| s.node), Some(true));
        assert_eq!(template.allow.len(), 1);
        assert_eq!(
            file.slice(template.allow[0].code.span),
            "\"ad-superiority\""
        );
        assert_eq!(template.allow[0].reason.node, "院内掲示の文言");
        let file = SourceFile::new(
            "t.toml",
            "text = \"a\"\nallow = [{ code = \"ad-absolute\" }]\n",
        );
        let err = parse("t", file).unwrap_err();
        assert!(err.message.contains("reason"), "{}", err.message);
    }

    #[test]
    fn needs_text_or_line_json() {
        let file = SourceFile::new("t.toml", "alt = \"a\"\n");
        assert!(parse("t", file).unwrap_err().message.contains("no `text`"));
    }
}
