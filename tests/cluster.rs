//! Cluster definition files: every shipped file parses and applies; applying
//! twice changes nothing; a bad file is refused with file, line and field,
//! and leaves the database untouched.

mod common;

use std::path::Path;

use common::TestDb;
use kiln::cluster::{self, ClusterError};
use kiln::db::noderoles;
use kiln::domain::NoderoleState;

/// Every row of every table, as text, table by table in a stable order:
/// what "the database is unchanged" means.
async fn dump(db: &sea_orm::DatabaseConnection) -> Vec<(String, Vec<String>)> {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
    let backend = db.get_database_backend();
    let tables_sql = match backend {
        DatabaseBackend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        }
        _ => {
            "SELECT table_name AS name FROM information_schema.tables \
              WHERE table_schema = 'public' ORDER BY table_name"
        }
    };
    let tables: Vec<String> = db
        .query_all_raw(Statement::from_string(backend, tables_sql))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect();
    assert!(tables.len() > 8, "{tables:?}");
    let mut out = Vec::new();
    for table in tables {
        let sql = match backend {
            DatabaseBackend::Sqlite => {
                let columns: Vec<String> = db
                    .query_all_raw(Statement::from_string(
                        backend,
                        format!("SELECT name FROM pragma_table_info('{table}')"),
                    ))
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| format!("\"{}\"", r.try_get::<String>("", "name").unwrap()))
                    .collect();
                format!(
                    "SELECT json_array({}) AS row FROM \"{table}\" ORDER BY 1",
                    columns.join(", ")
                )
            }
            _ => format!("SELECT row_to_json(t)::text AS row FROM \"{table}\" t ORDER BY 1"),
        };
        let rows = db
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String>("", "row").unwrap())
            .collect();
        out.push((table, rows));
    }
    out
}

async fn row_counts(db: &sea_orm::DatabaseConnection) -> Vec<i64> {
    use sea_orm::{ConnectionTrait, Statement};
    let mut out = Vec::new();
    for table in [
        "role",
        "bootenv",
        "network",
        "node",
        "interface",
        "deployment",
        "noderole",
        "noderole_edge",
    ] {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap();
        out.push(row.try_get::<i64>("", "n").unwrap());
    }
    out
}

on_both_databases!(
    every_shipped_file_applies_and_is_idempotent,
    |backend| async move {
        let test_db = TestDb::new(backend).await;
        let db = test_db.connect().await;
        // Dry runs of every file under config/ change nothing.
        let mut files = vec![Path::new("config/roles.toml").to_path_buf()];
        for entry in std::fs::read_dir("config/clusters").unwrap() {
            files.push(entry.unwrap().path());
        }
        files.sort();
        let before = row_counts(&db).await;
        for path in &files {
            let file = cluster::with_builtin_roles(cluster::load(path).unwrap()).unwrap();
            // burnin.toml builds on seed.toml's nodes.
            if path.ends_with("burnin.toml") {
                continue;
            }
            let (report, _) = cluster::apply(&db, &file, true)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(report.dry_run);
        }
        assert_eq!(row_counts(&db).await, before, "a dry run wrote");

        for name in ["seed.toml", "burnin.toml"] {
            let path = Path::new("config/clusters").join(name);
            let file = cluster::with_builtin_roles(cluster::load(&path).unwrap()).unwrap();
            let (first, _) = cluster::apply(&db, &file, false).await.unwrap();
            assert!(!first.created.is_empty(), "{name}: {first:?}");
            let (second, _) = cluster::apply(&db, &file, false).await.unwrap();
            assert!(
                second.created.is_empty() && second.changed.is_empty(),
                "{name} applied twice changed: {second:?}"
            );
        }
        let nodes = kiln::db::nodes::count(&db).await.unwrap();
        assert_eq!(nodes, 4);
        let refs = noderoles::list_refs(
            &db,
            &noderoles::NoderoleFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(refs.iter().any(|r| r.role == "provisioner-dhcp-database"
            && r.node == "admin.lab.example"
            && r.state == NoderoleState::Todo));
        assert_eq!(refs.iter().filter(|r| r.role == "burnin").count(), 3);
    }
);

on_both_databases!(
    bad_files_name_file_line_field_and_touch_nothing,
    |backend| async move {
        let test_db = TestDb::new(backend).await;
        let db = test_db.connect().await;
        let dir = tempfile::tempdir().unwrap();
        let seed = cluster::with_builtin_roles(
            cluster::load(Path::new("config/clusters/seed.toml")).unwrap(),
        )
        .unwrap();
        cluster::apply(&db, &seed, false).await.unwrap();
        let before = row_counts(&db).await;
        let cases: [(&str, &str, &str); 5] = [
        ("syntax.toml", "[[role]]\nname = \"x\"\njig = \n", "line 3"),
        ("unknown.toml", "[[role]]\nname = \"x\"\njig = \"noop\"\ncolour = \"red\"\n", "unknown field `colour`"),
        (
            "reference.toml",
            "[[role]]\nname = \"ok\"\njig = \"noop\"\n\n[[deployment]]\nname = \"d\"\nbindings = [{ role = \"ok\", nodes = [\"ghost.lab.example\"] }]\n",
            "node `ghost.lab.example` not found",
        ),
        (
            "cycle.toml",
            "[[role]]\nname = \"a\"\njig = \"noop\"\nrequires = [\"b\"]\n\n[[role]]\nname = \"b\"\njig = \"noop\"\nrequires = [\"a\"]\n",
            "cycle",
        ),
        ("flag.toml", "[[role]]\nname = \"x\"\njig = \"noop\"\nflags = [\"shiny\"]\n", "role x flags"),
    ];
        for (name, text, expect) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let result = match cluster::load(&path) {
                Ok(file) => cluster::apply(&db, &file, false).await.map(|_| ()),
                Err(e) => Err(e),
            };
            let err = result.expect_err(name);
            let text = err.to_string();
            assert!(text.contains(name), "{text}");
            assert!(text.contains(expect), "{name}: {text}");
            assert!(
                matches!(
                    err,
                    ClusterError::Parse { .. } | ClusterError::Invalid { .. }
                ),
                "{text}"
            );
            assert_eq!(
                row_counts(&db).await,
                before,
                "{name} wrote to the database"
            );
        }
    }
);

/// Each invalid file: its name, text, and what the refusal must say (the
/// line the parser gives, and the reason).
const INVALID: &[(&str, &str, &[&str])] = &[
    (
        "duplicate-role.toml",
        "[[role]]\nname = \"x\"\njig = \"noop\"\nrequires = [\"kiln-managed-node\"]\n\n[[role]]\nname = \"x\"\njig = \"noop\"\n",
        &["line 7", "role x", "duplicate role name"],
    ),
    (
        "duplicate-node.toml",
        "[[node]]\nname = \"m1.lab.example\"\n\n[[node]]\nname = \"m1.lab.example\"\n",
        &["line 5", "node m1.lab.example", "duplicate node name"],
    ),
    (
        "duplicate-mac.toml",
        "[[node]]\nname = \"m1.lab.example\"\ninterfaces = [{ mac = \"52:54:00:aa:00:01\", ip = \"10.99.0.51\" }]\n\n[[node]]\nname = \"m2.lab.example\"\ninterfaces = [{ mac = \"52:54:00:AA:00:01\", ip = \"10.99.0.52\" }]\n",
        &["line 7", "node m2.lab.example interfaces[0].mac", "duplicate MAC", "m1.lab.example"],
    ),
    (
        "duplicate-ip.toml",
        "[[node]]\nname = \"m1.lab.example\"\ninterfaces = [{ mac = \"52:54:00:aa:00:01\", ip = \"10.99.0.51\" }]\n\n[[node]]\nname = \"m2.lab.example\"\ninterfaces = [{ mac = \"52:54:00:aa:00:02\", ip = \"10.99.0.51\" }]\n",
        &["line 7", "node m2.lab.example interfaces[0].ip", "duplicate IP address 10.99.0.51", "m1.lab.example"],
    ),
    (
        "duplicate-ip-in-database.toml",
        "[[node]]\nname = \"m1.lab.example\"\ninterfaces = [{ mac = \"52:54:00:aa:00:01\", ip = \"10.99.0.11\" }]\n",
        &["line 3", "interfaces[0].ip", "duplicate IP address 10.99.0.11", "n1.lab.example"],
    ),
    (
        "duplicate-mac-in-database.toml",
        "[[node]]\nname = \"m1.lab.example\"\ninterfaces = [{ mac = \"52:54:00:99:00:11\", ip = \"10.99.0.51\" }]\n",
        &["line 3", "interfaces[0].mac", "duplicate MAC", "n1.lab.example"],
    ),
    (
        "outside.toml",
        "[[node]]\nname = \"m1.lab.example\"\ninterfaces = [{ mac = \"52:54:00:aa:00:01\", ip = \"10.98.0.5\" }]\n",
        &["line 3", "interfaces[0].ip", "10.98.0.5 is in no declared network"],
    ),
    (
        "broadcast.toml",
        "[[node]]\nname = \"m1.lab.example\"\ninterfaces = [{ mac = \"52:54:00:aa:00:01\", ip = \"10.99.0.255\" }]\n",
        &["line 3", "interfaces[0].ip", "broadcast address of network admin"],
    ),
    (
        "network-address.toml",
        "[[node]]\nname = \"m1.lab.example\"\ninterfaces = [{ mac = \"52:54:00:aa:00:01\", ip = \"10.99.0.0\" }]\n",
        &["line 3", "interfaces[0].ip", "network address of network admin"],
    ),
    (
        "prefix.toml",
        "[[network]]\nname = \"big\"\nsubnet = \"10.50.0.0/33\"\n",
        &["line 3", "network big subnet", "prefix /33"],
    ),
    (
        "host-bits.toml",
        "[[network]]\nname = \"lab\"\nsubnet = \"10.50.0.7/24\"\n",
        &["line 3", "network lab subnet", "10.50.0.0/24"],
    ),
    (
        "overlap.toml",
        "[[network]]\nname = \"wide\"\nsubnet = \"10.99.0.0/16\"\n",
        &["line 3", "network wide subnet", "overlaps network admin"],
    ),
    (
        "overlap-in-file.toml",
        "[[network]]\nname = \"a\"\nsubnet = \"10.60.0.0/24\"\n\n[[network]]\nname = \"b\"\nsubnet = \"10.60.0.128/25\"\n",
        &["line 7", "network b subnet", "overlaps network a"],
    ),
    (
        "pool-outside.toml",
        "[[network]]\nname = \"lab\"\nsubnet = \"10.50.0.0/24\"\npool = [\"10.50.0.100\", \"10.50.1.10\"]\n",
        &["line 4", "network lab pool", "10.50.1.10 is outside 10.50.0.0/24"],
    ),
    (
        "pool-reversed.toml",
        "[[network]]\nname = \"lab\"\nsubnet = \"10.50.0.0/24\"\npool = [\"10.50.0.200\", \"10.50.0.100\"]\n",
        &["line 4", "network lab pool", "starts after it ends"],
    ),
    (
        "pool-broadcast.toml",
        "[[network]]\nname = \"lab\"\nsubnet = \"10.50.0.0/24\"\npool = [\"10.50.0.100\", \"10.50.0.255\"]\n",
        &["line 4", "network lab pool", "broadcast address"],
    ),
    (
        "router-outside.toml",
        "[[network]]\nname = \"lab\"\nsubnet = \"10.50.0.0/24\"\nrouter = \"10.51.0.1\"\n",
        &["line 4", "network lab router", "outside 10.50.0.0/24"],
    ),
    (
        "dns.toml",
        "[[network]]\nname = \"lab\"\nsubnet = \"10.50.0.0/24\"\ndns = [\"10.50.0.1\", \"ns1\"]\n",
        &["line 4", "network lab dns[1]", "not an IPv4 address"],
    ),
    (
        "lease.toml",
        "[[network]]\nname = \"lab\"\nsubnet = \"10.50.0.0/24\"\nlease_secs = -5\n",
        &["line 4", "network lab lease_secs", "at least 60"],
    ),
    (
        "duplicate-network.toml",
        "[[network]]\nname = \"lab\"\nsubnet = \"10.50.0.0/24\"\n\n[[network]]\nname = \"lab\"\nsubnet = \"10.51.0.0/24\"\n",
        &["line 6", "network lab", "duplicate network name"],
    ),
    (
        "delay.toml",
        "[[role]]\nname = \"slow\"\njig = \"test\"\ndata = { test = { delay_ms = \"soon\" } }\n",
        &["line 4", "role slow data test.delay_ms", "non-negative integer"],
    ),
    (
        "binding-data.toml",
        "[[role]]\nname = \"t\"\njig = \"test\"\n\n[[deployment]]\nname = \"d\"\nbindings = [{ role = \"t\", nodes = [\"n1.lab.example\"], data = { test = { fail = \"yes\" } } }]\n",
        &["line 7", "deployment d bindings[0] data test.fail", "true or false"],
    ),
    (
        "bad-mac.toml",
        "[[node]]\nname = \"m1.lab.example\"\ninterfaces = [{ mac = \"52:54:00:zz:00:01\" }]\n",
        &["line 3", "node m1.lab.example interfaces[0].mac"],
    ),
    (
        "bad-ip.toml",
        "[[node]]\nname = \"m1.lab.example\"\ninterfaces = [{ mac = \"52:54:00:aa:00:01\", ip = \"10.99.0.300\" }]\n",
        &["line 3", "node m1.lab.example interfaces[0].ip", "not an IPv4 address"],
    ),
    (
        "duplicate-bootenv.toml",
        "[[bootenv]]\nname = \"b\"\n\n[[bootenv]]\nname = \"b\"\n",
        &["line 5", "bootenv b", "duplicate bootenv name"],
    ),
    (
        "duplicate-deployment.toml",
        "[[deployment]]\nname = \"d\"\n\n[[deployment]]\nname = \"d\"\n",
        &["line 5", "deployment d", "duplicate deployment name"],
    ),
    (
        "unknown-requirement.toml",
        "[[role]]\nname = \"x\"\njig = \"noop\"\nrequires = [\"nothing-by-this-name\"]\n",
        &["line 4", "role x requires", "nothing-by-this-name"],
    ),
    (
        "unknown-bootenv.toml",
        "[[node]]\nname = \"m1.lab.example\"\nbootenv = \"nowhere\"\n",
        &["line 3", "node m1.lab.example bootenv", "nowhere"],
    ),
    (
        "bootenv-kind.toml",
        "[[bootenv]]\nname = \"b\"\nkind = \"floppy\"\n",
        &["line 3", "bootenv b kind", "`floppy` is not `ipxe` or `local`"],
    ),
    (
        "parent.toml",
        "[[deployment]]\nname = \"d\"\nparent = \"nobody\"\n",
        &["line 3", "deployment d parent", "nobody"],
    ),
    (
        "digits.toml",
        "[[node]]\nname = \"42\"\n",
        &["line 2", "node 42", "all digits"],
    ),
];

on_both_databases!(
    invalid_files_are_refused_and_change_no_row,
    |backend| async move {
        let test_db = TestDb::new(backend).await;
        let db = test_db.connect().await;
        let dir = tempfile::tempdir().unwrap();
        let seed = cluster::with_builtin_roles(
            cluster::load(Path::new("config/clusters/seed.toml")).unwrap(),
        )
        .unwrap();
        cluster::apply(&db, &seed, false).await.unwrap();
        let mut before = dump(&db).await;
        let mut wrong = Vec::new();
        for (name, text, expect) in INVALID {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let result = match cluster::load(&path).and_then(cluster::with_builtin_roles) {
                Ok(file) => cluster::apply(&db, &file, false).await.map(|_| ()),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => wrong.push(format!("{name}: accepted")),
                Err(err) => {
                    let message = err.to_string();
                    let file = path.display().to_string();
                    let missing: Vec<&str> = std::iter::once(file.as_str())
                        .chain(expect.iter().copied())
                        .filter(|part| !message.contains(part))
                        .collect();
                    if !missing.is_empty() {
                        wrong.push(format!("{name}: {missing:?} not in: {message}"));
                    }
                }
            }
            let after = dump(&db).await;
            if after != before {
                wrong.push(format!("{name}: wrote to the database"));
                before = after;
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} refused wrongly:\n{}",
            wrong.len(),
            INVALID.len(),
            wrong.join("\n")
        );
    }
);

/// With no network declared anywhere, an address is only warned about.
#[test]
fn addresses_without_any_network_are_a_warning() {
    let file = cluster::parse(
        "[[node]]\nname = \"m1\"\ninterfaces = [{ mac = \"52:54:00:aa:00:01\", ip = \"192.0.2.7\" }]\n",
        Path::new("lonely.toml"),
    )
    .unwrap();
    let warnings = cluster::check(&file, &Default::default()).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("lonely.toml")
            && warnings[0].contains("line 3")
            && warnings[0].contains("no network is declared"),
        "{warnings:?}"
    );
}

on_both_databases!(
    binding_nodes_that_are_not_alive_is_a_warning,
    |backend| async move {
        let test_db = TestDb::new(backend).await;
        let db = test_db.connect().await;
        let file = cluster::with_builtin_roles(
            cluster::parse(
                "[[role]]\nname = \"burnin\"\njig = \"noop\"\n\n[[node]]\nname = \"m1\"\n\n[[node]]\nname = \"m2\"\nalive = true\n\n[[deployment]]\nname = \"d\"\ncommit = true\nbindings = [{ role = \"burnin\", nodes = [\"m1\", \"m2\"] }]\n",
                Path::new("newcomer.toml"),
            )
            .unwrap(),
        )
        .unwrap();
        let (report, _) = cluster::apply(&db, &file, false).await.unwrap();
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        let warning = &report.warnings[0];
        assert!(
            warning.starts_with("newcomer.toml: line 15: deployment d bindings[0]")
                && warning.contains("role burnin is bound to a node not alive (m1)"),
            "{warning}"
        );
        assert!(report.render().contains(&format!("warning   {warning}")));
    }
);
