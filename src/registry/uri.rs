//! Routing resources by URI: an exact listed URI first, then the servers' URI templates (RFC 6570,
//! reduced to "could this URI be an expansion of that template?").

/// A URI template compiled for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `{var}`: one or more characters, none of `/ ? #` (simple expansion encodes them).
    Simple,
    /// `{+var}`: any characters (reserved expansion).
    Reserved,
    /// `{/var}`, `{.var}`, `{;var}`, `{?var}`, `{&var}`, `{#var}`: nothing, or the operator and then
    /// what that expansion may contain.
    Prefixed {
        operator: char,
        stop: &'static [char],
    },
}

/// Work allowed for one match, so a hostile template cannot make routing slow.
const MAX_STEPS: usize = 10_000;

impl UriTemplate {
    pub fn parse(template: &str) -> UriTemplate {
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let Some(end) = rest.find('}') else {
                        parts.push(Part::Literal(rest.to_string()));
                        break;
                    };
                    parts.push(match rest[1..end].chars().next() {
                        Some('+') => Part::Reserved,
                        Some('#') => Part::Prefixed {
                            operator: '#',
                            stop: &[],
                        },
                        Some(op @ ('/' | '.' | ';')) => Part::Prefixed {
                            operator: op,
                            stop: &['?', '#'],
                        },
                        Some(op @ ('?' | '&')) => Part::Prefixed {
                            operator: op,
                            stop: &['#'],
                        },
                        _ => Part::Simple,
                    });
                    rest = &rest[end + 1..];
                }
                Some(start) => {
                    parts.push(Part::Literal(rest[..start].to_string()));
                    rest = &rest[start..];
                }
                None => {
                    parts.push(Part::Literal(rest.to_string()));
                    break;
                }
            }
        }
        UriTemplate { parts }
    }

    /// Whether `uri` could be an expansion of this template.
    pub fn matches(&self, uri: &str) -> bool {
        let mut steps = 0;
        self.match_from(0, uri, &mut steps)
    }

    fn match_from(&self, part: usize, rest: &str, steps: &mut usize) -> bool {
        *steps += 1;
        if *steps > MAX_STEPS {
            return false;
        }
        let Some(current) = self.parts.get(part) else {
            return rest.is_empty();
        };
        match current {
            Part::Literal(literal) => rest
                .strip_prefix(literal.as_str())
                .is_some_and(|rest| self.match_from(part + 1, rest, steps)),
            Part::Simple => self.take_run(part, rest, 1, &['/', '?', '#'], steps),
            Part::Reserved => self.take_run(part, rest, 0, &[], steps),
            Part::Prefixed { operator, stop } => {
                self.match_from(part + 1, rest, steps)
                    || rest
                        .strip_prefix(*operator)
                        .is_some_and(|rest| self.take_run(part, rest, 0, stop, steps))
            }
        }
    }

    /// Consumes `min` or more characters not in `stop`, then matches the remaining parts.
    fn take_run(
        &self,
        part: usize,
        rest: &str,
        min: usize,
        stop: &[char],
        steps: &mut usize,
    ) -> bool {
        let run_end = rest.find(|c| stop.contains(&c)).unwrap_or(rest.len());
        // Longest first: variables usually run to the next literal.
        (min..=run_end)
            .rev()
            .filter(|&end| rest.is_char_boundary(end))
            .any(|end| self.match_from(part + 1, &rest[end..], steps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_variables_stop_at_slashes() {
        let t = UriTemplate::parse("demo://echo/{text}");
        assert!(t.matches("demo://echo/hello"));
        assert!(!t.matches("demo://echo/a/b"));
        assert!(!t.matches("demo://echo/"));
        assert!(!t.matches("other://echo/x"));
        let t = UriTemplate::parse("file:///{+path}");
        assert!(t.matches("file:///a/b/c.txt"));
        let t = UriTemplate::parse("repo://{owner}/{repo}/issues");
        assert!(t.matches("repo://me/gw/issues"));
        assert!(!t.matches("repo://me/gw/pulls"));
    }

    #[test]
    fn operators_are_optional() {
        let t = UriTemplate::parse("search://items{?q,limit}");
        assert!(t.matches("search://items"));
        assert!(t.matches("search://items?q=x&limit=3"));
        let t = UriTemplate::parse("x://a{/seg}");
        assert!(t.matches("x://a") && t.matches("x://a/b"));
        assert!(UriTemplate::parse("plain://thing").matches("plain://thing"));
        assert!(!UriTemplate::parse("plain://thing").matches("plain://thing2"));
    }

    #[test]
    fn pathological_templates_stay_bounded() {
        // Without the step bound this would try ~200^40 splits.
        let t = UriTemplate::parse(&format!("{}z", "{+a}".repeat(40)));
        assert!(!t.matches(&"x".repeat(200)));
    }
}
