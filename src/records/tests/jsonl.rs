use super::*;

#[test]
fn values_may_be_strings_numbers_booleans_nulls_and_tag_lists() {
    let text = r#"{"id": 1001, "name": "山田 太郎", "stage": "regular", "tags": ["chronic", " flu_season "], "opted_out": false, "last_visit_at": "2026-10-01T10:00:00+09:00", "doctor": null, "visits": 12, "vip": true}
{"id": "P2", "tags": "chronic;vip", "opted_out": 1, "stage": null, "line_user_id": "", "birth_date": "1950/1/2"}
"#;
    let rows: Vec<_> = read_jsonl(text).into_iter().map(Result::unwrap).collect();
    let first = &rows[0];
    assert_eq!(first.id, "1001");
    assert_eq!(first.stage, Some(3));
    assert_eq!(first.tags, ["chronic", "flu_season"]);
    assert!(!first.opted_out);
    assert_eq!(first.dates[2], Some(tokyo("2026-10-01 10:00")));
    assert_eq!(first.fields[0], None);
    assert_eq!(first.other.get("visits").map(String::as_str), Some("12"));
    assert_eq!(first.other.get("vip").map(String::as_str), Some("true"));
    assert_eq!(first.line, 1);

    let second = &rows[1];
    assert_eq!(second.tags, ["chronic", "vip"]);
    assert!(second.opted_out);
    assert_eq!(second.stage, None);
    assert_eq!(second.line_user_id, None);
    assert_eq!(
        second.birth_date,
        chrono::NaiveDate::from_ymd_opt(1950, 1, 2)
    );
    assert_eq!(second.line, 2);
}

#[test]
fn bad_lines_are_reported_with_their_line_and_reading_goes_on() {
    let text = "{\"id\": \"P1\", \"stage\": \"booked\"}\n\
                \n\
                {\"id\": \"P2\", \"name\": \"鈴木 一郎\", \"stage\": \"booked\"\n\
                [1, 2]\n\
                {\"name\": \"佐藤 花子\"}\n\
                {\"id\": \"P3\", \"name\": \"田中\", \"appointment_at\": \"来週\"}\n\
                {\"id\": \"P4\", \"name\": {\"family\": \"伊藤\"}}\n\
                {\"id\": \"P1\"}\r\n\
                {\"id\": \"P5\", \"tags\": [[\"nested\"]]}\n\
                {\"id\": \"P6\"}";
    let (rows, unreadable) = read_reports(RecordFormat::Jsonl, text, &ReadOptions::default());
    let (good, bad) = split(rows);
    assert_eq!(good, ["P1", "P3", "P6"]);
    let lines: Vec<usize> = bad.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [3, 4, 5, 7, 8, 9]);
    assert_eq!(unreadable.len(), 1);
    assert_eq!(unreadable[0].0, 6);
    assert!(
        unreadable[0]
            .1
            .contains("`appointment_at`: not a date or date-time"),
        "{}",
        unreadable[0].1
    );
    assert!(!unreadable[0].1.contains("来週"), "{}", unreadable[0].1);
    assert!(
        bad[0].1.starts_with("invalid JSON at column "),
        "{}",
        bad[0].1
    );
    assert!(!bad[0].1.contains("line 1"), "{}", bad[0].1);
    assert!(bad[1].1.contains("found a list"), "{}", bad[1].1);
    assert_eq!(bad[2].1, "no id (every patient needs an `id`)");
    assert!(bad[3].1.contains("field `name`: nested"), "{}", bad[3].1);
    assert_eq!(bad[4].1, "the same id is already on line 1");
    assert!(bad[5].1.contains("field `tags`: nested"), "{}", bad[5].1);
    for (_, message) in &bad {
        for name in ["鈴木", "佐藤", "田中", "伊藤", "来週"] {
            assert!(
                !message.contains(name),
                "a patient's name leaked: {message}"
            );
        }
    }
}

#[test]
fn keys_follow_the_header_mapping() {
    let options = with_mapping(
        "[columns]\n\"患者ID\" = \"id\"\n\"ステージ\" = \"stage\"\n[stages]\n\"予約\" = \"booked\"\n",
    );
    let text =
        "{\"患者ID\": \"P1\", \"ステージ\": \"予約\"}\n{\"患者ID\": \"P2\", \"id\": \"P3\"}\n";
    let (good, bad) = split(read_with(RecordFormat::Jsonl, text, &options).unwrap());
    assert_eq!(good, ["P1"]);
    assert_eq!(
        bad,
        [(2, "fields `id` and `患者ID` both mean `id`".to_owned())]
    );
}

#[test]
fn shift_jis_jsonl_is_decoded_too() {
    let bytes = encoding_rs::SHIFT_JIS
        .encode("{\"id\": \"P1\", \"name\": \"山田\"}\n")
        .0
        .into_owned();
    let rows = read_with(RecordFormat::Jsonl, bytes, &ReadOptions::default()).unwrap();
    assert_eq!(rows[0].as_ref().unwrap().name.as_deref(), Some("山田"));
}

/// Lines past 64 bytes are checked 32 bytes at a time (simdutf8), shorter ones byte by byte:
/// a broken byte deep in a long line, or a character cut at its end, is caught there too.
#[test]
fn a_long_line_broken_deep_inside_or_cut_at_its_end_is_a_row_error() {
    let long_name = "山田".repeat(40);
    let good = format!("{{\"id\": \"P1\", \"name\": \"{long_name}\"}}\n");
    let mut bytes = good.clone().into_bytes();
    let mut broken = good.replace("P1", "P2").into_bytes();
    broken[100] = 0xff;
    bytes.extend(&broken);
    // `"name": "山田…山` and the first two bytes of `田`, then the line ends.
    let mut cut = format!("{{\"id\": \"P3\", \"name\": \"{long_name}").into_bytes();
    cut.extend(&"田".as_bytes()[..2]);
    cut.push(b'\n');
    bytes.extend(&cut);
    bytes.extend(good.replace("P1", "P4").as_bytes());
    let options = with_encoding(Encoding::Utf8);
    let rows = read_with(RecordFormat::Jsonl, bytes, &options).unwrap();
    assert_eq!(rows[0].as_ref().unwrap().name.as_deref(), Some(&*long_name));
    let (good, bad) = split(rows);
    assert_eq!(good, ["P1", "P4"]);
    let lines: Vec<usize> = bad.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [2, 3]);
}

#[test]
fn invalid_utf8_in_a_later_line_is_a_row_error() {
    let mut bytes = b"{\"id\": \"P1\"}\n".to_vec();
    bytes.extend(
        encoding_rs::SHIFT_JIS
            .encode("{\"id\": \"P2\", \"name\": \"山田\"}\n")
            .0
            .iter(),
    );
    bytes.extend(b"{\"id\": \"P3\"}\n");
    let options = with_encoding(Encoding::Utf8);
    let (good, bad) = split(read_with(RecordFormat::Jsonl, bytes, &options).unwrap());
    assert_eq!(good, ["P1", "P3"]);
    assert_eq!(bad[0].0, 2);
    assert!(bad[0].1.contains("Shift_JIS"), "{}", bad[0].1);
}

#[test]
fn a_key_named_like_a_computed_builtin_is_ignored_and_reported_once_per_file() {
    let text = "{\"id\": \"P1\", \"age\": 30}\n{\"id\": \"P2\", \"age\": 31}\n";
    let mut records = read_from(
        Cursor::new(text.as_bytes().to_vec()),
        "patients",
        RecordFormat::Jsonl,
        &schema(),
        &ReadOptions::default(),
    )
    .unwrap();
    let rows: Vec<_> = records.by_ref().map(Result::unwrap).collect();
    assert!(rows.iter().all(|row| row.other.is_empty()), "{rows:?}");
    let notices = records.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].starts_with("column `age` is ignored"),
        "{notices:?}"
    );
}

/// What `str::trim` takes off a line (a full-width space, a no-break space) is taken off
/// before it is parsed, and a line of nothing else is passed over like an empty one.
#[test]
fn unicode_spaces_around_a_line_are_trimmed_and_a_line_of_them_is_blank() {
    let text = "\u{3000}{\"id\": \"P1\"}\u{a0}\n\u{3000}\u{a0}\n\t{\"id\": \"P2\"}  \n{\"id\": \"P3\"}\u{3000}";
    let (rows, unreadable) = read_reports(RecordFormat::Jsonl, text, &ReadOptions::default());
    assert!(unreadable.is_empty());
    let lines: Vec<(String, usize)> = rows
        .into_iter()
        .map(|row| row.map(|record| (record.id, record.line)).unwrap())
        .collect();
    let expected = [("P1", 1), ("P2", 3), ("P3", 4)].map(|(id, line)| (id.to_owned(), line));
    assert_eq!(lines, expected);
}

/// A line that is not UTF-8 is reported by its line whether it lies whole in the reader's
/// buffer (64 KiB) or runs past its end (put together across reads), and the lines after it
/// are read: every line that holds a multiple of 64 KiB is one, and every seventh besides.
#[test]
fn lines_not_in_the_files_encoding_are_reported_within_and_across_the_readers_buffer() {
    const BUFFER: usize = 64 * 1024;
    let (mut bytes, mut good, mut bad) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..600 {
        let start = bytes.len();
        let ascii = format!(
            "{{\"id\": \"P{n}\", \"memo\": \"{}\", \"name\": \"",
            "x".repeat(900)
        );
        let crosses = (start + ascii.len() + 20) / BUFFER != start / BUFFER;
        let broken = crosses || n % 7 == 0;
        bytes.extend(ascii.as_bytes());
        let name = "山田 花子";
        match broken {
            true => bytes.extend(encoding_rs::SHIFT_JIS.encode(name).0.iter()),
            false => bytes.extend(name.as_bytes()),
        }
        bytes.extend(b"\"}\n");
        match broken {
            true => bad.push(n + 1),
            false => good.push(format!("P{n}")),
        }
    }
    let options = with_encoding(Encoding::Utf8);
    let (read, reported) = split(read_with(RecordFormat::Jsonl, bytes, &options).unwrap());
    assert_eq!(read, good);
    assert_eq!(reported.iter().map(|(at, _)| *at).collect::<Vec<_>>(), bad);
    assert!(
        bad.len() > 600 / 7 + 3,
        "lines across the buffer's end: {bad:?}"
    );
}
