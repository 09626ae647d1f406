//! `{{variable}}` templates for bootenv kernel arguments, answer files and
//! boot scripts. An unknown variable is an error naming it, so a typo in a
//! cluster file shows up when the script is rendered, not as a machine that
//! boots with a literal `{{nod_name}}`.

use std::collections::BTreeMap;

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown template variable `{0}`")]
    Unknown(String),
    #[error("unclosed `{{{{` in template")]
    Unclosed,
}

/// Replaces every `{{name}}` with its value.
pub fn render(template: &str, vars: &BTreeMap<&str, String>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let name = after[..end].trim();
        let value = vars
            .get(name)
            .ok_or_else(|| TemplateError::Unknown(name.to_string()))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_and_refuses_unknown() {
        let vars = BTreeMap::from([("node_name", "n1".to_string()), ("ip", "10.0.0.1".into())]);
        assert_eq!(
            render("a={{node_name}} b={{ ip }}!", &vars).unwrap(),
            "a=n1 b=10.0.0.1!"
        );
        assert_eq!(
            render("{{nod_name}}", &vars),
            Err(TemplateError::Unknown("nod_name".into()))
        );
        assert_eq!(render("{{node_name", &vars), Err(TemplateError::Unclosed));
        assert_eq!(render("no vars", &vars).unwrap(), "no vars");
    }
}
