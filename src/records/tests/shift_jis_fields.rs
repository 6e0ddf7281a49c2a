//! A Shift_JIS row decoded field by field the short way (`Decoder::decode_record`: the ASCII
//! copied in runs, each non-ASCII field decoded onto the row's text) gives exactly what
//! decoding every field on its own gives (`Decoder::decode`, the long way): the same text and
//! field ends, or the same first undecodable field and message.

use proptest::prelude::*;

use super::super::decode::Decoder;
use super::*;

fn sjis(text: &str) -> Vec<u8> {
    encoding_rs::SHIFT_JIS.encode(text).0.into_owned()
}

/// Both ways on the same fields: each the text and ends, or the error's field and message.
/// The short way appends, so it is given a text and ends that already hold something.
fn both(decoder: &Decoder, fields: &[Vec<u8>]) -> [Result<(String, Vec<usize>), String>; 2] {
    let mut long = decoder.clone();
    let (mut text, mut ends) = (String::new(), Vec::new());
    let by_field = long
        .decode(7, fields.iter().map(Vec::as_slice), &mut text, &mut ends)
        .map(|()| (text.clone(), ends.clone()))
        .map_err(|err| format!("{} {}", err.field, err.message("the cell")));

    let mut short = decoder.clone();
    let bytes = fields.concat();
    let field_ends: Vec<usize> = fields
        .iter()
        .scan(0, |end, field| {
            *end += field.len();
            Some(*end)
        })
        .collect();
    let (mut text, mut ends) = ("before".to_owned(), vec![6]);
    let by_record = short
        .decode_record(7, &bytes, &field_ends, &mut text, &mut ends)
        .map_err(|err| format!("{} {}", err.field, err.message("the cell")));
    let by_record = match by_record {
        Ok(()) => Ok((text[6..].to_owned(), ends[1..].to_vec())),
        Err(message) => {
            // Nothing of the row is left behind.
            assert_eq!((text.as_str(), ends.as_slice()), ("before", &[6][..]));
            Err(message)
        }
    };
    [by_field, by_record]
}

fn shift_jis_decoder() -> Decoder {
    Decoder::new(Encoding::ShiftJis, false)
}

#[test]
fn a_lead_byte_at_a_fields_end_is_not_joined_to_the_next_field() {
    // 0x82 0xA0 is あ, but not split across two fields.
    let fields = [
        b"P1".to_vec(),
        sjis("山"),
        b"\x82".to_vec(),
        b"\xA0x".to_vec(),
    ];
    let [long, short] = both(&shift_jis_decoder(), &fields);
    assert_eq!(long, short);
    let err = short.unwrap_err();
    assert!(
        err.starts_with("2 the cell is not valid Shift_JIS"),
        "{err}"
    );
}

#[test]
fn ascii_runs_and_decoded_fields_end_where_they_should() {
    let fields = [
        b"P1".to_vec(),
        Vec::new(),
        sjis("患者1"),
        b"booked".to_vec(),
        sjis("高橋"),
        sjis("ｱｲ内科"),
        Vec::new(),
    ];
    let [long, short] = both(&shift_jis_decoder(), &fields);
    assert_eq!(long, short);
    let (text, ends) = short.unwrap();
    assert_eq!(text, "P1患者1booked高橋ｱｲ内科");
    assert_eq!(ends, [2, 2, 9, 15, 21, 33, 33]);
}

#[test]
fn a_utf8_row_in_a_shift_jis_file_is_still_told_apart() {
    let fields = [b"P1".to_vec(), "山田".as_bytes().to_vec()];
    let [long, short] = both(&shift_jis_decoder(), &fields);
    assert_eq!(long, short);
    assert!(short.unwrap_err().contains("is UTF-8 text"));
}

/// A field: ASCII, Shift_JIS text, UTF-8 text, or bytes Shift_JIS gives meaning to or not
/// (lone lead and trail bytes, 0x80, 0xA0, 0xFD–0xFF, half-width kana).
fn field() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        "[ -~]{0,6}".prop_map(String::into_bytes),
        "[ぁ-んァ-ン一-龠ｱ-ﾝ、。　]{1,3}".prop_map(|text| sjis(&text)),
        "[山田患者]{1,2}".prop_map(String::into_bytes),
        prop::sample::select(vec![
            0x80u8, 0x81, 0x82, 0x9F, 0xA0, 0xA1, 0xDF, 0xE0, 0xEF, 0xFC, 0xFD, 0xFF, 0x40, 0x7F
        ])
        .prop_map(|byte| vec![byte]),
    ];
    prop::collection::vec(piece, 0..4).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn the_short_way_decodes_as_field_by_field(
        fields in prop::collection::vec(field(), 1..8),
        asked in prop::sample::select(vec![Encoding::ShiftJis, Encoding::Auto]),
    ) {
        let mut decoder = Decoder::new(asked, false);
        if asked == Encoding::Auto {
            // Decided by an earlier row, as `auto` decides on a file's first non-ASCII row.
            let (mut text, mut ends) = (String::new(), Vec::new());
            let row = sjis("鈴木");
            decoder.decode(2, std::iter::once(row.as_slice()), &mut text, &mut ends).unwrap();
            prop_assert!(decoder.is_shift_jis());
        }
        let [long, short] = both(&decoder, &fields);
        prop_assert_eq!(long, short);
    }
}
