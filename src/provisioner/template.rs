//! Templates for bootenv kernel arguments, answer files and boot scripts,
//! in Jinja syntax (minijinja): `{{ var }}`, dotted paths into the node's
//! tree such as `{{ inventory.disks.0.name }}`, and `{% for %}` / `{% if %}`
//! blocks that loop over interfaces, disks and keys. Nothing is escaped
//! (these are kernel lines and shell scripts, not HTML); `true`/`false`,
//! lists and maps print as JSON.
//!
//! Undefined is an error, as a misspelt variable must be: a template of
//! plain `{{ path }}` substitutions (every one kiln had before Jinja) gets
//! the error naming the path, so a typo in a cluster file shows up when the
//! script is rendered, not as a machine that boots with a literal
//! `{{nod_name}}`; a template with blocks gets the engine's error with its
//! line, quoted.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown template variable `{0}`")]
    Unknown(String),
    #[error("unclosed `{{{{` in template")]
    Unclosed,
    /// The engine's own error (a syntax error, an undefined value inside
    /// a block), with the template line it names.
    #[error("template line {line}: {message}")]
    Engine { line: usize, message: String },
}

/// Renders `template` with `vars` as its variables.
pub fn render(template: &str, vars: &BTreeMap<&str, String>) -> Result<String, TemplateError> {
    render_with(template, vars, &Value::Null)
}

/// Renders `template` with the keys of `tree` (an object) and `vars` over
/// them as its variables.
pub fn render_with(
    template: &str,
    vars: &BTreeMap<&str, String>,
    tree: &Value,
) -> Result<String, TemplateError> {
    let context = context_of(vars, tree);
    if !template.contains("{%") {
        check_plain_paths(template, &context)?;
    }
    environment()
        .render_str(template, minijinja::Value::from_serialize(&context))
        .map_err(|e| engine_error(template, &e))
}

/// The engine's error with its line; an undefined value quotes the line,
/// which names what was undefined.
fn engine_error(template: &str, e: &minijinja::Error) -> TemplateError {
    let line = e.line().unwrap_or(1);
    let message = match e.kind() {
        ErrorKind::UndefinedError => {
            let text: String = template
                .lines()
                .nth(line.saturating_sub(1))
                .unwrap_or_default()
                .trim()
                .chars()
                .take(200)
                .collect();
            format!("undefined value in `{text}`")
        }
        _ => e
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string()),
    };
    TemplateError::Engine { line, message }
}

/// The variables a template sees: `tree`'s keys, `vars` over them.
fn context_of(vars: &BTreeMap<&str, String>, tree: &Value) -> Value {
    let mut context = match tree {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    for (name, value) in vars {
        context.insert((*name).to_string(), Value::String(value.clone()));
    }
    Value::Object(context)
}

/// The one environment: strict about undefined values, no escaping, the
/// template's last newline kept (answer files end with one).
fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_formatter(|out, state, value| match value.kind() {
            ValueKind::Bool => {
                out.write_str(if value.is_true() { "true" } else { "false" })?;
                Ok(())
            }
            ValueKind::Seq | ValueKind::Map => {
                let json = serde_json::to_string(value).map_err(|e| {
                    minijinja::Error::new(ErrorKind::BadSerialization, e.to_string())
                })?;
                out.write_str(&json)?;
                Ok(())
            }
            _ => minijinja::escape_formatter(out, state, value),
        });
        env
    })
}

/// Every `{{ path }}` that is a plain dotted path must lead somewhere in
/// `context`: the first that does not is named.
fn check_plain_paths(template: &str, context: &Value) -> Result<(), TemplateError> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let expression = after[..end].trim();
        let plain = !expression.is_empty()
            && expression
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if plain && lookup(context, expression).is_none() {
            return Err(TemplateError::Unknown(expression.to_string()));
        }
        rest = &after[end + 2..];
    }
    Ok(())
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
        // Nothing is escaped: these are kernel lines and scripts.
        assert_eq!(
            render("echo '<{{node_name}}>' && true\n", &vars).unwrap(),
            "echo '<n1>' && true\n"
        );
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

    #[test]
    fn blocks_loop_over_the_tree_and_are_strict_too() {
        let vars = BTreeMap::from([("node_name", "n1".to_string())]);
        let tree = serde_json::json!({
            "interfaces": [{"mac": "52:54:00:00:00:01", "ip": "10.0.0.11"}, {"mac": "52:54:00:00:00:02", "ip": null}],
            "keys": ["ssh-ed25519 AAAA one", "ssh-ed25519 AAAA two"],
        });
        let template = "{% for i in interfaces %}{{ i.mac }}={{ i.ip or 'dhcp' }}\n{% endfor %}\
{% for k in keys %}- {{ k }}\n{% endfor %}{% if interfaces | length > 1 %}bond{% endif %}\n";
        assert_eq!(
            render_with(template, &vars, &tree).unwrap(),
            "52:54:00:00:00:01=10.0.0.11\n52:54:00:00:00:02=dhcp\n- ssh-ed25519 AAAA one\n- ssh-ed25519 AAAA two\nbond\n"
        );
        assert_eq!(
            render_with("{{ interfaces }}", &vars, &tree).unwrap(),
            r#"[{"ip":"10.0.0.11","mac":"52:54:00:00:00:01"},{"ip":null,"mac":"52:54:00:00:00:02"}]"#
        );
        let err = render_with(
            "line one\n{% for i in interfaces %}{{ i.gateway }}{% endfor %}",
            &vars,
            &tree,
        )
        .unwrap_err();
        assert_eq!(
            err,
            TemplateError::Engine {
                line: 2,
                message:
                    "undefined value in `{% for i in interfaces %}{{ i.gateway }}{% endfor %}`"
                        .into()
            }
        );
        assert!(matches!(
            render("{% for x in %}", &vars),
            Err(TemplateError::Engine { line: 1, .. })
        ));
    }
}
