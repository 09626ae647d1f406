//! Cluster definition files: every shipped file parses and applies; applying
//! twice changes nothing; a bad file is refused with file, line and field,
//! and leaves the database untouched.

mod common;

use std::path::Path;

use common::TestDb;
use kiln::cluster::{self, ClusterError};
use kiln::db::noderoles;
use kiln::domain::NoderoleState;

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
