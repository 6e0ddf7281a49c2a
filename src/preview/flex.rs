//! Hand-written LINE message objects (`line_json`: flex bubbles and carousels, template
//! messages, imagemaps) read for the preview: flattened into texts, images and buttons for a
//! terminal, or drawn as a flex card for the chat page. Both walks are bounded in depth and in
//! parts, so a deeply nested or huge object costs a fixed amount of work.

use serde_json::Value as Json;

use super::html::escape_html;

/// Deepest nesting followed (LINE's own bubbles nest boxes a few levels deep).
const MAX_DEPTH: usize = 12;
/// Most parts taken from one message; the rest are counted as left out.
const MAX_PARTS: usize = 300;

/// What a patient can read or tap in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// An image, shown by its URL (never fetched).
    Image(String),
    /// A button or action: its label and what it does.
    Button {
        label: String,
        target: String,
    },
}

/// Every text, image and button of `json`, in reading order.
pub fn parts(json: &Json) -> Vec<Part> {
    let mut found = Vec::new();
    walk(json, 0, &mut found);
    found
}

fn walk(json: &Json, depth: usize, found: &mut Vec<Part>) {
    if depth > MAX_DEPTH || found.len() >= MAX_PARTS {
        return;
    }
    match json {
        Json::Array(items) => items.iter().for_each(|item| walk(item, depth + 1, found)),
        Json::Object(map) => {
            let kind = map.get("type").and_then(Json::as_str).unwrap_or_default();
            let string = |key: &str| map.get(key).and_then(Json::as_str).map(str::to_owned);
            match kind {
                "text" | "span" if map.get("contents").is_none() => {
                    if let Some(text) = string("text") {
                        found.push(Part::Text(text));
                    }
                    return;
                }
                "image" | "video" => {
                    if let Some(url) = string("url").or_else(|| string("originalContentUrl")) {
                        found.push(Part::Image(url));
                    }
                    return;
                }
                "button" => {
                    if let Some(action) = map.get("action") {
                        found.push(button(action));
                    }
                    return;
                }
                _ => {}
            }
            for key in ["thumbnailImageUrl", "baseUrl", "imageUrl"] {
                if let Some(url) = string(key) {
                    found.push(Part::Image(url));
                }
            }
            if kind != "text" {
                for key in ["title", "text"] {
                    if let Some(text) = string(key) {
                        found.push(Part::Text(text));
                    }
                }
            }
            // In reading order (a JSON object's keys come sorted).
            for key in [
                "header", "hero", "body", "footer", "template", "columns", "contents",
            ] {
                if let Some(value) = map.get(key) {
                    walk(value, depth + 1, found);
                }
            }
            for action in map
                .get("actions")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                if found.len() < MAX_PARTS {
                    found.push(button(action));
                }
            }
        }
        _ => {}
    }
}

/// A LINE action as a button: its label and where it leads.
fn button(action: &Json) -> Part {
    let string = |key: &str| action.get(key).and_then(Json::as_str).unwrap_or_default();
    let target = match string("type") {
        "uri" => string("uri").to_owned(),
        "postback" => format!("postback {}", string("data")),
        "message" => format!("sends 「{}」", string("text")),
        other => other.to_owned(),
    };
    Part::Button {
        label: string("label").to_owned(),
        target,
    }
}

/// A flex message's contents (a bubble or a carousel) as chat HTML: each bubble a card with
/// its header, hero, body and footer. Anything else falls back to its parts.
pub fn card_html(contents: &Json, out: &mut String) {
    match contents.get("type").and_then(Json::as_str) {
        Some("carousel") => {
            out.push_str("<div class=\"carousel\">");
            let bubbles = contents.get("contents").and_then(Json::as_array);
            for bubble in bubbles.into_iter().flatten().take(12) {
                bubble_html(bubble, out);
            }
            out.push_str("</div>");
        }
        _ => bubble_html(contents, out),
    }
}

fn bubble_html(bubble: &Json, out: &mut String) {
    out.push_str("<div class=\"card\">");
    let mut budget = MAX_PARTS;
    for block in ["header", "hero", "body", "footer"] {
        if let Some(node) = bubble.get(block) {
            out.push_str(&format!("<div class=\"block {block}\">"));
            node_html(node, 0, &mut budget, out);
            out.push_str("</div>");
        }
    }
    out.push_str("</div>");
}

/// One flex component. Sizes, colours and weights of LINE's own vocabulary become classes;
/// only a colour written as `#RRGGBB` is copied, so no value can break out of the style.
fn node_html(node: &Json, depth: usize, budget: &mut usize, out: &mut String) {
    if depth > MAX_DEPTH || *budget == 0 {
        return;
    }
    *budget -= 1;
    let string = |key: &str| node.get(key).and_then(Json::as_str).unwrap_or_default();
    match string("type") {
        "box" => {
            let layout = match string("layout") {
                "horizontal" | "baseline" => "row",
                _ => "column",
            };
            out.push_str(&format!("<div class=\"box {layout}\">"));
            for child in node
                .get("contents")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                node_html(child, depth + 1, budget, out);
            }
            out.push_str("</div>");
        }
        "text" => {
            let mut text = string("text").to_owned();
            if let Some(spans) = node.get("contents").and_then(Json::as_array) {
                text = spans
                    .iter()
                    .filter_map(|s| s.get("text").and_then(Json::as_str))
                    .collect();
            }
            let bold = if string("weight") == "bold" {
                " bold"
            } else {
                ""
            };
            let size = size_class(string("size"));
            let color = colour(string("color"));
            out.push_str(&format!(
                "<p class=\"flex-text{bold} {size}\"{color}>{}</p>",
                escape_html(&text)
            ));
        }
        "image" | "video" => image_box(string("url"), out),
        "button" => {
            let Part::Button { label, target } = button(node.get("action").unwrap_or(&Json::Null))
            else {
                return;
            };
            let style = match string("style") {
                "primary" => "primary",
                "secondary" => "secondary",
                _ => "link",
            };
            button_html(&label, &target, style, out);
        }
        "separator" => out.push_str("<hr class=\"separator\">"),
        "icon" => out.push_str("<span class=\"icon\"></span>"),
        _ => {}
    }
}

/// An image as a box with its URL: the preview never fetches it.
pub fn image_box(url: &str, out: &mut String) {
    out.push_str(&format!(
        "<div class=\"image\" data-kind=\"image\"><span>画像</span><code>{}</code></div>",
        escape_html(url)
    ));
}

/// A button: its label, and what tapping it does in small print.
pub fn button_html(label: &str, target: &str, style: &str, out: &mut String) {
    out.push_str(&format!(
        "<div class=\"button {style}\"><span class=\"label\">{}</span><code class=\"target\">{}</code></div>",
        escape_html(label),
        escape_html(target)
    ));
}

fn size_class(size: &str) -> &'static str {
    match size {
        "xxs" | "xs" | "sm" => "small",
        "lg" | "xl" | "xxl" | "3xl" | "4xl" | "5xl" => "large",
        _ => "",
    }
}

/// ` style="color: #RRGGBB"` for a colour LINE's way, nothing for anything else.
fn colour(color: &str) -> String {
    let hex = color.strip_prefix('#').unwrap_or_default();
    if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        format!(" style=\"color: #{hex}\"")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bubble() -> Json {
        json!({"type": "bubble",
            "hero": {"type": "image", "url": "https://x.example/hero.jpg"},
            "body": {"type": "box", "layout": "vertical", "contents": [
                {"type": "text", "text": "定期チェック", "weight": "bold", "color": "#B83B6B"},
                {"type": "text", "text": "<script>x</script>", "color": "red;}</style>"}]},
            "footer": {"type": "box", "layout": "vertical", "contents": [
                {"type": "button", "style": "primary",
                 "action": {"type": "uri", "label": "予約", "uri": "https://x.example/r"}}]}})
    }

    #[test]
    fn a_flex_bubble_flattens_to_its_texts_images_and_buttons() {
        let message = json!({"type": "flex", "altText": "a", "contents": bubble()});
        assert_eq!(
            parts(&message),
            vec![
                Part::Image("https://x.example/hero.jpg".into()),
                Part::Text("定期チェック".into()),
                Part::Text("<script>x</script>".into()),
                Part::Button {
                    label: "予約".into(),
                    target: "https://x.example/r".into()
                },
            ]
        );
    }

    #[test]
    fn a_template_message_gives_its_text_and_actions() {
        let message = json!({"type": "template", "altText": "a", "template": {
            "type": "confirm", "text": "ご来院されますか",
            "actions": [{"type": "postback", "label": "はい", "data": "yes"},
                        {"type": "message", "label": "いいえ", "text": "いいえ"}]}});
        assert_eq!(
            parts(&message),
            vec![
                Part::Text("ご来院されますか".into()),
                Part::Button {
                    label: "はい".into(),
                    target: "postback yes".into()
                },
                Part::Button {
                    label: "いいえ".into(),
                    target: "sends 「いいえ」".into()
                },
            ]
        );
    }

    #[test]
    fn card_html_escapes_text_and_copies_only_hex_colours() {
        let mut html = String::new();
        card_html(&bubble(), &mut html);
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("red;"), "{html}");
        assert!(html.contains("color: #B83B6B"), "{html}");
        assert!(
            !html.contains("<img"),
            "images are boxes, never fetched: {html}"
        );
    }

    #[test]
    fn nesting_deeper_than_the_bound_is_cut() {
        let mut node = json!({"type": "text", "text": "deep"});
        for _ in 0..500 {
            node = json!({"type": "box", "layout": "vertical", "contents": [node]});
        }
        let mut html = String::new();
        card_html(&json!({"type": "bubble", "body": node.clone()}), &mut html);
        assert!(!html.contains("deep"));
        assert!(
            parts(&json!({"type": "flex", "contents": {"type": "bubble", "body": node}}))
                .is_empty()
        );
    }
}
