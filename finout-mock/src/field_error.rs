//! What a 400 says when a body, query or path parameter cannot be read as the route expects:
//! the field's JSON path (`viewId`, `date.unixTimeMillSecondsStart`, `rules[0].to`) and what
//! it expects, in the API's words ("viewId: expected a string, got a number"), never the
//! parser's (no position in the text, no Rust type names).

use serde::de::DeserializeOwned;

/// The longest field path a message repeats: a client's map keys can be long.
const MAX_PATH_CHARS: usize = 120;
/// The longest message repeated from a value's own parser (a custom `Deserialize`).
const MAX_DETAIL_CHARS: usize = 200;

/// `bytes` read as JSON into `T`, or the message of a 400.
pub(crate) fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => describe(&path, &without_position(&inner)),
            _ if path == "." => "the body is not valid JSON".to_owned(),
            _ => format!(
                "the body is not valid JSON (it breaks off at {})",
                bounded(&path, MAX_PATH_CHARS)
            ),
        }
    })?;
    deserializer
        .end()
        .map_err(|_| "the body is not valid JSON (more follows its value)".to_owned())?;
    Ok(value)
}

/// A query string read into `T`, or the message of a 400.
pub(crate) fn from_query<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer)
        .map_err(|e| describe(&e.path().to_string(), &e.into_inner().to_string()))
}

/// serde_json's message without its ` at line L column C`.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// `parent.field`, or `field` at the top.
fn join(parent: &str, field: &str) -> String {
    if parent == "." {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// The first `max` characters of `text`, with `…` if cut.
fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The text between the first pair of backticks.
fn ticked(text: &str) -> Option<&str> {
    let start = text.find('`')? + 1;
    let end = start + text[start..].find('`')?;
    Some(&text[start..end])
}

/// The message for a value at `path` that serde refused with `message` (serde's own wording,
/// or a custom one of the type's).
pub(crate) fn describe(path: &str, message: &str) -> String {
    let at = |field: &str| bounded(&join(path, field), MAX_PATH_CHARS);
    let here = if path == "." {
        "the body".to_owned()
    } else if path.starts_with('[') {
        // An item of a body that is an array.
        format!("the body{}", bounded(path, MAX_PATH_CHARS))
    } else {
        bounded(path, MAX_PATH_CHARS)
    };
    if let Some(rest) = message.strip_prefix("missing field ") {
        return format!("{}: required", at(ticked(rest).unwrap_or("?")));
    }
    if let Some(rest) = message.strip_prefix("duplicate field ") {
        return format!("{}: given twice", at(ticked(rest).unwrap_or("?")));
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        // The path ends with the unknown field already.
        let field = &here;
        return match rest.split_once(", expected ") {
            Some((_, known)) => format!("{field}: not a field here (expected {})", plain(known)),
            None => format!("{field}: not a field here"),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        return match rest.split_once(", expected ") {
            Some((_, known)) => format!("{here}: expected {}", plain(known)),
            None => format!("{here}: not an accepted value"),
        };
    }
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((got, expected)) = rest.rsplit_once(", expected ")
        {
            let expected = expectation(expected);
            return match (prefix, kind(got)) {
                ("invalid type: ", Some(got)) => format!("{here}: expected {expected}, got {got}"),
                _ => format!("{here}: expected {expected}"),
            };
        }
    }
    if message.starts_with("data did not match any variant") {
        return format!("{here}: not one of the accepted forms");
    }
    // The query string's parser: a number that is not one.
    if message.contains("invalid digit") || message.contains("cannot parse") {
        return format!("{here}: expected a number");
    }
    if message.contains("provided string was not `true` or `false`") {
        return format!("{here}: expected true or false");
    }
    if rusty(message) {
        return format!("{here}: not an accepted value");
    }
    format!("{here}: {}", bounded(message, MAX_DETAIL_CHARS))
}

/// serde's list of names (`` `a`, `b` ``, `` `a` or `b` ``), without backticks.
fn plain(list: &str) -> String {
    let list = list
        .strip_prefix("one of ")
        .map_or(list.to_owned(), |l| format!("one of {l}"));
    bounded(&list.replace('`', ""), MAX_DETAIL_CHARS)
}

/// What a serde expectation (`a string`, `u32`, `struct NewToken`) means in JSON.
fn expectation(expected: &str) -> String {
    let unsigned_max = match expected {
        "u8" => Some(u64::from(u8::MAX)),
        "u16" => Some(u64::from(u16::MAX)),
        "u32" => Some(u64::from(u32::MAX)),
        "u64" | "usize" | "u128" => Some(u64::MAX),
        _ => None,
    };
    if let Some(max) = unsigned_max {
        return format!("a whole number from 0 to {max}");
    }
    let kind = match expected {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a string" | "a borrowed string" | "string" | "a character" | "char" => "a string",
        "a boolean" | "bool" => "true or false",
        "a sequence" | "sequence" => "an array",
        "a map" | "map" | "struct variant" => "an object",
        "unit" | "null" => "null",
        other if other.starts_with("struct ") || other.starts_with("a map") => "an object",
        other if other.starts_with("tuple") || other.starts_with("an array") => "an array",
        other if other.starts_with("one of ") || other.ends_with("` or `") => {
            return plain(other);
        }
        other if other.starts_with("enum ") || rusty(other) => "an accepted value",
        other => return bounded(other, MAX_DETAIL_CHARS),
    };
    kind.to_owned()
}

/// What a JSON value serde describes (`integer `5``, `string "x"`, `map`) is.
fn kind(got: &str) -> Option<&'static str> {
    let word = got.split([' ', '`']).next().unwrap_or("");
    Some(match word {
        "integer" | "floating" => "a number",
        "string" => "a string",
        "boolean" => "true or false",
        "null" | "unit" => "null",
        "sequence" => "an array",
        "map" => "an object",
        _ => return None,
    })
}

/// Whether `text` names a Rust type (`u32`, `struct X`, `Vec`, a `::` path).
fn rusty(text: &str) -> bool {
    const TYPES: [&str; 16] = [
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
        "f32", "f64", "String", "Vec",
    ];
    text.contains("::")
        || text.contains("struct ")
        || text.contains("enum ")
        || text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| TYPES.contains(&word) || word == "Option")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Query {
        view_id: String,
        date: Option<Range>,
        expires_in_minutes: Option<u32>,
        rules: Option<Vec<Rule>>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Range {
        start: i64,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Rule {
        to: String,
    }

    fn refused(json: &str) -> String {
        from_json::<Query>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_wrong_type_names_the_field_and_the_json_type_expected() {
        assert_eq!(
            refused(r#"{"viewId":5}"#),
            "viewId: expected a string, got a number"
        );
        assert_eq!(
            refused(r#"{"viewId":"v","date":{"start":"x"}}"#),
            "date.start: expected a whole number, got a string"
        );
        assert_eq!(
            refused(r#"{"viewId":"v","rules":[{"to":"a"},{"to":[]}]}"#),
            "rules[1].to: expected a string, got an array"
        );
        // serde reads a struct from an array of its fields too: the count is what fails.
        assert_eq!(
            refused(r#"{"viewId":"v","date":[]}"#),
            "date: expected an object"
        );
    }

    #[test]
    fn out_of_range_missing_and_unknown_fields_are_named() {
        assert_eq!(
            refused(r#"{"viewId":"v","expiresInMinutes":-1}"#),
            "expiresInMinutes: expected a whole number from 0 to 4294967295"
        );
        assert_eq!(refused(r#"{}"#), "viewId: required");
        assert_eq!(
            refused(r#"{"viewId":"v","date":{}}"#),
            "date.start: required"
        );
        let unknown = refused(r#"{"viewId":"v","colour":1}"#);
        assert!(
            unknown.starts_with("colour: not a field here (expected one of viewId"),
            "{unknown}"
        );
        assert_eq!(refused("5"), "the body: expected an object, got a number");
        assert_eq!(
            refused("[5]"),
            "the body[0]: expected a string, got a number"
        );
    }

    #[test]
    fn text_that_is_not_json_says_so_without_a_position() {
        assert_eq!(
            refused(r#"{"viewId":"v","date":{"start":}}"#),
            "the body is not valid JSON (it breaks off at date.start)"
        );
        assert_eq!(refused("nope"), "the body is not valid JSON");
        assert_eq!(
            refused(r#"{"viewId":"v"} x"#),
            "the body is not valid JSON (more follows its value)"
        );
    }

    #[test]
    fn no_message_carries_parser_text() {
        for json in [
            r#"{"viewId":5}"#,
            r#"{"viewId":"v","expiresInMinutes":1.5}"#,
            r#"{"viewId":"v","expiresInMinutes":"x"}"#,
            r#"{"viewId":"v","date":5}"#,
            r#"{"viewId":null}"#,
            "{\"viewId\":\"v\",\"date\":{\"start\":1e400}}",
            "{",
        ] {
            let message = refused(json);
            assert!(!rusty(&message), "{json}: {message}");
            assert!(!message.contains("line 1"), "{json}: {message}");
            assert!(!message.contains("Failed"), "{json}: {message}");
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Page {
        page_size: Option<u32>,
        set_as_live: Option<bool>,
    }

    #[test]
    fn a_query_parameter_is_named_too() {
        let refused = |q: &str| from_query::<Page>(q).unwrap_err();
        assert_eq!(refused("pageSize=x"), "pageSize: expected a number");
        assert_eq!(
            refused("setAsLive=yes"),
            "setAsLive: expected true or false"
        );
        assert!(from_query::<Page>("pageSize=3&setAsLive=false").is_ok());
    }

    #[test]
    fn long_paths_are_cut() {
        let key = "k".repeat(1_000);
        let message = describe(&key, "invalid type: map, expected a string");
        assert!(message.chars().count() < MAX_PATH_CHARS + 60, "{message}");
    }
}
