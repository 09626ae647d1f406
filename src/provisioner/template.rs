//! `{{variable}}` templates for bootenv kernel arguments, answer files and
//! boot scripts. An unknown variable is an error naming it, so a typo in a
//! cluster file shows up when the script is rendered, not as a machine that
//! boots with a literal `{{nod_name}}`.
//!
//! Besides the flat variables, a template may reach into a JSON tree by a
//! dotted path: `{{inventory.disks.0.name}}` is the first disk's name of
//! the node's inventory (object keys and array indexes). A path that leads
//! nowhere is as unknown as a misspelt variable.

use std::collections::BTreeMap;

use serde_json::Value;

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
    render_with(template, vars, &Value::Null)
}

/// Replaces every `{{name}}` with its value from `vars`, else with what the
/// dotted path `name` reaches in `tree` (text as it is, anything else as
/// JSON).
pub fn render_with(
    template: &str,
    vars: &BTreeMap<&str, String>,
    tree: &Value,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let name = after[..end].trim();
        match vars.get(name) {
            Some(value) => out.push_str(value),
            None => {
                let found =
                    lookup(tree, name).ok_or_else(|| TemplateError::Unknown(name.to_string()))?;
                match found {
                    Value::String(text) => out.push_str(text),
                    other => out.push_str(&other.to_string()),
                }
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value at a dotted path (`a.b.0.c`); `None` when any step is missing.
fn lookup<'a>(tree: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    path.split('.').try_fold(tree, |node, step| match node {
        Value::Object(map) => map.get(step),
        Value::Array(items) => items.get(step.parse::<usize>().ok()?),
        _ => None,
    })
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

    #[test]
    fn dotted_paths_reach_into_the_tree() {
        let vars = BTreeMap::from([("node_name", "n1".to_string())]);
        let tree = serde_json::json!({"inventory": {
            "memory_mib": 2048,
            "disks": [{"name": "vda", "rotational": false}],
        }});
        assert_eq!(
            render_with(
                "{{node_name}} {{inventory.disks.0.name}} {{inventory.memory_mib}} {{inventory.disks.0.rotational}}",
                &vars,
                &tree
            )
            .unwrap(),
            "n1 vda 2048 false"
        );
        for missing in [
            "inventory.disks.1.name",
            "inventory.nics",
            "inventory.disks.x",
            "inventory.",
        ] {
            assert_eq!(
                render_with(&format!("{{{{{missing}}}}}"), &vars, &tree),
                Err(TemplateError::Unknown(missing.into()))
            );
        }
        assert_eq!(
            render("{{inventory.disks.0.name}}", &vars),
            Err(TemplateError::Unknown("inventory.disks.0.name".into()))
        );
    }
}
