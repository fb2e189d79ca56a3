//! `${VAR}` expansion of config strings.
//!
//! Forms: `${VAR}` (an error when unset), `${VAR:-default}` (the default when unset or empty, as in the
//! shell), `$$` for a literal `$`. A `$` followed by anything else is kept as is. Expansion runs once:
//! a variable's value is never expanded again. Error messages name variables but never contain their
//! values, which are often secrets. `${MCP_GATEWAY_PROCESS_DIR}` is kept as written: it is filled in
//! for each server process when it starts (a private directory of that process).
//!
//! What editors write in their MCP configs, so that theirs can be pasted: `${env:VAR}` (VS Code,
//! Cursor) is `${VAR}`, `${userHome}` (Cursor) is `$HOME`; `${input:…}` (VS Code prompts for it)
//! and `${workspaceFolder}` (VS Code, Cursor) have no meaning outside the editor and are errors that
//! say what to write instead.

/// Expands `text`, looking variables up with `env`. On failure returns one message per bad reference.
pub(super) fn expand(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body_and_tail) = after.strip_prefix('{') {
            let Some(close) = body_and_tail.find('}') else {
                errors.push(
                    "unterminated \"${\": add the closing \"}\" (or write $$ for a literal $)"
                        .to_owned(),
                );
                return Err(errors);
            };
            match reference(&body_and_tail[..close], env) {
                Ok(value) => out.push_str(&value),
                Err(message) => errors.push(message),
            }
            rest = &body_and_tail[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The placeholder filled in per server process (`downstream::process_dir`).
pub const PROCESS_DIR: &str = "${MCP_GATEWAY_PROCESS_DIR}";

/// Resolves the inside of one `${...}`.
fn reference(body: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if body == &PROCESS_DIR[2..PROCESS_DIR.len() - 1] {
        return Ok(PROCESS_DIR.to_string());
    }
    if let Some(id) = body.strip_prefix("input:") {
        return Err(format!(
            "\"${{input:{id}}}\" is a value VS Code asks you for; the gateway cannot ask: put it in an environment variable and write ${{NAME}}"
        ));
    }
    if matches!(
        body,
        "workspaceFolder" | "workspaceRoot" | "workspaceFolderBasename"
    ) {
        return Err(format!(
            "\"${{{body}}}\" is the editor's open folder; the gateway has none: write the path (or ${{NAME}} of a variable that holds it)"
        ));
    }
    if body == "userHome" {
        return reference("HOME", env);
    }
    let body = body.strip_prefix("env:").unwrap_or(body);
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    if !is_variable_name(name) {
        return Err(format!(
            "\"${{{body}}}\" is not a valid variable reference: write ${{NAME}} or ${{NAME:-default}}, \
             where NAME is letters, digits and \"_\" not starting with a digit (or $$ for a literal $)"
        ));
    }
    if default.is_some_and(|d| d.contains("${")) {
        return Err(format!(
            "\"${{{body}}}\": a default cannot contain another ${{...}} (nesting is not supported)"
        ));
    }
    match (env(name), default) {
        (Some(value), None) => Ok(value),
        (Some(value), Some(_)) if !value.is_empty() => Ok(value),
        (_, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(format!(
            "environment variable {name} is not set (write ${{{name}:-default}} to give a fallback)"
        )),
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".into()),
            "EMPTY" => Some(String::new()),
            "TOKEN" => Some("s3cret-${HOME}".into()),
            _ => None,
        }
    }

    fn ok(text: &str) -> String {
        expand(text, &env).unwrap()
    }

    fn err(text: &str) -> Vec<String> {
        expand(text, &env).unwrap_err()
    }

    #[test]
    fn editor_variables_are_understood_or_explained() {
        assert_eq!(ok("${env:HOME}/x"), "/home/u/x");
        assert_eq!(ok("${userHome}/x"), "/home/u/x");
        let input = err("${input:api-key}");
        assert!(input[0].contains("VS Code asks you for"), "{input:?}");
        let folder = err("${workspaceFolder}/src");
        assert!(folder[0].contains("write the path"), "{folder:?}");
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(ok("no variables here"), "no variables here");
        assert_eq!(ok(""), "");
        assert_eq!(ok("ünïcödé"), "ünïcödé");
    }

    #[test]
    fn set_variables_expand() {
        assert_eq!(ok("${HOME}/data"), "/home/u/data");
        assert_eq!(ok("a${HOME}b${HOME}c"), "a/home/ub/home/uc");
        assert_eq!(ok("[${EMPTY}]"), "[]");
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        assert_eq!(ok("${NOPE:-fallback}"), "fallback");
        assert_eq!(ok("${EMPTY:-fallback}"), "fallback");
        assert_eq!(ok("${HOME:-fallback}"), "/home/u");
        assert_eq!(ok("Bearer ${NOPE:-}"), "Bearer ");
        assert_eq!(ok("${NOPE:-a:-b}"), "a:-b");
    }

    #[test]
    fn dollar_escapes_and_lone_dollars() {
        assert_eq!(ok("$$"), "$");
        assert_eq!(ok("$${HOME}"), "${HOME}");
        assert_eq!(ok("cost: 5$ or $5 or $HOME"), "cost: 5$ or $5 or $HOME");
        assert_eq!(ok("end$"), "end$");
    }

    #[test]
    fn values_are_not_expanded_again() {
        assert_eq!(ok("${TOKEN}"), "s3cret-${HOME}");
    }

    #[test]
    fn unset_variable_is_an_error_naming_it() {
        assert_eq!(
            err("x${API_KEY}y"),
            ["environment variable API_KEY is not set (write ${API_KEY:-default} to give a fallback)"]
        );
    }

    #[test]
    fn every_bad_reference_is_reported() {
        assert_eq!(err("${A1_UNSET} ${B2_UNSET}").len(), 2);
    }

    #[test]
    fn unterminated_reference_is_an_error() {
        let errors = err("abc ${HOME");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("unterminated \"${\""), "{errors:?}");
    }

    #[test]
    fn invalid_names_are_errors() {
        for text in [
            "${}",
            "${1ABC}",
            "${A-B}",
            "${A B}",
            "${:-x}",
            "${A-default}",
        ] {
            let errors = err(text);
            assert!(
                errors[0].contains("is not a valid variable reference"),
                "{text}: {errors:?}"
            );
        }
        assert!(err("${A:-${B}}")[0].contains("nesting is not supported"));
    }

    #[test]
    fn errors_never_contain_values() {
        let errors = err("${TOKEN} ${A-B} ${NOPE}");
        assert!(errors.iter().all(|e| !e.contains("s3cret")), "{errors:?}");
    }
}
