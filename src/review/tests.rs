use super::*;

fn sheet(text: &str) -> Sheet {
    let columns = vec![("name".to_owned(), "山田 花子".to_owned())];
    let messages = vec![Message::Text {
        text: text.to_owned(),
    }];
    Sheet {
        clinic: "<b>さくら</b>".into(),
        initial: "<".into(),
        rules_file: "rules/<clinic>.step".into(),
        digest: Digest {
            combined: "ab".repeat(32),
            files: vec![("clinic.step".into(), "cd".repeat(32))],
            command: "sha256sum clinic.step | sha256sum".into(),
        },
        date: "2026年11月26日".into(),
        errors: 1,
        warnings: 0,
        patients_file: "patients.csv".into(),
        sample_note: "見本".into(),
        notes: vec![],
        stages: vec![StageGroup {
            heading: "ステージ：booked".into(),
            steps: vec![StepSheet {
                id: "thanks".into(),
                line: 3,
                comment: vec!["<script>alert(1)</script>".into()],
                facts: vec![("条件".into(), "stage=booked".into())],
                sample: "2行目・ID P\u{1b}[2J".into(),
                variants: vec![VariantSheet::rendered(
                    "thanks".into(),
                    Some("A/B：50%".into()),
                    &messages,
                    "さくら",
                    &columns,
                )],
                findings: vec![Finding {
                    code: "ad-superiority".into(),
                    severity: "エラー",
                    is_error: true,
                    message: "`日本一` <i>".into(),
                    place: "templates/thanks.toml:1".into(),
                    help: Some("書き換える".into()),
                }],
                allowances: vec![Allowed {
                    code: "ad-absolute".into(),
                    given_by: "テンプレート thanks".into(),
                    place: "templates/thanks.toml:4".into(),
                    reason: "院長確認 <u>".into(),
                }],
            }],
        }],
        file_findings: vec![],
    }
}

#[test]
fn every_value_from_the_files_is_escaped() {
    let html = render(&sheet("山田 花子 様\n<script>alert(2)</script>")).unwrap();
    for raw in ["<script", "<b>さくら", "<i>", "<u>", "<clinic>"] {
        assert!(!html.contains(raw), "{raw} in {html}");
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;script&gt;alert(2)&lt;/script&gt;"));
    assert!(html.contains("P\\u{1b}[2J"), "{html}");
    // Nothing is fetched: no script, no external reference.
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src="));
}

#[test]
fn the_notification_line_is_marked_and_a_name_on_it_is_flagged() {
    let html = render(&sheet(
        "山田 花子 様、ご来院ありがとうございました。\n二行目",
    ))
    .unwrap();
    assert!(html.contains("通知に表示される部分"));
    assert!(html.contains("山田 花子 様、ご来院ありがとうございました。 二行目"));
    assert!(html.contains("通知に患者の name が表示されます"), "{html}");
    assert!(html.contains("A/B：50%"));
    assert!(html.contains("記載された理由") && html.contains("院長確認"));
    assert!(html.contains("確認者の氏名") && html.contains("役職（院長など）"));
    assert!(html.contains("適法であることを意味しません"));
}

#[test]
fn the_same_sheet_gives_the_same_bytes() {
    let one = render(&sheet("こんにちは")).unwrap();
    let two = render(&sheet("こんにちは")).unwrap();
    assert_eq!(one, two);
}
