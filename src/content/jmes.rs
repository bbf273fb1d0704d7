//! `jmesPath` entries of a secret object: fields of a JSON secret written as files of their own.
//!
//! The shape follows the AWS provider's `jmesPath` (a list of `{path, objectAlias}`;
//! `aws/secrets-store-csi-driver-provider-aws`, README "jmesPath"), the language is JMESPath
//! (<https://jmespath.org/specification.html>), evaluated by the JMESPath project's own Rust crate.
//! A result that is a string is written as its raw text; numbers, booleans, arrays and objects as
//! compact JSON; `null` (including a path that selects nothing) is an error.
//!
//! Both the expression (from the SecretProviderClass) and the secret value are tenant input, so
//! the work is bounded before anything runs:
//! - an expression is at most [`MAX_EXPRESSION_BYTES`] bytes with at most
//!   [`MAX_NESTING_CHARACTERS`] nesting characters (the parser recurses), and an object has at
//!   most [`MAX_PATHS_PER_OBJECT`] entries with at most [`MAX_OBJECT_NESTING_CHARACTERS`] nesting
//!   characters in all (evaluation work; checked when the request is parsed);
//! - only the part of JMESPath whose results are pieces of the document is accepted: no
//!   multi-select lists or hashes and no `join`/`to_string` (each can copy the document into its
//!   result again and again, so that a short expression would build an exponentially large
//!   value); every accepted expression evaluates in time linear in the document per stage;
//! - the JSON value is parsed with serde_json's nesting limit (128) and is at most
//!   `--max-keyvault-response-bytes` long; each result file is at most twice the secret's size
//!   plus [`RESULT_SLACK_BYTES`];
//! - the caller runs [`extract`] on the bounded blocking pool.
//!
//! Errors name the path (never the value): the value is not JSON (kind and position only), a
//! path selects nothing or `null`, a function got an argument of the wrong type.

use jmespath::ast::Ast;
use jmespath::{Context, DEFAULT_RUNTIME, ErrorReason, Rcvar, RuntimeError, Variable};

/// Longest `path` expression accepted.
pub const MAX_EXPRESSION_BYTES: usize = 512;
/// Most nesting characters (`. | ! & ( [ { < > =`) one expression may hold: the JMESPath
/// parser and evaluator recurse once per nesting level, about 8 KiB of stack each in a debug
/// build, so this keeps them far inside a 2 MiB thread stack.
pub const MAX_NESTING_CHARACTERS: usize = 32;
/// Most nesting characters of all the `jmesPath` entries of one object together: evaluation
/// costs about one pass over (a level of) the document per nesting character, so this bounds
/// one object's work to about 128 passes over at most `--max-keyvault-response-bytes` of JSON.
pub const MAX_OBJECT_NESTING_CHARACTERS: usize = 128;
/// Most `jmesPath` entries one object may have.
pub const MAX_PATHS_PER_OBJECT: usize = 64;
/// Added to twice the secret's size to give the largest result file (room for literals).
pub const RESULT_SLACK_BYTES: usize = 4096;

/// JMESPath functions whose results are no larger than their arguments.
const ALLOWED_FUNCTIONS: &[&str] = &[
    "abs",
    "avg",
    "ceil",
    "contains",
    "ends_with",
    "floor",
    "keys",
    "length",
    "map",
    "max",
    "max_by",
    "merge",
    "min",
    "min_by",
    "not_null",
    "reverse",
    "sort",
    "sort_by",
    "starts_with",
    "sum",
    "to_array",
    "to_number",
    "type",
    "values",
];

/// Checks one `path` as written in a SecretProviderClass: length, syntax, accepted subset.
pub fn validate(expression: &str) -> Result<(), String> {
    if expression.is_empty() {
        return Err("path must not be empty".into());
    }
    if expression.len() > MAX_EXPRESSION_BYTES {
        return Err(format!(
            "path is {} bytes, more than the limit of {MAX_EXPRESSION_BYTES}",
            expression.len()
        ));
    }
    let nesting = nesting(expression);
    if nesting > MAX_NESTING_CHARACTERS {
        return Err(format!(
            "path has {nesting} of the characters . | ! & ( [ {{ < > =, more than the limit of {MAX_NESTING_CHARACTERS}"
        ));
    }
    let compiled = jmespath::compile(expression).map_err(|e| match e.reason {
        ErrorReason::Parse(problem) => format!(
            "not a valid JMESPath expression (column {}): {}",
            e.column,
            crate::text::echo(&problem)
        ),
        ErrorReason::Runtime(_) => "not a valid JMESPath expression".into(),
    })?;
    check_subset(compiled.as_ast())
}

/// The nesting characters (`. | ! & ( [ { < > =`) of an expression.
pub fn nesting(expression: &str) -> usize {
    expression
        .bytes()
        .filter(|b| b".|!&([{<>=".contains(b))
        .count()
}

/// Checks the entries of one object together: count and total nesting (each is also checked
/// alone by [`validate`]).
pub fn validate_all<'a>(paths: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let (mut count, mut total) = (0usize, 0usize);
    for path in paths {
        count += 1;
        total += nesting(path);
    }
    if count > MAX_PATHS_PER_OBJECT {
        return Err(format!(
            "jmesPath has {count} entries, more than the limit of {MAX_PATHS_PER_OBJECT}"
        ));
    }
    if total > MAX_OBJECT_NESTING_CHARACTERS {
        return Err(format!(
            "jmesPath entries have {total} of the characters . | ! & ( [ {{ < > = in all, more than the limit of {MAX_OBJECT_NESTING_CHARACTERS} per object; split the entries over several objects or simplify the paths"
        ));
    }
    Ok(())
}

/// Walks the syntax tree and refuses the constructs that can multiply the document.
fn check_subset(ast: &Ast) -> Result<(), String> {
    let mut stack = vec![ast];
    while let Some(node) = stack.pop() {
        match node {
            Ast::MultiList { .. } | Ast::MultiHash { .. } => {
                return Err(
                    "multi-select lists and hashes ([a, b], {k: v}) are not supported; use one jmesPath entry per field".into(),
                );
            }
            Ast::Function { name, args, .. } => {
                if !ALLOWED_FUNCTIONS.contains(&name.as_str()) {
                    return Err(format!(
                        "function {} is not supported in jmesPath (supported: {})",
                        crate::text::echo(name),
                        ALLOWED_FUNCTIONS.join(", ")
                    ));
                }
                stack.extend(args.iter());
            }
            Ast::Comparison { lhs, rhs, .. }
            | Ast::Projection { lhs, rhs, .. }
            | Ast::And { lhs, rhs, .. }
            | Ast::Or { lhs, rhs, .. }
            | Ast::Subexpr { lhs, rhs, .. } => {
                stack.push(lhs);
                stack.push(rhs);
            }
            Ast::Condition {
                predicate, then, ..
            } => {
                stack.push(predicate);
                stack.push(then);
            }
            Ast::Expref { ast, .. } => stack.push(ast),
            Ast::Flatten { node, .. } | Ast::Not { node, .. } | Ast::ObjectValues { node, .. } => {
                stack.push(node)
            }
            Ast::Identity { .. }
            | Ast::Field { .. }
            | Ast::Index { .. }
            | Ast::Literal { .. }
            | Ast::Slice { .. } => {}
        }
    }
    Ok(())
}

/// Why one entry gave no file. Never contains the secret's value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JmesError {
    /// The secret's value is not JSON (kind and position only).
    #[error("the secret's value is not JSON ({0}), so its jmesPath entries cannot be read")]
    NotJson(String),
    /// One entry failed; `path` is the expression as written.
    #[error("jmesPath path {path:?}: {problem}")]
    Path { path: String, problem: String },
}

/// Evaluates every `path` against the JSON `value`, in order: one file's contents per path.
pub fn extract(value: &str, paths: &[String]) -> Result<Vec<Vec<u8>>, JmesError> {
    validate_all(paths.iter().map(String::as_str)).map_err(|problem| JmesError::Path {
        path: String::new(),
        problem,
    })?;
    let parsed: serde_json::Value =
        serde_json::from_str(value).map_err(|e| JmesError::NotJson(json_problem(&e)))?;
    // Converted once: `Expression::search` would convert (re-serialize) the whole document for
    // every entry.
    let document: Rcvar = Variable::try_from(parsed)
        .map(Rcvar::new)
        .map_err(|_| JmesError::NotJson("it holds a value JMESPath cannot represent".into()))?;
    let limit = value
        .len()
        .saturating_mul(2)
        .saturating_add(RESULT_SLACK_BYTES);
    paths
        .iter()
        .map(|path| {
            let fail = |problem: String| JmesError::Path {
                path: crate::text::echo(path).into_owned(),
                problem,
            };
            validate(path).map_err(fail)?;
            let compiled =
                jmespath::compile(path).map_err(|_| fail("invalid expression".into()))?;
            let mut context = Context::new(path, &DEFAULT_RUNTIME);
            let result = jmespath::interpret(&document, compiled.as_ast(), &mut context)
                .map_err(|e| fail(runtime_problem(&e.reason)))?;
            render(&result, limit).map_err(fail)
        })
        .collect()
}

/// A result as file contents: strings raw, everything else compact JSON, `null` refused.
fn render(result: &Variable, limit: usize) -> Result<Vec<u8>, String> {
    let bytes = match result {
        Variable::Null => {
            return Err(
                "selects nothing (the result is null); check the path against the secret's JSON"
                    .into(),
            );
        }
        Variable::String(text) => text.as_bytes().to_vec(),
        Variable::Expref(_) => {
            return Err("the result is an expression reference (&...), not a value".into());
        }
        other => {
            let mut out = Bounded {
                bytes: Vec::new(),
                limit,
            };
            serde_json::to_writer(&mut out, other)
                .map_err(|_| format!("the result is larger than {limit} bytes (twice the secret's size plus {RESULT_SLACK_BYTES})"))?;
            out.bytes
        }
    };
    if bytes.len() > limit {
        return Err(format!(
            "the result is larger than {limit} bytes (twice the secret's size plus {RESULT_SLACK_BYTES})"
        ));
    }
    Ok(bytes)
}

/// A writer that refuses to grow past `limit`.
struct Bounded {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("result too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A JSON error as its kind and position: serde_json's message may quote the value.
fn json_problem(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match e.classify() {
        Category::Io => "I/O error",
        Category::Syntax => "syntax error",
        Category::Data => "unexpected JSON type or value",
        Category::Eof => "unexpected end of JSON input",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

/// An evaluation error by kind, with types and counts but never a value.
fn runtime_problem(reason: &ErrorReason) -> String {
    match reason {
        ErrorReason::Runtime(RuntimeError::InvalidType {
            expected, position, ..
        }) => format!(
            "argument {} of a function has the wrong type (expected {})",
            position + 1,
            crate::text::echo(expected)
        ),
        ErrorReason::Runtime(RuntimeError::InvalidReturnType {
            expected, position, ..
        }) => format!(
            "the expression given as argument {} of a function returns the wrong type (expected {})",
            position + 1,
            crate::text::echo(expected)
        ),
        ErrorReason::Runtime(RuntimeError::TooManyArguments { expected, actual })
        | ErrorReason::Runtime(RuntimeError::NotEnoughArguments { expected, actual }) => {
            format!("a function takes {expected} arguments, not {actual}")
        }
        ErrorReason::Runtime(RuntimeError::UnknownFunction(name)) => {
            format!("unknown function {}", crate::text::echo(name))
        }
        ErrorReason::Runtime(RuntimeError::InvalidSlice) => "a slice has a step of 0".into(),
        ErrorReason::Parse(_) => "invalid expression".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str, path: &str) -> Result<Vec<u8>, JmesError> {
        extract(value, &[path.to_string()]).map(|mut v| v.remove(0))
    }

    const DOC: &str = r#"{"username":"app","port":5432,"ssl":true,"ratio":0.5,
        "conn":{"host":"db.internal","opts":{"b":2,"a":"x y"}},
        "hosts":["h1","h2"],"users":[{"name":"a","pw":"pa"},{"name":"b","pw":"pb"}],
        "nothing":null,"unicode":"p\u00e4ss\nw\"rd"}"#;

    #[test]
    fn strings_raw_everything_else_compact_json() {
        let cases: [(&str, &[u8]); 11] = [
            ("username", b"app"),
            ("port", b"5432"),
            ("ssl", b"true"),
            ("ratio", b"0.5"),
            ("conn.host", b"db.internal"),
            ("conn.opts", br#"{"a":"x y","b":2}"#),
            ("hosts", br#"["h1","h2"]"#),
            ("hosts[1]", b"h2"),
            ("users[?name=='b'].pw | [0]", b"pb"),
            ("unicode", "p\u{e4}ss\nw\"rd".as_bytes()),
            ("length(users)", b"2"),
        ];
        for (path, want) in cases {
            assert_eq!(one(DOC, path).unwrap(), want, "{path}");
        }
        let both = extract(DOC, &["username".into(), "conn.host".into()]).unwrap();
        assert_eq!(both, [b"app".to_vec(), b"db.internal".to_vec()]);
    }

    #[test]
    fn nothing_or_null_is_an_error_naming_the_path() {
        for path in ["missing", "nothing", "conn.port", "hosts[5]"] {
            let e = one(DOC, path).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("jmesPath path {path:?}: selects nothing")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_value_that_is_not_json_is_named_without_its_content() {
        let e = one("hunter2-SECRET", "a").unwrap_err().to_string();
        assert_eq!(
            e,
            "the secret's value is not JSON (syntax error at line 1 column 1), so its jmesPath entries cannot be read"
        );
        let e = one(r#"{"a": "SECRETVALUE"#, "a").unwrap_err().to_string();
        assert!(!e.contains("SECRET"), "{e}");
    }

    #[test]
    fn runtime_errors_carry_no_value() {
        let e = one(r#"{"a":"SECRETVALUE"}"#, "abs(a)")
            .unwrap_err()
            .to_string();
        assert!(e.contains("jmesPath path \"abs(a)\": argument 1"), "{e}");
        assert!(!e.contains("SECRETVALUE"), "{e}");
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(validate("conn.host").is_ok());
        assert!(validate("users[?name=='a'].pw | [0]").is_ok());
        assert!(validate("sort_by(users, &name)[0].name").is_ok());
        assert!(validate("").unwrap_err().contains("must not be empty"));
        assert!(
            validate("conn.[")
                .unwrap_err()
                .starts_with("not a valid JMESPath expression")
        );
        assert!(
            validate("[username, port]")
                .unwrap_err()
                .contains("multi-select")
        );
        assert!(
            validate("{u: username}")
                .unwrap_err()
                .contains("multi-select")
        );
        assert!(
            validate("join(',', hosts)")
                .unwrap_err()
                .contains("function join is not supported")
        );
        assert!(
            validate("map(&to_string(@), hosts)")
                .unwrap_err()
                .contains("function to_string")
        );
        let long = "a".repeat(MAX_EXPRESSION_BYTES + 1);
        assert!(
            validate(&long)
                .unwrap_err()
                .contains("more than the limit of 512")
        );
        assert!(validate(&"a".repeat(MAX_EXPRESSION_BYTES)).is_ok());
    }

    #[test]
    fn deep_nesting_within_the_limits_parses_on_a_small_stack() {
        let n = MAX_NESTING_CHARACTERS;
        let cases = [
            format!("{}a{}", "(".repeat(n), ")".repeat(n)),
            format!("{}a", "!".repeat(n)),
            vec!["a"; n + 1].join("."),
            vec!["a"; n + 1].join("|"),
            "[*]".repeat(n),
            format!("{}a{}", "a[?".repeat(n), "]".repeat(n)),
            format!("{}a{}", "map(&".repeat(n / 2), ", @)".repeat(n / 2)),
        ];
        for path in &cases {
            let over = format!("{path}|a");
            assert!(
                validate(&over)
                    .unwrap_err()
                    .contains("more than the limit of 32"),
                "{over}"
            );
        }
        let doc = format!("{}1{}", "{\"a\":".repeat(100), "}".repeat(100));
        // 512 KiB: a quarter of a default thread stack, in a debug build.
        std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || {
                for path in cases {
                    validate(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                    let _ = extract(&doc, &[path]);
                }
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
    }

    #[test]
    fn results_are_bounded() {
        let literal = format!("`\"{}\"`", "x".repeat(400));
        let doc = format!("[{}]", vec!["0"; 2000].join(","));
        let e = one(&doc, &format!("map(&{literal}, @)"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("the result is larger than"), "{e}");
        assert_eq!(one("[1,2]", "[*]").unwrap(), b"[1,2]");
    }
}
