//! The store test suite, run on SQLite and on PostgreSQL (S6, S7, S8, S9, S10, S11, S12, S19, S20).
//!
//! Every test is an `async fn(&TestDb)` listed once in `both_backends!`, which makes a SQLite and
//! a PostgreSQL test of it. PostgreSQL comes from `MCP_HERO_TEST_POSTGRES_URL` (set by
//! `scripts/test`); without it the PostgreSQL variants skip with a message, unless `CI=true`,
//! where a missing database fails the run.

#![allow(
    clippy::disallowed_methods,
    reason = "tests compare and scan for their own test secrets"
)]
// Helpers outside #[test] functions may fail loudly too: a failed assumption is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use auth::pat;
use auth::tool_access::{Effect, MemberToolAccess, Subject, ToolPattern};
use auth::{DeleteOrganization, ManageMembers, ManageServers, Role, authorize};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use store::{
    AuditCursor, AuditFilter, AuditMethod, AuditOutcome, DatabaseLocation, Exposure, ImagePhase,
    ImageReport, ImageState, LINE_OVERHEAD_BYTES, LogBounds, LogLevel, LogQuery, LogStream,
    NewAuditEvent, NewLogLine, NewServer, OrgId, OrgScope, Package, PackageKind, ServerId,
    ServerTransport, ServerUpdate, Store, StoreError, TokenOwner, TokenRejection, ToolRuleId,
    UserId, VariableKind, VariableValue,
};
use vault::{RootSecret, Vault};

const SECRET_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const SECRET_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

fn vault(current: &str, previous: Option<&str>) -> Vault {
    let current = RootSecret::from_base64(current).unwrap();
    let previous = previous.map(|p| RootSecret::from_base64(p).unwrap());
    Vault::new(&current, previous.as_ref())
}

/// Reads a test setting; the one place these tests look at the environment.
#[allow(clippy::disallowed_methods)] // Test configuration, never a secret.
fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// A fresh, empty database on one backend. SQLite's directory is deleted on drop; PostgreSQL
/// databases are left to the throwaway cluster, which `scripts/test` removes.
enum TestDb {
    Sqlite { dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    fn sqlite() -> Self {
        TestDb::Sqlite {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    async fn postgres() -> Option<Self> {
        let Some(admin_url) = setting("MCP_HERO_TEST_POSTGRES_URL") else {
            assert!(
                setting("CI").as_deref() != Some("true"),
                "CI=true but MCP_HERO_TEST_POSTGRES_URL is not set: run the tests through scripts/test"
            );
            eprintln!(
                "skipping the PostgreSQL variant: MCP_HERO_TEST_POSTGRES_URL is not set (scripts/test sets it)"
            );
            return None;
        };
        sqlx::any::install_default_drivers();
        let name = format!("mcp_hero_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        Some(TestDb::Postgres { admin_url, name })
    }

    fn location(&self) -> DatabaseLocation {
        match self {
            TestDb::Sqlite { dir } => DatabaseLocation::Sqlite {
                path: dir.path().join("mcp-hero.db"),
            },
            TestDb::Postgres { admin_url, name } => {
                let mut url = url::Url::parse(admin_url).unwrap();
                url.set_path(name);
                DatabaseLocation::Postgres {
                    url: SecretString::from(url.to_string()),
                }
            }
        }
    }

    async fn open(&self, vault: Vault) -> Result<Store, StoreError> {
        Store::open(&self.location(), vault).await
    }

    async fn open_a(&self) -> Store {
        self.open(vault(SECRET_A, None)).await.unwrap()
    }

    /// Every byte the database keeps on disk, or its full dump on PostgreSQL.
    fn raw_bytes(&self) -> Vec<u8> {
        match self {
            TestDb::Sqlite { dir } => {
                let mut bytes = Vec::new();
                for entry in std::fs::read_dir(dir.path()).unwrap() {
                    bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
                }
                bytes
            }
            TestDb::Postgres { .. } => {
                let pg_dump =
                    setting("MCP_HERO_TEST_PG_DUMP").unwrap_or_else(|| "pg_dump".to_owned());
                let DatabaseLocation::Postgres { url } = self.location() else {
                    unreachable!()
                };
                let output = std::process::Command::new(pg_dump)
                    .arg("--dbname")
                    .arg(url.expose_secret())
                    .output()
                    .expect("pg_dump runs");
                assert!(
                    output.status.success(),
                    "pg_dump failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                output.stdout
            }
        }
    }

    /// A plain pool on the test database, beside any store (SQLite: created if missing).
    async fn raw_pool(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let url = match self.location() {
            DatabaseLocation::Sqlite { path } => format!("sqlite://{}?mode=rwc", path.display()),
            DatabaseLocation::Postgres { url } => url.expose_secret().to_owned(),
        };
        sqlx::AnyPool::connect(&url).await.unwrap()
    }

    async fn execute(&self, sql: &str) {
        let pool = self.raw_pool().await;
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }

    async fn query_strings(&self, store_url_sql: &str) -> Vec<String> {
        let pool = self.raw_pool().await;
        let rows = sqlx::query(sqlx::AssertSqlSafe(store_url_sql.to_owned()))
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows.iter()
            .map(|row| row.try_get::<String, _>(0).unwrap())
            .collect()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&super::TestDb::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(db) = super::TestDb::postgres().await {
                        super::$name(&db).await;
                    }
                }
            )*
        }
    };
}

both_backends!(
    s11_key_check_refuses_a_wrong_secret,
    s8_members_of_another_organization_are_not_found,
    last_owner_is_kept_and_only_owners_touch_ownership,
    tokens_authenticate_until_revoked_expired_or_member_removed,
    s8_tokens_are_scoped_to_their_organization,
    s9_password_variables_are_sealed_and_previewed,
    s19_server_variables_follow_their_references_and_go_with_their_server,
    s12_password_plaintext_is_not_in_the_database_bytes,
    s10_rotation_reseals_every_record,
    every_blob_column_is_sealed_or_a_digest,
    bad_input_is_refused_with_the_field_named,
    revocation_reaches_another_replica_within_the_cache_ttl,
    servers_are_created_listed_updated_and_deleted,
    server_input_is_refused_with_the_field_named,
    s7_an_unprefixed_server_is_the_only_enabled_one,
    s8_servers_and_tool_rules_of_another_organization_are_not_found,
    s7_new_organizations_allow_every_tool_to_owners_admins_and_members,
    s7_migration_seeds_default_rules_for_existing_organizations,
    s7_tool_rules_are_unique_and_leave_with_their_member,
    s20_servers_and_rules_go_with_their_organization,
    s20_deleting_an_organization_removes_every_row_it_owned,
    images_follow_their_package_one_generation_at_a_time,
    s6_audit_events_are_scoped_filtered_and_paged,
    s19_s20_audit_events_go_with_their_server_and_organization,
    s8_server_logs_filter_page_and_stay_in_their_organization,
    s6_server_logs_keep_within_their_byte_bounds,
    server_logs_older_than_the_retention_are_swept,
    s19_s20_server_logs_go_with_their_server_and_organization,
    s9_upstream_oauth_secrets_are_sealed_and_leave_with_their_member,
    s8_upstream_oauth_stays_in_its_organization_and_on_remote_servers,
);

async fn s11_key_check_refuses_a_wrong_secret(db: &TestDb) {
    db.open_a().await.close().await;
    // Reopening with the same secret works; a different one is refused by the key-check record.
    db.open_a().await.close().await;
    match db.open(vault(SECRET_B, None)).await {
        Err(error @ StoreError::WrongRootSecret { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains("MCP_HERO_ROOT_SECRET does not match"),
                "{message}"
            );
            assert!(
                !message.contains(SECRET_B) && !message.contains(SECRET_A),
                "{message}"
            );
        }
        other => panic!("expected WrongRootSecret, got {other:?}"),
    }
    // During a rotation the previous secret vouches for the store.
    db.open(vault(SECRET_B, Some(SECRET_A)))
        .await
        .unwrap()
        .close()
        .await;
}

async fn s8_members_of_another_organization_are_not_found(db: &TestDb) {
    let store = db.open_a().await;
    let (scope_a, org_a, owner_a) = store
        .create_organization("acme", "Acme", "Alice@Example.com")
        .await
        .unwrap();
    let (scope_b, _, owner_b) = store
        .create_organization("beta", "Beta", "bob@example.com")
        .await
        .unwrap();
    assert_eq!(store.organization(&scope_a).await.unwrap(), org_a);
    let owner = authorize::<ManageMembers>(Role::Owner).unwrap();

    let members_a = store.list_members(&scope_a).await.unwrap();
    assert_eq!(members_a.len(), 1);
    assert_eq!(members_a[0].email, "alice@example.com");
    assert_eq!(members_a[0].role, Role::Owner);

    // B's owner, seen through A's scope, does not exist: read, change and remove alike.
    let not_found = |result: Result<_, StoreError>| {
        assert!(matches!(result, Err(StoreError::NotFound("member"))))
    };
    not_found(store.member(&scope_a, &owner_b).await.map(|_| ()));
    not_found(
        store
            .change_member_role(&scope_a, &owner, &owner_b, Role::Viewer)
            .await
            .map(|_| ()),
    );
    not_found(store.remove_member(&scope_a, &owner, &owner_b).await);
    not_found(store.member(&scope_b, &owner_a).await.map(|_| ()));
    assert!(
        store
            .list_members(&scope_b)
            .await
            .unwrap()
            .iter()
            .all(|m| m.user_id != owner_a)
    );

    // One person may belong to both organizations, each membership separate.
    let alice_in_b = store
        .add_member(&scope_b, &owner, "alice@example.com", Role::Viewer)
        .await
        .unwrap();
    assert_eq!(alice_in_b.user_id, owner_a);
    assert_eq!(
        store.member(&scope_a, &owner_a).await.unwrap().role,
        Role::Owner
    );
    assert!(matches!(
        store.add_member(&scope_b, &owner, "ALICE@example.com", Role::Member).await,
        Err(StoreError::Conflict(message)) if message == "alice@example.com is already a member"
    ));
    assert!(matches!(
        store
            .create_organization("acme", "Again", "carol@example.com")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.operator_scope("nope").await,
        Err(StoreError::NotFound("organization"))
    ));
    assert_eq!(store.operator_scope("acme").await.unwrap(), scope_a);
}

async fn last_owner_is_kept_and_only_owners_touch_ownership(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, alice) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let owner = authorize::<ManageMembers>(Role::Owner).unwrap();
    let admin = authorize::<ManageMembers>(Role::Admin).unwrap();

    assert!(matches!(
        store
            .change_member_role(&scope, &owner, &alice, Role::Admin)
            .await,
        Err(StoreError::LastOwner)
    ));
    assert!(matches!(
        store.remove_member(&scope, &owner, &alice).await,
        Err(StoreError::LastOwner)
    ));
    assert!(matches!(
        store
            .add_member(&scope, &admin, "x@example.com", Role::Owner)
            .await,
        Err(StoreError::Denied(_))
    ));
    assert!(matches!(
        store.remove_member(&scope, &admin, &alice).await,
        Err(StoreError::Denied(_))
    ));

    let bob = store
        .add_member(&scope, &admin, "bob@example.com", Role::Member)
        .await
        .unwrap();
    assert_eq!(
        store
            .change_member_role(&scope, &admin, &bob.user_id, Role::Admin)
            .await
            .unwrap()
            .role,
        Role::Admin
    );
    store
        .change_member_role(&scope, &owner, &bob.user_id, Role::Owner)
        .await
        .unwrap();
    // With two owners, one may step down.
    store
        .change_member_role(&scope, &owner, &alice, Role::Viewer)
        .await
        .unwrap();
    let roles: Vec<_> = store
        .list_members(&scope)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.email, m.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("alice@example.com".to_owned(), Role::Viewer),
            ("bob@example.com".to_owned(), Role::Owner)
        ]
    );
}

async fn tokens_authenticate_until_revoked_expired_or_member_removed(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, alice) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let owner = authorize::<ManageMembers>(Role::Owner).unwrap();
    let bob = store
        .add_member(&scope, &owner, "bob@example.com", Role::Member)
        .await
        .unwrap()
        .user_id;

    let token = pat::generate();
    let meta = store
        .create_token(&scope, &alice, "laptop", None, &token.digest)
        .await
        .unwrap();
    assert_eq!(
        (meta.name.as_str(), meta.revoked_at, meta.last_used_at),
        ("laptop", None, None)
    );

    let presented = pat::parse(token.secret.expose_secret()).unwrap();
    let principal = store.authenticate_token(&presented).await.unwrap().unwrap();
    assert_eq!(
        (
            principal.scope.clone(),
            principal.user_id.clone(),
            principal.role
        ),
        (scope.clone(), alice.clone(), Role::Owner)
    );
    assert!(
        store
            .list_tokens(&scope, TokenOwner::Member(&alice))
            .await
            .unwrap()[0]
            .last_used_at
            .is_some()
    );

    // A token never issued, and one whose digest differs past the lookup key, are both unknown.
    let stranger = pat::generate();
    assert_eq!(
        store
            .authenticate_token(&stranger.digest)
            .await
            .unwrap()
            .unwrap_err(),
        TokenRejection::Unknown
    );

    // Bob may not revoke Alice's token: it is not found for him.
    assert!(matches!(
        store
            .revoke_token(&scope, TokenOwner::Member(&bob), &meta.id)
            .await,
        Err(StoreError::NotFound("token"))
    ));
    let revoked = store
        .revoke_token(&scope, TokenOwner::Member(&alice), &meta.id)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        store
            .authenticate_token(&presented)
            .await
            .unwrap()
            .unwrap_err(),
        TokenRejection::Revoked
    );
    // Revoking again is harmless.
    store
        .revoke_token(&scope, TokenOwner::AnyMember(&owner), &meta.id)
        .await
        .unwrap();

    let expired = pat::generate();
    store
        .create_token(
            &scope,
            &alice,
            "old",
            Some(store::unix_now() - 1),
            &expired.digest,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .authenticate_token(&expired.digest)
            .await
            .unwrap()
            .unwrap_err(),
        TokenRejection::Expired
    );

    let bobs = pat::generate();
    store
        .create_token(&scope, &bob, "bob", None, &bobs.digest)
        .await
        .unwrap();
    assert!(
        store
            .authenticate_token(&bobs.digest)
            .await
            .unwrap()
            .is_ok()
    );
    assert_eq!(
        store
            .list_tokens(&scope, TokenOwner::Member(&bob))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_tokens(&scope, TokenOwner::AnyMember(&owner))
            .await
            .unwrap()
            .len(),
        3
    );
    store.remove_member(&scope, &owner, &bob).await.unwrap();
    assert_eq!(
        store
            .authenticate_token(&bobs.digest)
            .await
            .unwrap()
            .unwrap_err(),
        TokenRejection::Unknown
    );
    assert_eq!(
        store
            .list_tokens(&scope, TokenOwner::AnyMember(&owner))
            .await
            .unwrap()
            .len(),
        2
    );
    // Bob belonged nowhere else, so his user row is gone too.
    let users = db
        .query_strings("SELECT email FROM users ORDER BY email")
        .await;
    assert_eq!(users, ["alice@example.com"]);
}

async fn s8_tokens_are_scoped_to_their_organization(db: &TestDb) {
    let store = db.open_a().await;
    let (scope_a, _, alice) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let (scope_b, _, _) = store
        .create_organization("beta", "Beta", "bob@example.com")
        .await
        .unwrap();
    let owner = authorize::<ManageMembers>(Role::Owner).unwrap();
    let token = pat::generate();
    let meta = store
        .create_token(&scope_a, &alice, "a", None, &token.digest)
        .await
        .unwrap();

    assert!(
        store
            .list_tokens(&scope_b, TokenOwner::AnyMember(&owner))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store
            .revoke_token(&scope_b, TokenOwner::AnyMember(&owner), &meta.id)
            .await,
        Err(StoreError::NotFound("token"))
    ));
    // A token cannot be issued in B's scope for A's member.
    assert!(matches!(
        store
            .create_token(&scope_b, &alice, "x", None, &pat::generate().digest)
            .await,
        Err(StoreError::NotFound("member"))
    ));
    let principal = store
        .authenticate_token(&token.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(principal.scope, scope_a);
    assert_ne!(principal.scope, scope_b);
}

async fn s9_password_variables_are_sealed_and_previewed(db: &TestDb) {
    let store = db.open_a().await;
    let (scope_a, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let (scope_b, _, _) = store
        .create_organization("beta", "Beta", "bob@example.com")
        .await
        .unwrap();
    let server_a = vars_server(&store, &scope_a).await;
    let meta = put_password(&store, &scope_a, "API_KEY", "correct-horse-battery-staple")
        .await
        .unwrap();
    assert_eq!(
        (
            meta.kind,
            meta.string_value.as_deref(),
            meta.preview.as_deref()
        ),
        (VariableKind::Password, None, Some("…aple"))
    );
    assert_eq!(
        put_password(&store, &scope_a, "PIN", "hunter2")
            .await
            .unwrap()
            .preview,
        None
    );
    put_string(&store, &scope_a, "REGION", "eu-west-1")
        .await
        .unwrap();

    let listed = store.list_variables(&scope_a, &server_a).await.unwrap();
    let names: Vec<_> = listed
        .iter()
        .map(|v| (v.name.as_str(), v.string_value.as_deref(), v.size_bytes))
        .collect();
    assert_eq!(
        names,
        [
            ("API_KEY", None, 28),
            ("PIN", None, 7),
            ("REGION", Some("eu-west-1"), 9)
        ]
    );
    assert_eq!(
        reveal(&store, &scope_a, "API_KEY").await.unwrap(),
        b"correct-horse-battery-staple"
    );

    // Another organization reaches none of it, even with the server's id, and may use the same
    // names independently.
    assert!(matches!(
        store.list_variables(&scope_b, &server_a).await,
        Err(StoreError::NotFound("server"))
    ));
    assert!(matches!(
        store
            .open_variables(&scope_b, &server_a, &["API_KEY"])
            .await,
        Err(StoreError::Invalid {
            field: "variables",
            ..
        })
    ));
    let owner = authorize::<ManageServers>(Role::Owner).unwrap();
    assert!(matches!(
        store
            .delete_variable(&scope_b, &owner, &server_a, "API_KEY")
            .await,
        Err(StoreError::NotFound("server"))
    ));
    put_password(&store, &scope_b, "API_KEY", "hunter2")
        .await
        .unwrap();
    assert!(matches!(
        put_password(&store, &scope_a, "API_KEY", "hunter2").await,
        Err(StoreError::Conflict(_))
    ));

    store
        .delete_variable(&scope_a, &owner, &server_a, "API_KEY")
        .await
        .unwrap();
    assert!(matches!(
        reveal(&store, &scope_a, "API_KEY").await,
        Err(StoreError::Invalid { .. })
    ));
}

async fn s19_server_variables_follow_their_references_and_go_with_their_server(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let owner = authorize::<ManageServers>(Role::Owner).unwrap();
    let with_env = |env: &[(&str, &str)], args: &[&str]| ServerUpdate {
        transport: Some(ServerTransport::Stdio {
            command: "npx".to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            working_dir: None,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }),
        ..ServerUpdate::default()
    };
    // A new server has no variables, so a reference is refused, naming it.
    let mut server = stdio_server("api");
    if let ServerTransport::Stdio { env, .. } = &mut server.transport {
        env.insert("KEY".into(), "${API_KEY}".into());
    }
    match store.create_server(&scope, &owner, server).await {
        Err(StoreError::Invalid {
            field: "env",
            reason,
        }) => {
            assert!(reason.contains("${API_KEY}"), "{reason}")
        }
        other => panic!("expected invalid env, got {other:?}"),
    }
    let id = store
        .create_server(&scope, &owner, stdio_server("api"))
        .await
        .unwrap()
        .id;
    let revision = |store: &Store| {
        let (store, scope, id) = (store.clone(), scope.clone(), id.clone());
        async move { store.server(&scope, &id).await.unwrap().revision }
    };
    let before = revision(&store).await;
    let password = || VariableValue::Password(SecretString::from("sk-live-0123456789abcdef"));
    store
        .create_variable(&scope, &owner, &id, "API_KEY", password())
        .await
        .unwrap();
    assert_eq!(
        revision(&store).await,
        before + 1,
        "a new variable reconnects sessions"
    );
    store
        .create_variable(
            &scope,
            &owner,
            &id,
            "REGION",
            VariableValue::String("eu".into()),
        )
        .await
        .unwrap();
    let file = |path: &str| VariableValue::File {
        path: path.to_owned(),
        contents: secrecy::SecretBox::new(b"{}".to_vec().into_boxed_slice()),
    };
    store
        .create_variable(&scope, &owner, &id, "CREDS", file("/home/mcp/creds.json"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_variable(&scope, &owner, &id, "OTHER", file("/home/mcp/creds.json"))
            .await,
        Err(StoreError::Conflict(message)) if message.contains("CREDS")
    ));
    assert!(matches!(
        store
            .create_variable(&scope, &owner, &id, "REL", file("home/../etc/passwd"))
            .await,
        Err(StoreError::Invalid { field: "path", .. })
    ));
    assert!(matches!(
        store
            .replace_variable(
                &scope,
                &owner,
                &id,
                "API_KEY",
                VariableValue::String("x".into())
            )
            .await,
        Err(StoreError::Invalid { field: "type", .. })
    ));

    // References: a password may be in env, never in args; strings and files anywhere.
    store
        .update_server(
            &scope,
            &owner,
            &id,
            with_env(
                &[("KEY", "Bearer ${API_KEY}"), ("R", "${REGION}")],
                &["--creds", "${CREDS}"],
            ),
        )
        .await
        .unwrap();
    match store
        .update_server(&scope, &owner, &id, with_env(&[], &["--key=${API_KEY}"]))
        .await
    {
        Err(StoreError::Invalid {
            field: "args",
            reason,
        }) => {
            assert!(reason.contains("/proc"), "{reason}")
        }
        other => panic!("expected invalid args, got {other:?}"),
    }
    for (env, field) in [
        (("HOME", "/x"), "env"),
        (("KEY", "${API_KEY"), "env"),
        (("KEY", "${MISSING}"), "env"),
    ] {
        assert!(
            matches!(
                store.update_server(&scope, &owner, &id, with_env(&[env], &[])).await,
                Err(StoreError::Invalid { field: f, .. }) if f == field
            ),
            "{env:?}"
        );
    }
    // A referenced variable stays until the reference goes.
    match store.delete_variable(&scope, &owner, &id, "API_KEY").await {
        Err(StoreError::Conflict(message)) => assert!(message.contains("env"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let opened = store
        .open_variables(&scope, &id, &["API_KEY", "CREDS"])
        .await
        .unwrap();
    assert_eq!(opened[0].value.expose_secret(), b"sk-live-0123456789abcdef");
    assert_eq!(opened[1].file_path.as_deref(), Some("/home/mcp/creds.json"));
    assert!(!format!("{opened:?}").contains("sk-live"));

    // Deleting the server deletes its variables in the same statement (S19).
    store.delete_server(&scope, &owner, &id).await.unwrap();
    let left = db
        .query_strings(&format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM variables WHERE server_id = '{id}'"
        ))
        .await;
    assert_eq!(left, ["0"], "variables outlived their server");
}

/// The server variables of these tests hang off, created on first use.
async fn vars_server(store: &Store, scope: &store::OrgScope) -> ServerId {
    if let Some(server) = store
        .list_servers(scope)
        .await
        .unwrap()
        .into_iter()
        .find(|server| server.name == "vars")
    {
        return server.id;
    }
    let owner = authorize::<ManageServers>(Role::Owner).unwrap();
    store
        .create_server(scope, &owner, stdio_server("vars"))
        .await
        .unwrap()
        .id
}

async fn put_variable(
    store: &Store,
    scope: &store::OrgScope,
    name: &str,
    value: VariableValue,
) -> Result<store::VariableMeta, StoreError> {
    let server = vars_server(store, scope).await;
    let owner = authorize::<ManageServers>(Role::Owner).unwrap();
    store
        .create_variable(scope, &owner, &server, name, value)
        .await?;
    store.variable(scope, &server, name).await
}

async fn put_password(
    store: &Store,
    scope: &store::OrgScope,
    name: &str,
    value: &str,
) -> Result<store::VariableMeta, StoreError> {
    put_variable(
        store,
        scope,
        name,
        VariableValue::Password(SecretString::from(value)),
    )
    .await
}

async fn put_string(
    store: &Store,
    scope: &store::OrgScope,
    name: &str,
    value: &str,
) -> Result<store::VariableMeta, StoreError> {
    put_variable(store, scope, name, VariableValue::String(value.to_owned())).await
}

async fn reveal(store: &Store, scope: &store::OrgScope, name: &str) -> Result<Vec<u8>, StoreError> {
    let server = vars_server(store, scope).await;
    let opened = store.open_variables(scope, &server, &[name]).await?;
    Ok(opened[0].value.expose_secret().to_vec())
}

async fn s12_password_plaintext_is_not_in_the_database_bytes(db: &TestDb) {
    let canary = format!("canary-{}", uuid::Uuid::new_v4().simple());
    let store = db.open_a().await;
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    put_password(&store, &scope, "CANARY", &canary)
        .await
        .unwrap();
    let file_canary = format!("file-canary-{}", uuid::Uuid::new_v4().simple());
    put_variable(
        &store,
        &scope,
        "CREDS",
        VariableValue::File {
            path: "/home/mcp/creds.json".to_owned(),
            contents: secrecy::SecretBox::new(file_canary.clone().into_bytes().into_boxed_slice()),
        },
    )
    .await
    .unwrap();
    let token = pat::generate();
    let alice = store.list_members(&scope).await.unwrap()[0].user_id.clone();
    store
        .create_token(&scope, &alice, "t", None, &token.digest)
        .await
        .unwrap();

    let check = |bytes: &[u8], when: &str| {
        for needle in [
            canary.as_bytes(),
            hex(canary.as_bytes()).as_bytes(),
            file_canary.as_bytes(),
            token.secret.expose_secret().as_bytes(),
        ] {
            assert!(
                !contains(bytes, needle),
                "a secret is in the database bytes {when}"
            );
        }
        assert!(
            contains(bytes, b"alice@example.com"),
            "the scan did not see the data at all {when}"
        );
    };
    // While open (SQLite: main file plus WAL), and after close (WAL checkpointed into the file).
    check(&db.raw_bytes(), "while open");
    store.close().await;
    check(&db.raw_bytes(), "after close");
}

async fn s10_rotation_reseals_every_record(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    for (name, value) in [
        ("ONE", "first-secret-value"),
        ("TWO", "second-secret-value"),
    ] {
        put_password(&store, &scope, name, value).await.unwrap();
    }
    store.close().await;

    // Step 1: the new secret is deployed with the old one as previous; old records still open.
    let rotating = db.open(vault(SECRET_B, Some(SECRET_A))).await.unwrap();
    let scope = rotating.operator_scope("acme").await.unwrap();
    assert_eq!(
        reveal(&rotating, &scope, "ONE").await.unwrap(),
        b"first-secret-value"
    );
    put_password(&rotating, &scope, "THREE", "third-secret-value")
        .await
        .unwrap();

    // Step 2: rotate-key re-seals everything not yet under the new secret (key check included).
    let total = rotating.count_sealed_records().await.unwrap();
    let mut ticks = 0;
    let report = rotating
        .rotate_sealed_records(|n| ticks += n)
        .await
        .unwrap();
    // Under A: ONE and TWO (value and preview each) and the key check; THREE is already under B.
    assert_eq!((report.records, report.resealed, ticks), (7, 5, total));
    assert_eq!(
        rotating
            .rotate_sealed_records(|_| ())
            .await
            .unwrap()
            .resealed,
        0,
        "a second run has nothing to do"
    );
    rotating.close().await;

    // Step 3: the previous secret is withdrawn; everything opens under the new one alone.
    let after = db.open(vault(SECRET_B, None)).await.unwrap();
    let scope = after.operator_scope("acme").await.unwrap();
    for (name, value) in [
        ("ONE", "first-secret-value"),
        ("TWO", "second-secret-value"),
        ("THREE", "third-secret-value"),
    ] {
        assert_eq!(
            reveal(&after, &scope, name).await.unwrap(),
            value.as_bytes()
        );
    }
    after.close().await;
    assert!(matches!(
        db.open(vault(SECRET_A, None)).await,
        Err(StoreError::WrongRootSecret { .. })
    ));
}

async fn every_blob_column_is_sealed_or_a_digest(db: &TestDb) {
    db.open_a().await.close().await;
    let sql = match db {
        TestDb::Sqlite { .. } => {
            "SELECT m.name || '.' || p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND p.type = 'BLOB' ORDER BY 1"
        }
        TestDb::Postgres { .. } => {
            "SELECT table_name || '.' || column_name FROM information_schema.columns \
             WHERE table_schema = 'public' AND data_type = 'bytea' ORDER BY 1"
        }
    };
    let mut known: Vec<String> = store::sealed::SEALED_COLUMNS
        .iter()
        .map(|c| format!("{}.{}", c.table, c.column))
        .collect();
    known.push("access_tokens.token_digest".to_owned());
    // sqlx's migration bookkeeping stores checksums, not tenant data.
    known.push("_sqlx_migrations.checksum".to_owned());
    known.sort();
    assert_eq!(
        db.query_strings(sql).await,
        known,
        "a binary column is neither sealed (sealed::SEALED_COLUMNS) nor a digest"
    );
}

async fn bad_input_is_refused_with_the_field_named(db: &TestDb) {
    let store = db.open_a().await;
    let invalid_field = |result: Result<(), StoreError>, want: &str| match result {
        Err(StoreError::Invalid { field, .. }) => assert_eq!(field, want),
        other => panic!("expected invalid {want}, got {other:?}"),
    };
    invalid_field(
        store
            .create_organization("Bad Slug", "x", "a@example.com")
            .await
            .map(|_| ()),
        "slug",
    );
    invalid_field(
        store
            .create_organization("ok", " ", "a@example.com")
            .await
            .map(|_| ()),
        "name",
    );
    invalid_field(
        store
            .create_organization("ok", "Ok", "not-an-email")
            .await
            .map(|_| ()),
        "email",
    );
    let (scope, _, alice) = store
        .create_organization("ok", "Ok", "a@example.com")
        .await
        .unwrap();
    invalid_field(
        put_string(&store, &scope, "lower", "x").await.map(|_| ()),
        "name",
    );
    invalid_field(
        put_string(&store, &scope, "BIG", &"x".repeat(70_000))
            .await
            .map(|_| ()),
        "value",
    );
    invalid_field(
        store
            .create_token(&scope, &alice, "", None, &pat::generate().digest)
            .await
            .map(|_| ()),
        "name",
    );
    assert!(matches!(
        store
            .create_token(
                &scope,
                &UserId::from_untrusted("nobody"),
                "t",
                None,
                &pat::generate().digest
            )
            .await,
        Err(StoreError::NotFound("member"))
    ));
    // Nothing half-stored: the failed creations left exactly one organization.
    assert_eq!(
        db.query_strings("SELECT slug FROM organizations").await,
        ["ok"]
    );
}

/// Two gateways on one database: a revocation through one is immediate there, and reaches the
/// other within `TOKEN_CACHE_TTL` (today's documented behaviour of the token cache).
async fn revocation_reaches_another_replica_within_the_cache_ttl(db: &TestDb) {
    let first = db.open_a().await;
    let (scope, _, alice) = first
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let token = pat::generate();
    let meta = first
        .create_token(&scope, &alice, "t", None, &token.digest)
        .await
        .unwrap();
    let second = db.open_a().await;
    assert!(
        second
            .authenticate_token(&token.digest)
            .await
            .unwrap()
            .is_ok()
    );
    first
        .revoke_token(&scope, TokenOwner::Member(&alice), &meta.id)
        .await
        .unwrap();
    assert_eq!(
        first
            .authenticate_token(&token.digest)
            .await
            .unwrap()
            .unwrap_err(),
        TokenRejection::Revoked
    );
    let deadline =
        std::time::Instant::now() + store::TOKEN_CACHE_TTL + std::time::Duration::from_secs(2);
    loop {
        match second.authenticate_token(&token.digest).await.unwrap() {
            Err(TokenRejection::Revoked) => break,
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await
            }
            other => {
                panic!("the other replica still accepts a revoked token past the TTL: {other:?}")
            }
        }
    }
}

#[test]
fn database_location_descriptions_never_show_a_password() {
    let postgres = DatabaseLocation::Postgres {
        url: SecretString::from("postgres://gateway:hunter2@db.internal:5432/mcp"),
    };
    assert_eq!(
        postgres.describe(),
        "postgres postgres://gateway:REDACTED@db.internal:5432/mcp"
    );
    assert!(!format!("{postgres:?}").contains("hunter2"));
    let sqlite = DatabaseLocation::Sqlite {
        path: "/var/lib/mcp-hero/mcp-hero.db".into(),
    };
    assert_eq!(
        sqlite.describe(),
        "sqlite file /var/lib/mcp-hero/mcp-hero.db"
    );
}

fn stdio_server(name: &str) -> NewServer {
    NewServer {
        name: name.to_owned(),
        transport: ServerTransport::Stdio {
            command: "npx".to_owned(),
            args: vec![
                "-y".to_owned(),
                "@modelcontextprotocol/server-everything".to_owned(),
            ],
            working_dir: None,
            env: Default::default(),
        },
        exposure: Exposure::Prefixed,
        enabled: true,
        internal: false,
        package: None,
    }
}

fn remote_server(name: &str, url: &str) -> NewServer {
    NewServer {
        transport: ServerTransport::StreamableHttp {
            url: url.to_owned(),
            headers: Default::default(),
        },
        ..stdio_server(name)
    }
}

fn manage_servers() -> auth::Permit<ManageServers> {
    authorize::<ManageServers>(Role::Admin).unwrap()
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, want: &str) -> String {
    match result {
        Err(StoreError::Invalid { field, reason }) => {
            assert_eq!(field, want, "{reason}");
            reason
        }
        other => panic!("expected invalid {want}, got {other:?}"),
    }
}

async fn servers_are_created_listed_updated_and_deleted(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let permit = manage_servers();
    let everything = store
        .create_server(&scope, &permit, stdio_server("everything"))
        .await
        .unwrap();
    assert_eq!(
        (
            everything.name.as_str(),
            everything.revision,
            everything.enabled,
            everything.internal
        ),
        ("everything", 1, true, false)
    );
    assert_eq!(everything.transport, stdio_server("x").transport);
    let mut remote = remote_server("docs", "https://mcp.example.com/mcp");
    remote.internal = true;
    remote.enabled = false;
    let docs = store.create_server(&scope, &permit, remote).await.unwrap();
    assert_eq!(
        store.server(&scope, &docs.id).await.unwrap(),
        docs,
        "a read returns what creation returned"
    );
    let names: Vec<_> = store
        .list_servers(&scope)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["docs", "everything"]);

    assert!(matches!(
        store.create_server(&scope, &permit, stdio_server("docs")).await,
        Err(StoreError::Conflict(message)) if message == "a server named \"docs\" already exists"
    ));

    // A partial update changes what it names, keeps the rest, and bumps the revision each time.
    let transport = ServerTransport::Stdio {
        command: "/usr/bin/uvx".to_owned(),
        args: vec!["mcp-server-fetch".to_owned(), String::new()],
        working_dir: Some("/srv/fetch".to_owned()),
        env: Default::default(),
    };
    let updated = store
        .update_server(
            &scope,
            &permit,
            &everything.id,
            ServerUpdate {
                name: Some("fetch".to_owned()),
                transport: Some(transport.clone()),
                ..ServerUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            updated.name.as_str(),
            &updated.transport,
            updated.enabled,
            updated.revision,
            updated.created_at
        ),
        ("fetch", &transport, true, 2, everything.created_at)
    );
    assert!(updated.updated_at >= everything.updated_at);
    let disabled = store
        .update_server(
            &scope,
            &permit,
            &everything.id,
            ServerUpdate {
                enabled: Some(false),
                ..ServerUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((disabled.enabled, disabled.revision), (false, 3));
    let unchanged = store
        .update_server(&scope, &permit, &everything.id, ServerUpdate::default())
        .await
        .unwrap();
    assert_eq!(unchanged.revision, 4, "every update bumps the revision");
    assert!(matches!(
        store
            .update_server(
                &scope,
                &permit,
                &docs.id,
                ServerUpdate {
                    name: Some("fetch".to_owned()),
                    ..ServerUpdate::default()
                }
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    // A stdio server may become remote and back; the unused columns are cleared.
    let now_remote = store
        .update_server(
            &scope,
            &permit,
            &everything.id,
            ServerUpdate {
                transport: Some(ServerTransport::StreamableHttp {
                    url: "http://10.0.0.5:8080/mcp".to_owned(),
                    headers: Default::default(),
                }),
                ..ServerUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        now_remote.transport,
        ServerTransport::StreamableHttp { .. }
    ));

    store
        .delete_server(&scope, &permit, &everything.id)
        .await
        .unwrap();
    assert!(matches!(
        store.server(&scope, &everything.id).await,
        Err(StoreError::NotFound("server"))
    ));
    assert!(matches!(
        store.delete_server(&scope, &permit, &everything.id).await,
        Err(StoreError::NotFound("server"))
    ));
    assert!(matches!(
        store
            .update_server(&scope, &permit, &everything.id, ServerUpdate::default())
            .await,
        Err(StoreError::NotFound("server"))
    ));
    assert_eq!(store.list_servers(&scope).await.unwrap(), [docs]);
}

async fn server_input_is_refused_with_the_field_named(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let permit = manage_servers();
    let with_stdio = |command: &str, args: Vec<String>, working_dir: Option<&str>| NewServer {
        transport: ServerTransport::Stdio {
            command: command.to_owned(),
            args,
            working_dir: working_dir.map(str::to_owned),
            env: Default::default(),
        },
        ..stdio_server("ok")
    };
    let cases: Vec<(NewServer, &str)> = vec![
        (stdio_server(""), "name"),
        (stdio_server("Upper"), "name"),
        (stdio_server("-leading-dash"), "name"),
        (stdio_server("under_score"), "name"),
        (stdio_server("a__b"), "name"),
        (stdio_server(&"a".repeat(33)), "name"),
        (with_stdio("", vec![], None), "command"),
        (with_stdio("  ", vec![], None), "command"),
        (with_stdio("np\0x", vec![], None), "command"),
        (with_stdio("npx", vec!["a".to_owned(); 65], None), "args"),
        (with_stdio("npx", vec!["a".repeat(4097)], None), "args"),
        (with_stdio("npx", vec!["a\0b".to_owned()], None), "args"),
        (
            with_stdio("npx", vec![], Some("relative/dir")),
            "working_dir",
        ),
        (with_stdio("npx", vec![], Some("/tmp/\0")), "working_dir"),
        (remote_server("ok", "not a url"), "url"),
        (remote_server("ok", "ftp://example.com/mcp"), "url"),
        (remote_server("ok", "file:///etc/passwd"), "url"),
        (
            remote_server("ok", "https://user:hunter2@example.com/mcp"),
            "url",
        ),
        (remote_server("ok", "https://example.com/\0"), "url"),
    ];
    for (server, field) in cases {
        let shown = format!("{server:?}");
        let reason = assert_invalid(store.create_server(&scope, &permit, server).await, field);
        assert!(!reason.contains("hunter2"), "{shown}: {reason}");
    }
    let reason = assert_invalid(
        store
            .create_server(&scope, &permit, stdio_server("a__b"))
            .await,
        "name",
    );
    assert!(
        reason.contains("__"),
        "the reason names the separator: {reason}"
    );
    // The limits themselves are accepted.
    store
        .create_server(
            &scope,
            &permit,
            NewServer {
                name: "a".repeat(32),
                ..with_stdio("npx", vec!["a".repeat(4096); 64], Some("/"))
            },
        )
        .await
        .unwrap();
    // An update is checked as a whole, and a refused one changes nothing.
    let server = store.list_servers(&scope).await.unwrap().remove(0);
    assert_invalid(
        store
            .update_server(
                &scope,
                &permit,
                &server.id,
                ServerUpdate {
                    name: Some("Bad Name".to_owned()),
                    ..ServerUpdate::default()
                },
            )
            .await,
        "name",
    );
    assert_eq!(store.server(&scope, &server.id).await.unwrap(), server);
    assert_eq!(store.list_servers(&scope).await.unwrap().len(), 1);
}

async fn s7_an_unprefixed_server_is_the_only_enabled_one(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let (other_org, _, _) = store
        .create_organization("beta", "Beta", "bob@example.com")
        .await
        .unwrap();
    let permit = manage_servers();
    let alone = store
        .create_server(
            &scope,
            &permit,
            NewServer {
                exposure: Exposure::Unprefixed,
                ..stdio_server("alone")
            },
        )
        .await
        .unwrap();
    // Another organization's servers do not count.
    store
        .create_server(&other_org, &permit, stdio_server("elsewhere"))
        .await
        .unwrap();
    // Enabling a second server while an unprefixed one is enabled is refused...
    assert_invalid(
        store
            .create_server(&scope, &permit, stdio_server("second"))
            .await,
        "enabled",
    );
    // ...but a disabled second server may exist, and cannot be enabled.
    let second = store
        .create_server(
            &scope,
            &permit,
            NewServer {
                enabled: false,
                ..stdio_server("second")
            },
        )
        .await
        .unwrap();
    let enable = ServerUpdate {
        enabled: Some(true),
        ..ServerUpdate::default()
    };
    assert_invalid(
        store
            .update_server(&scope, &permit, &second.id, enable.clone())
            .await,
        "enabled",
    );
    // Making the first prefixed lets the second be enabled; then neither may become unprefixed.
    store
        .update_server(
            &scope,
            &permit,
            &alone.id,
            ServerUpdate {
                exposure: Some(Exposure::Prefixed),
                ..ServerUpdate::default()
            },
        )
        .await
        .unwrap();
    store
        .update_server(&scope, &permit, &second.id, enable)
        .await
        .unwrap();
    let unprefixed = ServerUpdate {
        exposure: Some(Exposure::Unprefixed),
        ..ServerUpdate::default()
    };
    assert_invalid(
        store
            .update_server(&scope, &permit, &alone.id, unprefixed.clone())
            .await,
        "exposure",
    );
    assert_invalid(
        store
            .create_server(
                &scope,
                &permit,
                NewServer {
                    exposure: Exposure::Unprefixed,
                    ..stdio_server("third")
                },
            )
            .await,
        "exposure",
    );
    // Unprefixed while disabled is fine; it is not served.
    store
        .create_server(
            &scope,
            &permit,
            NewServer {
                exposure: Exposure::Unprefixed,
                enabled: false,
                ..stdio_server("third")
            },
        )
        .await
        .unwrap();
    // Disabling the second server makes the first the only enabled one again.
    store
        .update_server(
            &scope,
            &permit,
            &second.id,
            ServerUpdate {
                enabled: Some(false),
                ..ServerUpdate::default()
            },
        )
        .await
        .unwrap();
    let again = store
        .update_server(&scope, &permit, &alone.id, unprefixed)
        .await
        .unwrap();
    assert_eq!(again.exposure, Exposure::Unprefixed);
}

async fn s8_servers_and_tool_rules_of_another_organization_are_not_found(db: &TestDb) {
    let store = db.open_a().await;
    let (scope_a, _, alice) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let (scope_b, _, _) = store
        .create_organization("beta", "Beta", "bob@example.com")
        .await
        .unwrap();
    let permit = manage_servers();
    let server_a = store
        .create_server(&scope_a, &permit, stdio_server("files"))
        .await
        .unwrap();
    let rule_a = store
        .create_tool_rule(
            &scope_a,
            &permit,
            Subject::Member(alice.clone()),
            Effect::Deny,
            ToolPattern::parse("files__delete*").unwrap(),
        )
        .await
        .unwrap();

    assert!(store.list_servers(&scope_b).await.unwrap().is_empty());
    let server_not_found = |result: Result<(), StoreError>| {
        assert!(
            matches!(result, Err(StoreError::NotFound("server"))),
            "{result:?}"
        )
    };
    server_not_found(store.server(&scope_b, &server_a.id).await.map(|_| ()));
    server_not_found(
        store
            .update_server(
                &scope_b,
                &permit,
                &server_a.id,
                ServerUpdate {
                    enabled: Some(false),
                    ..ServerUpdate::default()
                },
            )
            .await
            .map(|_| ()),
    );
    server_not_found(store.delete_server(&scope_b, &permit, &server_a.id).await);
    server_not_found(
        store
            .server(&scope_b, &ServerId::from_untrusted("nonexistent"))
            .await
            .map(|_| ()),
    );
    // The same name is free in another organization.
    store
        .create_server(&scope_b, &permit, stdio_server("files"))
        .await
        .unwrap();

    // B's rules are B's defaults only; A's rule and A's member are out of B's reach.
    let rules_b = store.list_tool_rules(&scope_b).await.unwrap();
    assert_eq!(rules_b.len(), 3);
    assert!(rules_b.iter().all(|rule| rule.id != rule_a.id));
    assert!(matches!(
        store.delete_tool_rule(&scope_b, &permit, &rule_a.id).await,
        Err(StoreError::NotFound("tool rule"))
    ));
    assert!(matches!(
        store
            .delete_tool_rule(&scope_b, &permit, &ToolRuleId::from_untrusted("nope"))
            .await,
        Err(StoreError::NotFound("tool rule"))
    ));
    assert!(matches!(
        store
            .create_tool_rule(
                &scope_b,
                &permit,
                Subject::Member(alice.clone()),
                Effect::Allow,
                ToolPattern::parse("*").unwrap(),
            )
            .await,
        Err(StoreError::NotFound("member"))
    ));
    // A's things are untouched by B's attempts.
    assert_eq!(
        store.server(&scope_a, &server_a.id).await.unwrap(),
        server_a
    );
    assert!(
        store
            .list_tool_rules(&scope_a)
            .await
            .unwrap()
            .contains(&rule_a)
    );
}

async fn s7_new_organizations_allow_every_tool_to_owners_admins_and_members(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, alice) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let rules = store.tool_rules(&scope).await.unwrap();
    let mut subjects: Vec<_> = rules
        .iter()
        .map(|rule| (rule.subject.clone(), rule.effect, rule.pattern.as_str()))
        .collect();
    subjects.sort_by_key(|(subject, _, _)| format!("{subject:?}"));
    assert_eq!(
        subjects,
        [
            (Subject::Role(Role::Admin), Effect::Allow, "*"),
            (Subject::Role(Role::Member), Effect::Allow, "*"),
            (Subject::Role(Role::Owner), Effect::Allow, "*"),
        ]
    );
    let decide = |role| MemberToolAccess::for_member(&rules, role, &alice).allows("files__read");
    assert!(decide(Role::Owner) && decide(Role::Admin) && decide(Role::Member));
    assert!(!decide(Role::Viewer), "viewers get nothing by default");
}

async fn s7_migration_seeds_default_rules_for_existing_organizations(db: &TestDb) {
    use sqlx::SqlSafeStr as _;
    // An organization made under the foundation schema alone, as an older gateway would have.
    let pool = db.raw_pool().await;
    let foundation = match db {
        TestDb::Sqlite { .. } => include_str!("../migrations/sqlite/0001_foundation.sql"),
        TestDb::Postgres { .. } => include_str!("../migrations/postgres/0001_foundation.sql"),
    };
    let migration = sqlx::migrate::Migration::new(
        1,
        "foundation".into(),
        sqlx::migrate::MigrationType::Simple,
        foundation.into_sql_str(),
        false,
    );
    sqlx::migrate::Migrator::with_migrations(vec![migration])
        .run(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO organizations (id, slug, name, created_at) VALUES ('old-org', 'old', 'Old', 1)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = db.open_a().await;
    let scope = store.operator_scope("old").await.unwrap();
    let rules = store.list_tool_rules(&scope).await.unwrap();
    let mut roles: Vec<_> = rules
        .iter()
        .map(|rule| match &rule.subject {
            Subject::Role(role) => (role.as_str(), rule.effect, rule.pattern.as_str()),
            Subject::Member(_) => panic!("the migration seeds role rules only"),
        })
        .collect();
    roles.sort_by_key(|(role, _, _)| *role);
    assert_eq!(
        roles,
        [
            ("admin", Effect::Allow, "*"),
            ("member", Effect::Allow, "*"),
            ("owner", Effect::Allow, "*"),
        ]
    );
    assert!(rules.iter().all(|rule| !rule.id.as_str().is_empty()));
}

async fn s7_tool_rules_are_unique_and_leave_with_their_member(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let members = authorize::<ManageMembers>(Role::Owner).unwrap();
    let permit = manage_servers();
    let bob = store
        .add_member(&scope, &members, "bob@example.com", Role::Member)
        .await
        .unwrap()
        .user_id;
    let deny_delete = ToolPattern::parse("files__delete_*").unwrap();
    let rule = store
        .create_tool_rule(
            &scope,
            &permit,
            Subject::Member(bob.clone()),
            Effect::Deny,
            deny_delete.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        (&rule.subject, rule.effect, &rule.pattern),
        (&Subject::Member(bob.clone()), Effect::Deny, &deny_delete)
    );
    let viewer_rule = store
        .create_tool_rule(
            &scope,
            &permit,
            Subject::Role(Role::Viewer),
            Effect::Allow,
            ToolPattern::parse("docs__*").unwrap(),
        )
        .await
        .unwrap();
    // The same subject, effect and pattern twice is a conflict; another effect is another rule.
    assert!(matches!(
        store
            .create_tool_rule(
                &scope,
                &permit,
                Subject::Member(bob.clone()),
                Effect::Deny,
                deny_delete.clone(),
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .create_tool_rule(
                &scope,
                &permit,
                Subject::Role(Role::Member),
                Effect::Allow,
                ToolPattern::parse("*").unwrap(),
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .create_tool_rule(
            &scope,
            &permit,
            Subject::Member(bob.clone()),
            Effect::Allow,
            deny_delete.clone(),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_tool_rule(
                &scope,
                &permit,
                Subject::Member(UserId::from_untrusted("nobody")),
                Effect::Allow,
                deny_delete.clone(),
            )
            .await,
        Err(StoreError::NotFound("member"))
    ));

    // The data plane's view: deny wins for bob, the default allow serves the rest.
    let rules = store.tool_rules(&scope).await.unwrap();
    assert_eq!(rules.len(), 6);
    let bobs = MemberToolAccess::for_member(&rules, Role::Member, &bob);
    assert!(!bobs.allows("files__delete_all") && bobs.allows("files__read"));

    store
        .delete_tool_rule(&scope, &permit, &viewer_rule.id)
        .await
        .unwrap();
    assert_eq!(store.list_tool_rules(&scope).await.unwrap().len(), 5);

    // Removing bob removes his rules with his membership.
    store.remove_member(&scope, &members, &bob).await.unwrap();
    let left = store.list_tool_rules(&scope).await.unwrap();
    assert_eq!(left.len(), 3);
    assert!(
        left.iter()
            .all(|rule| matches!(rule.subject, Subject::Role(_)))
    );
}

async fn s20_servers_and_rules_go_with_their_organization(db: &TestDb) {
    let store = db.open_a().await;
    let (scope_a, _, alice) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let (scope_b, _, _) = store
        .create_organization("beta", "Beta", "bob@example.com")
        .await
        .unwrap();
    let permit = manage_servers();
    for scope in [&scope_a, &scope_b] {
        store
            .create_server(scope, &permit, stdio_server("files"))
            .await
            .unwrap();
    }
    store
        .create_tool_rule(
            &scope_a,
            &permit,
            Subject::Member(alice),
            Effect::Deny,
            ToolPattern::parse("*").unwrap(),
        )
        .await
        .unwrap();
    // The foreign keys cascade on their own; `Store::delete_organization` relies on it.
    db.execute("DELETE FROM organizations WHERE slug = 'acme'")
        .await;
    for table in ["servers", "tool_rules"] {
        let left = db
            .query_strings(&format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM {table} WHERE org_id = '{}'",
                scope_a.org_id()
            ))
            .await;
        assert_eq!(left, ["0"], "{table} rows outlived their organization");
    }
    assert_eq!(store.list_servers(&scope_b).await.unwrap().len(), 1);
    assert_eq!(store.list_tool_rules(&scope_b).await.unwrap().len(), 3);
}

/// Every (table, column) of the database, from its catalog: nothing is left out by a list
/// written here, so a table added later is scanned too.
async fn every_column(db: &TestDb) -> Vec<(String, String)> {
    let tables = match db {
        TestDb::Sqlite { .. } => {
            db.query_strings("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .await
        }
        TestDb::Postgres { .. } => {
            db.query_strings(
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
            )
            .await
        }
    };
    assert!(tables.iter().any(|table| table == "servers"), "{tables:?}");
    let mut columns = Vec::new();
    for table in tables {
        let sql = match db {
            TestDb::Sqlite { .. } => format!("SELECT name FROM pragma_table_info('{table}')"),
            TestDb::Postgres { .. } => format!(
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}'"
            ),
        };
        for column in db.query_strings(&sql).await {
            columns.push((table.clone(), column));
        }
    }
    columns
}

/// Every `table.column` holding one of `values`, with how many rows: a scan of every column of
/// every table, each value compared as text.
async fn rows_holding(db: &TestDb, values: &[String]) -> Vec<String> {
    let list = values
        .iter()
        .map(|value| format!("'{}'", value.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    let mut found = Vec::new();
    for (table, column) in every_column(db).await {
        let count = db
            .query_strings(&format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM \"{table}\" WHERE CAST(\"{column}\" AS TEXT) IN ({list})"
            ))
            .await;
        if count != ["0"] {
            found.push(format!("{table}.{column}: {} rows", count[0]));
        }
    }
    found
}

/// S19, S20: deleting a server and then its organization leaves no row, in any table, that holds
/// an id of theirs: servers, variables, files, images, OAuth settings and tokens, logs, tool
/// rules, memberships, access tokens, and the users in no other organization. The other
/// organization, and a user who is a member of both, stay whole.
async fn s20_deleting_an_organization_removes_every_row_it_owned(db: &TestDb) {
    let store = db.open_a().await;
    let (scope_a, org_a, alice) = store
        .create_organization("acme", "Acme", "alice@acme.example")
        .await
        .unwrap();
    let (scope_b, _, bob) = store
        .create_organization("beta", "Beta", "bob@beta.example")
        .await
        .unwrap();
    let owner = authorize::<ManageMembers>(Role::Owner).unwrap();
    let servers = manage_servers();
    let mallory = store
        .add_member(&scope_a, &owner, "mallory@acme.example", Role::Member)
        .await
        .unwrap()
        .user_id;
    // Carol is in both organizations: she outlives acme.
    let carol = store
        .add_member(&scope_a, &owner, "carol@both.example", Role::Admin)
        .await
        .unwrap()
        .user_id;
    store
        .add_member(&scope_b, &owner, "carol@both.example", Role::Member)
        .await
        .unwrap();

    // Everything an organization can hold, in both organizations.
    let mut a_ids: Vec<String> = vec![org_a.id.to_string(), alice.to_string(), mallory.to_string()];
    let mut tokens = Vec::new();
    for (scope, user) in [
        (&scope_a, &alice),
        (&scope_a, &mallory),
        (&scope_a, &carol),
        (&scope_b, &bob),
        (&scope_b, &carol),
    ] {
        let token = pat::generate();
        let meta = store
            .create_token(scope, user, "laptop", None, &token.digest)
            .await
            .unwrap();
        if scope == &scope_a {
            a_ids.push(meta.id.to_string());
        }
        tokens.push((
            scope.clone(),
            pat::parse(token.secret.expose_secret()).unwrap(),
        ));
    }
    let mut first_server = None;
    for scope in [&scope_a, &scope_b] {
        let local = store
            .create_server(
                scope,
                &servers,
                NewServer {
                    package: Some(npm("left-pad@1.3.0")),
                    ..stdio_server("local")
                },
            )
            .await
            .unwrap()
            .id;
        let remote = store
            .create_server(
                scope,
                &servers,
                remote_server("remote", "https://remote.example/mcp"),
            )
            .await
            .unwrap()
            .id;
        store
            .put_server_oauth(scope, &servers, &remote, member_oauth())
            .await
            .unwrap();
        let member = if scope == &scope_a { &mallory } else { &bob };
        store
            .put_upstream_tokens(
                scope,
                &remote,
                &store::UpstreamAccount::Member(member.clone()),
                upstream_tokens("access-token-1", "refresh-token-1"),
            )
            .await
            .unwrap();
        store
            .create_upstream_oauth_pending(
                scope,
                store::NewPendingAuthorization {
                    state_digest: format!("state-digest-{}", scope.org_id()),
                    server_id: remote.clone(),
                    started_by: member.clone(),
                    account: store::UpstreamAccount::Member(member.clone()),
                    verifier: SecretString::from("pkce-verifier-1"),
                    issuer: "https://as.example".to_owned(),
                    client_id: "hand-made".to_owned(),
                    redirect_uri: "https://gw.example/oauth/upstream/callback".to_owned(),
                    resource: "https://remote.example/mcp".to_owned(),
                },
            )
            .await
            .unwrap();
        let mut variables = Vec::new();
        type MakeValue = fn() -> VariableValue;
        let values: [(&str, MakeValue); 3] = [
            ("REGION", || VariableValue::String("eu".into())),
            ("API_KEY", || {
                VariableValue::Password(SecretString::from("sk-live-0123456789abcdef"))
            }),
            ("CREDS", || VariableValue::File {
                path: "/home/mcp/creds.json".to_owned(),
                contents: secrecy::SecretBox::new(b"{}".to_vec().into_boxed_slice()),
            }),
        ];
        for (name, value) in values {
            for server in [&local, &remote] {
                let meta = store
                    .create_variable(scope, &servers, server, name, value())
                    .await
                    .unwrap();
                variables.push(meta.id.to_string());
            }
        }
        let rule = store
            .create_tool_rule(
                scope,
                &servers,
                Subject::Member(member.clone()),
                Effect::Deny,
                ToolPattern::parse("remote__*").unwrap(),
            )
            .await
            .unwrap();
        store
            .append_server_logs(
                &ROOMY,
                &[
                    log_line(scope, &local, "s1", LogLevel::Info, "local says hi", 1),
                    log_line(scope, &remote, "s1", LogLevel::Warn, "remote says hi", 2),
                ],
            )
            .await
            .unwrap();
        if scope == &scope_a {
            a_ids.extend([local.to_string(), remote.to_string(), rule.id.to_string()]);
            a_ids.extend(variables);
            first_server = Some(local);
        }
    }
    let b_rows_before = rows_holding(db, &[scope_b.org_id().to_string()]).await;
    assert!(
        !rows_holding(db, &a_ids).await.is_empty(),
        "the scan sees acme's rows before the deletion"
    );

    // S19: a server goes with its variables, files, image and logs.
    let local = first_server.unwrap();
    store
        .delete_server(&scope_a, &servers, &local)
        .await
        .unwrap();
    assert_eq!(
        rows_holding(db, &[local.to_string()]).await,
        Vec::<String>::new(),
        "rows outlived their server"
    );

    // A wrong confirmation deletes nothing.
    let permit = authorize::<DeleteOrganization>(Role::Owner).unwrap();
    assert_invalid(
        store.delete_organization(&scope_a, &permit, "Acme").await,
        "confirm",
    );
    assert_eq!(store.organization(&scope_a).await.unwrap(), org_a);

    // S20: the organization goes with everything it held.
    let deleted = store
        .delete_organization(&scope_a, &permit, "acme")
        .await
        .unwrap();
    assert_eq!(deleted.organization, org_a);
    assert_eq!(deleted.servers.len(), 1, "{deleted:?}");
    assert_eq!((deleted.members, deleted.users_deleted), (3, 2));
    assert_eq!(
        rows_holding(db, &a_ids).await,
        Vec::<String>::new(),
        "rows outlived their organization"
    );
    assert!(matches!(
        store.organization(&scope_a).await,
        Err(StoreError::NotFound("organization"))
    ));
    // Its tokens no longer authenticate (the cache forgot them too); the other's still do.
    for (scope, presented) in &tokens {
        let answer = store.authenticate_token(presented).await.unwrap();
        if scope == &scope_a {
            assert_eq!(answer.unwrap_err(), TokenRejection::Unknown);
        } else {
            assert_eq!(&answer.unwrap().scope, scope);
        }
    }

    // Beta is whole, and carol, a member of both, is still a member of beta.
    assert_eq!(
        rows_holding(db, &[scope_b.org_id().to_string()]).await,
        b_rows_before
    );
    let beta_members = store.list_members(&scope_b).await.unwrap();
    assert!(beta_members.iter().any(|member| member.user_id == carol));
    assert_eq!(store.list_servers(&scope_b).await.unwrap().len(), 2);
    assert_eq!(
        db.query_strings(&format!("SELECT email FROM users WHERE id = '{carol}'"))
            .await,
        ["carol@both.example"]
    );
    // The slug is free again.
    store
        .create_organization("acme", "Acme again", "alice@acme.example")
        .await
        .unwrap();
}

fn npm(spec: &str) -> Package {
    Package::parse(PackageKind::Npm, spec).unwrap()
}

/// A package starts an image generation; reports of any other generation, of another
/// organization or after the end change nothing; removing the package drops the image, and the
/// generation only ever goes up (so no install directory is reused).
async fn images_follow_their_package_one_generation_at_a_time(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let (scope_b, _, _) = store
        .create_organization("beta", "Beta", "bob@example.com")
        .await
        .unwrap();
    let permit = manage_servers();
    let plain = store
        .create_server(&scope, &permit, stdio_server("plain"))
        .await
        .unwrap();
    assert_eq!((plain.package, plain.image), (None, None));
    let created = store
        .create_server(
            &scope,
            &permit,
            NewServer {
                package: Some(npm("left-pad@1.3.0")),
                ..stdio_server("pad")
            },
        )
        .await
        .unwrap();
    let id = created.id.clone();
    assert_eq!(created.package, Some(npm("left-pad@1.3.0")));
    let image = created.image.unwrap();
    assert_eq!(
        (image.generation, image.state, image.phase, image.progress),
        (1, ImageState::Pending, ImagePhase::Queued, 0)
    );
    let image_of = async |store: &Store| store.server(&scope, &id).await.unwrap().image;

    let progress = |phase, progress| ImageReport::Progress { phase, progress };
    assert!(
        store
            .report_image(&scope, &id, 1, progress(ImagePhase::Resolving, 5))
            .await
            .unwrap()
    );
    let image = image_of(&store).await.unwrap();
    assert_eq!(
        (image.state, image.phase, image.progress),
        (ImageState::Installing, ImagePhase::Resolving, 5)
    );
    for (scope, generation) in [(&scope, 0), (&scope, 2), (&scope_b, 1)] {
        assert!(
            !store
                .report_image(scope, &id, generation, progress(ImagePhase::Linking, 90))
                .await
                .unwrap(),
            "generation {generation}"
        );
    }
    assert_eq!(image_of(&store).await.unwrap().phase, ImagePhase::Resolving);

    // Updates that keep the package keep the image; a new package starts generation 2.
    let renamed = store
        .update_server(
            &scope,
            &permit,
            &id,
            ServerUpdate {
                name: Some("pad2".into()),
                package: Some(Some(npm("left-pad@1.3.0"))),
                ..ServerUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.image.unwrap().generation, 1);
    let changed = store
        .update_server(
            &scope,
            &permit,
            &id,
            ServerUpdate {
                package: Some(Some(npm("left-pad@1.2.0"))),
                ..ServerUpdate::default()
            },
        )
        .await
        .unwrap();
    let image = changed.image.unwrap();
    assert_eq!((image.generation, image.state), (2, ImageState::Pending));
    assert!(
        !store
            .report_image(&scope, &id, 1, ImageReport::Ready { size_bytes: 1 })
            .await
            .unwrap(),
        "a superseded install cannot finish"
    );
    assert!(
        store
            .report_image(&scope, &id, 2, ImageReport::Ready { size_bytes: 4096 })
            .await
            .unwrap()
    );
    let image = image_of(&store).await.unwrap();
    assert_eq!(
        (image.state, image.phase, image.progress, image.size_bytes),
        (ImageState::Ready, ImagePhase::Done, 100, Some(4096))
    );
    assert!(image.installed_at.is_some());
    assert!(
        !store
            .report_image(&scope, &id, 2, progress(ImagePhase::Resolving, 1))
            .await
            .unwrap(),
        "a finished generation stays finished"
    );

    // A reinstall is generation 3; a failure keeps the phase it failed in and a bounded reason.
    let reinstalled = store.reinstall_image(&scope, &permit, &id).await.unwrap();
    assert_eq!(reinstalled.image.as_ref().unwrap().generation, 3);
    assert_eq!(
        reinstalled.revision, changed.revision,
        "a reinstall is no config change"
    );
    store
        .report_image(&scope, &id, 3, progress(ImagePhase::Downloading, 40))
        .await
        .unwrap();
    let long = "e".repeat(5000);
    assert!(
        store
            .report_image(
                &scope,
                &id,
                3,
                ImageReport::Failed {
                    phase: ImagePhase::Downloading,
                    error: long
                }
            )
            .await
            .unwrap()
    );
    let image = image_of(&store).await.unwrap();
    assert_eq!(
        (image.state, image.phase, image.progress),
        (ImageState::Failed, ImagePhase::Downloading, 40)
    );
    assert_eq!(image.error.unwrap().len(), store::MAX_IMAGE_ERROR_BYTES);
    assert!(matches!(
        store.reinstall_image(&scope_b, &permit, &id).await,
        Err(StoreError::NotFound("server"))
    ));

    let upkeep = store.images_for_upkeep().await.unwrap();
    assert_eq!(upkeep.len(), 1);
    assert_eq!(
        (
            &upkeep[0].scope,
            &upkeep[0].server,
            upkeep[0].status.generation
        ),
        (&scope, &id, 3)
    );

    // No package, no image; a package again continues the count.
    let bare = store
        .update_server(
            &scope,
            &permit,
            &id,
            ServerUpdate {
                package: Some(None),
                ..ServerUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((bare.package, bare.image), (None, None));
    assert!(store.images_for_upkeep().await.unwrap().is_empty());
    assert_invalid(store.reinstall_image(&scope, &permit, &id).await, "package");
    let again = store
        .update_server(
            &scope,
            &permit,
            &id,
            ServerUpdate {
                package: Some(Some(npm("left-pad@1.3.0"))),
                ..ServerUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(again.image.unwrap().generation, 4);

    // Only stdio servers have a package.
    assert_invalid(
        store
            .create_server(
                &scope,
                &permit,
                NewServer {
                    package: Some(npm("left-pad@1.3.0")),
                    ..remote_server("docs", "https://mcp.example.com/mcp")
                },
            )
            .await,
        "package",
    );
    assert_invalid(
        store
            .update_server(
                &scope,
                &permit,
                &id,
                ServerUpdate {
                    transport: Some(ServerTransport::StreamableHttp {
                        url: "https://mcp.example.com/mcp".into(),
                        headers: Default::default(),
                    }),
                    ..ServerUpdate::default()
                },
            )
            .await,
        "package",
    );

    // The image's state goes with its server.
    store.delete_server(&scope, &permit, &id).await.unwrap();
    assert!(store.images_for_upkeep().await.unwrap().is_empty());
    let rows = db
        .query_strings("SELECT server_id FROM server_images")
        .await;
    assert!(rows.is_empty(), "{rows:?}");
}

/// Bounds far above anything a test writes, for tests about something else.
const ROOMY: LogBounds = LogBounds {
    max_bytes_per_server: 1 << 30,
    max_bytes_per_session: 1 << 30,
};

fn log_line(
    scope: &OrgScope,
    server: &ServerId,
    session: &str,
    level: LogLevel,
    text: &str,
    at_ms: i64,
) -> NewLogLine {
    NewLogLine {
        org: scope.org_id().clone(),
        server: server.clone(),
        session: session.to_owned(),
        stream: LogStream::Stderr,
        level,
        text: text.to_owned(),
        at_ms,
    }
}

fn all_lines() -> LogQuery {
    LogQuery {
        since_ms: None,
        session: None,
        min_level: None,
        after: None,
        limit: 1000,
    }
}

async fn log_texts(
    store: &Store,
    scope: &OrgScope,
    server: &ServerId,
    query: LogQuery,
) -> Vec<String> {
    store
        .server_logs(scope, &manage_servers(), server, &query)
        .await
        .unwrap()
        .into_iter()
        .map(|line| line.text)
        .collect()
}

/// Each filter of the log read (since, session, level), paging by cursor, and tenancy: another
/// organization's server is not found, and a line naming the wrong organization is not stored
/// (S6, S8).
async fn s8_server_logs_filter_page_and_stay_in_their_organization(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let (other, _, _) = store
        .create_organization("beta", "Beta", "bob@example.com")
        .await
        .unwrap();
    let server = store
        .create_server(&scope, &manage_servers(), stdio_server("files"))
        .await
        .unwrap()
        .id;
    let lines = [
        log_line(&scope, &server, "s1", LogLevel::Debug, "one", 1_000),
        log_line(&scope, &server, "s1", LogLevel::Info, "two", 2_000),
        log_line(&scope, &server, "s2", LogLevel::Warn, "three", 3_000),
        log_line(&scope, &server, "s2", LogLevel::Error, "four", 4_000),
        log_line(&scope, &server, "s1", LogLevel::Info, "five", 5_000),
        // Organization B naming A's server: not stored anywhere.
        log_line(&other, &server, "s1", LogLevel::Info, "forged", 5_500),
    ];
    let ids = store.append_server_logs(&ROOMY, &lines).await.unwrap();
    assert!(ids[..5].iter().all(Option::is_some), "{ids:?}");
    assert_eq!(
        ids[5], None,
        "a line naming another organization was stored"
    );
    assert!(
        ids.windows(2).take(4).all(|pair| pair[0] < pair[1]),
        "{ids:?}"
    );

    assert_eq!(
        log_texts(&store, &scope, &server, all_lines()).await,
        ["one", "two", "three", "four", "five"]
    );
    let since = LogQuery {
        since_ms: Some(3_000),
        ..all_lines()
    };
    assert_eq!(
        log_texts(&store, &scope, &server, since).await,
        ["three", "four", "five"]
    );
    let session = LogQuery {
        session: Some("s2".to_owned()),
        ..all_lines()
    };
    assert_eq!(
        log_texts(&store, &scope, &server, session).await,
        ["three", "four"]
    );
    let warnings = LogQuery {
        min_level: Some(LogLevel::Warn),
        ..all_lines()
    };
    assert_eq!(
        log_texts(&store, &scope, &server, warnings).await,
        ["three", "four"]
    );
    let info = LogQuery {
        min_level: Some(LogLevel::Info),
        session: Some("s1".to_owned()),
        ..all_lines()
    };
    assert_eq!(
        log_texts(&store, &scope, &server, info).await,
        ["two", "five"]
    );

    // Paging: two at a time, each page after the last id of the one before.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .server_logs(
                &scope,
                &manage_servers(),
                &server,
                &LogQuery {
                    after,
                    limit: 2,
                    ..all_lines()
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        pages.push(
            page.iter()
                .map(|line| line.text.clone())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        pages,
        [vec!["one", "two"], vec!["three", "four"], vec!["five"]]
    );
    let stored = store
        .server_logs(&scope, &manage_servers(), &server, &all_lines())
        .await
        .unwrap();
    assert_eq!(stored[2].session, "s2");
    assert_eq!(stored[2].stream, LogStream::Stderr);
    assert_eq!(stored[2].level, LogLevel::Warn);
    assert_eq!(stored[2].at_ms, 3_000);
    assert_eq!(stored[2].server, server);

    // Another organization's server answers like one that does not exist.
    for (scope, id) in [
        (&other, server.clone()),
        (
            &scope,
            ServerId::from_untrusted("00000000-0000-0000-0000-000000000000"),
        ),
    ] {
        assert!(matches!(
            store
                .server_logs(scope, &manage_servers(), &id, &all_lines())
                .await,
            Err(StoreError::NotFound("server"))
        ));
    }
    for limit in [0, 1001] {
        assert_invalid(
            store
                .server_logs(
                    &scope,
                    &manage_servers(),
                    &server,
                    &LogQuery {
                        limit,
                        ..all_lines()
                    },
                )
                .await,
            "limit",
        );
    }
    let mut long_tag = log_line(&scope, &server, &"x".repeat(65), LogLevel::Info, "t", 1);
    assert_invalid(
        store.append_server_logs(&ROOMY, &[long_tag.clone()]).await,
        "session",
    );
    long_tag.session = "ok".to_owned();
    long_tag.text = "nul\0byte".to_owned();
    assert_invalid(store.append_server_logs(&ROOMY, &[long_tag]).await, "text");
}

/// Over a session's or a server's byte bound, the oldest lines go, and only theirs (S4, S6).
async fn s6_server_logs_keep_within_their_byte_bounds(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let permit = manage_servers();
    let server = store
        .create_server(&scope, &permit, stdio_server("files"))
        .await
        .unwrap()
        .id;
    let neighbour = store
        .create_server(&scope, &permit, stdio_server("other"))
        .await
        .unwrap()
        .id;
    // Every line costs 36 bytes of text plus the overhead: a session keeps 3, the server 5.
    let cost = (36 + LINE_OVERHEAD_BYTES) as u64;
    let bounds = LogBounds {
        max_bytes_per_server: 5 * cost,
        max_bytes_per_session: 3 * cost,
    };
    let text = |n: usize| format!("line {n:031}");
    let write = |server: &ServerId, session: &str, range: std::ops::Range<usize>| {
        range
            .map(|n| log_line(&scope, server, session, LogLevel::Info, &text(n), n as i64))
            .collect::<Vec<_>>()
    };
    store
        .append_server_logs(&bounds, &write(&neighbour, "n", 0..2))
        .await
        .unwrap();
    // One batch over the session bound keeps its newest three.
    store
        .append_server_logs(&bounds, &write(&server, "a", 0..5))
        .await
        .unwrap();
    let session_a = |query: LogQuery| LogQuery {
        session: Some("a".to_owned()),
        ..query
    };
    assert_eq!(
        log_texts(&store, &scope, &server, session_a(all_lines())).await,
        [text(2), text(3), text(4)]
    );
    // Another session: the server as a whole is over its bound, so its oldest lines (session
    // a's) go first, one batch at a time.
    store
        .append_server_logs(&bounds, &write(&server, "b", 10..13))
        .await
        .unwrap();
    assert_eq!(
        log_texts(&store, &scope, &server, all_lines()).await,
        [text(3), text(4), text(10), text(11), text(12)]
    );
    for batch in [13..14, 14..15] {
        store
            .append_server_logs(&bounds, &write(&server, "b", batch))
            .await
            .unwrap();
    }
    assert_eq!(
        log_texts(&store, &scope, &server, all_lines()).await,
        [text(3), text(4), text(12), text(13), text(14)],
        "session b keeps its newest three"
    );
    store
        .append_server_logs(&bounds, &write(&server, "c", 20..22))
        .await
        .unwrap();
    assert_eq!(
        log_texts(&store, &scope, &server, all_lines()).await,
        [text(12), text(13), text(14), text(20), text(21)],
        "the server keeps its newest five, whichever session they belong to"
    );
    // The neighbour lost nothing.
    assert_eq!(
        log_texts(&store, &scope, &neighbour, all_lines()).await,
        [text(0), text(1)]
    );
}

/// The retention sweep removes lines older than the cut, in every organization, and nothing newer.
async fn server_logs_older_than_the_retention_are_swept(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let server = store
        .create_server(&scope, &manage_servers(), stdio_server("files"))
        .await
        .unwrap()
        .id;
    let lines: Vec<NewLogLine> = [("old", 1_000), ("edge", 2_000), ("new", 3_000)]
        .into_iter()
        .map(|(text, at)| log_line(&scope, &server, "s", LogLevel::Info, text, at))
        .collect();
    store.append_server_logs(&ROOMY, &lines).await.unwrap();
    assert_eq!(store.sweep_server_logs(2_000).await.unwrap(), 1);
    assert_eq!(
        log_texts(&store, &scope, &server, all_lines()).await,
        ["edge", "new"]
    );
    assert_eq!(store.sweep_server_logs(2_000).await.unwrap(), 0);
}

/// Deleting a server deletes its lines (S19); deleting an organization deletes its lines (S20);
/// a line for a deleted server is not stored.
async fn s19_s20_server_logs_go_with_their_server_and_organization(db: &TestDb) {
    let store = db.open_a().await;
    let (scope_a, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let (scope_b, _, _) = store
        .create_organization("beta", "Beta", "bob@example.com")
        .await
        .unwrap();
    let permit = manage_servers();
    let doomed = store
        .create_server(&scope_a, &permit, stdio_server("doomed"))
        .await
        .unwrap()
        .id;
    let kept = store
        .create_server(&scope_a, &permit, stdio_server("kept"))
        .await
        .unwrap()
        .id;
    let beta = store
        .create_server(&scope_b, &permit, stdio_server("kept"))
        .await
        .unwrap()
        .id;
    let lines = [
        log_line(&scope_a, &doomed, "s", LogLevel::Info, "doomed line", 1),
        log_line(&scope_a, &kept, "s", LogLevel::Info, "kept line", 1),
        log_line(&scope_b, &beta, "s", LogLevel::Info, "beta line", 1),
    ];
    store.append_server_logs(&ROOMY, &lines).await.unwrap();
    let count = |org: &OrgScope, server: Option<&ServerId>| {
        let sql = match server {
            Some(server) => format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM server_logs WHERE server_id = '{server}'"
            ),
            None => format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM server_logs WHERE org_id = '{}'",
                org.org_id()
            ),
        };
        async move { db.query_strings(&sql).await }
    };
    store
        .delete_server(&scope_a, &permit, &doomed)
        .await
        .unwrap();
    assert_eq!(count(&scope_a, Some(&doomed)).await, ["0"], "S19");
    assert_eq!(count(&scope_a, Some(&kept)).await, ["1"]);
    let late = store.append_server_logs(&ROOMY, &lines[..1]).await.unwrap();
    assert_eq!(late, [None], "a deleted server's line was stored");
    assert_eq!(count(&scope_a, Some(&doomed)).await, ["0"]);

    // The foreign keys cascade on their own; `Store::delete_organization` relies on it.
    db.execute("DELETE FROM organizations WHERE slug = 'acme'")
        .await;
    assert_eq!(count(&scope_a, None).await, ["0"], "S20");
    assert_eq!(
        log_texts(&store, &scope_b, &beta, all_lines()).await,
        ["beta line"]
    );
}

fn upstream_tokens(access: &str, refresh: &str) -> store::NewUpstreamTokens {
    store::NewUpstreamTokens {
        access_token: SecretString::from(access),
        refresh_token: Some(SecretString::from(refresh)),
        expires_at: Some(store::unix_now() + 3600),
        scope: Some("mcp:tools".to_owned()),
        resource: "https://remote.example/mcp".to_owned(),
    }
}

fn member_oauth() -> store::OAuthSettings {
    store::OAuthSettings {
        mode: store::OAuthMode::Member,
        scopes: vec!["mcp:tools".to_owned()],
        client: Some(store::AdminClient {
            client_id: "hand-made".to_owned(),
            client_secret: Some(SecretString::from("client-secret-7b1e0c2d9a")),
        }),
    }
}

/// S9, S10, S12, S20: upstream OAuth client secrets, tokens and PKCE verifiers are sealed (not in
/// the database bytes), read back only through their row, pending authorizations are single
/// use, and removing a member removes their tokens.
async fn s9_upstream_oauth_secrets_are_sealed_and_leave_with_their_member(db: &TestDb) {
    let store = db.open_a().await;
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@acme.example")
        .await
        .unwrap();
    let owner = authorize::<ManageMembers>(Role::Owner).unwrap();
    let bob = store
        .add_member(&scope, &owner, "bob@acme.example", Role::Member)
        .await
        .unwrap()
        .user_id;
    let server = store
        .create_server(
            &scope,
            &manage_servers(),
            remote_server("remote", "https://remote.example/mcp"),
        )
        .await
        .unwrap();
    let settings = store
        .put_server_oauth(&scope, &manage_servers(), &server.id, member_oauth())
        .await
        .unwrap();
    assert!(settings.admin_client_secret_set);
    assert_eq!(settings.mode, store::OAuthMode::Member);
    let bob_account = store::UpstreamAccount::Member(bob.clone());
    store
        .put_upstream_tokens(
            &scope,
            &server.id,
            &bob_account,
            upstream_tokens("access-token-4f0d7e1a2b", "refresh-token-9c3e5a7b1d"),
        )
        .await
        .unwrap();
    // The organization account does not fit a member-mode server.
    assert!(matches!(
        store
            .put_upstream_tokens(
                &scope,
                &server.id,
                &store::UpstreamAccount::Organization,
                upstream_tokens("access-org-1", "refresh-org-1"),
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    let opened = store
        .upstream_tokens(&scope, &server.id, &bob_account)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        opened.access_token.expose_secret(),
        "access-token-4f0d7e1a2b"
    );
    assert_eq!(
        opened.refresh_token.unwrap().expose_secret(),
        "refresh-token-9c3e5a7b1d"
    );
    let admin_client = store
        .oauth_admin_client(&scope, &server.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        admin_client.client_secret.unwrap().expose_secret(),
        "client-secret-7b1e0c2d9a"
    );

    // A pending authorization is redeemed once, into its own organization.
    store
        .create_upstream_oauth_pending(
            &scope,
            store::NewPendingAuthorization {
                state_digest: "digest-of-state-1".to_owned(),
                server_id: server.id.clone(),
                started_by: bob.clone(),
                account: bob_account.clone(),
                verifier: SecretString::from("pkce-verifier-0a9b8c7d6e5f"),
                issuer: "https://as.example".to_owned(),
                client_id: "hand-made".to_owned(),
                redirect_uri: "https://gw.example/oauth/upstream/callback".to_owned(),
                resource: "https://remote.example/mcp".to_owned(),
            },
        )
        .await
        .unwrap();
    let bytes = db.raw_bytes();
    for secret in [
        "access-token-4f0d7e1a2b",
        "refresh-token-9c3e5a7b1d",
        "client-secret-7b1e0c2d9a",
        "pkce-verifier-0a9b8c7d6e5f",
    ] {
        // log-check: allow(a test canary, named so the failure says which one leaked)
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "{secret} is stored in clear"
        );
    }
    let taken = store
        .take_upstream_oauth_pending("digest-of-state-1")
        .await
        .unwrap();
    assert_eq!(taken.scope, scope);
    assert_eq!(taken.account, bob_account);
    assert_eq!(taken.verifier.expose_secret(), "pkce-verifier-0a9b8c7d6e5f");
    assert_eq!(taken.resource, "https://remote.example/mcp");
    assert!(matches!(
        store.take_upstream_oauth_pending("digest-of-state-1").await,
        Err(StoreError::NotFound(_))
    ));

    // Rotation reaches the new columns.
    drop(store);
    let rotated = db.open(vault(SECRET_B, Some(SECRET_A))).await.unwrap();
    let report = rotated.rotate_sealed_records(|_| {}).await.unwrap();
    assert!(report.resealed >= 3, "{report:?}");
    drop(rotated);
    let store = db.open(vault(SECRET_B, None)).await.unwrap();
    assert!(
        store
            .upstream_tokens(&scope, &server.id, &bob_account)
            .await
            .unwrap()
            .is_some()
    );

    // S20: the member's tokens leave with the membership.
    store.remove_member(&scope, &owner, &bob).await.unwrap();
    assert!(
        store
            .upstream_tokens(&scope, &server.id, &bob_account)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        db.query_strings("SELECT CAST(COUNT(*) AS TEXT) FROM upstream_oauth_tokens")
            .await,
        ["0"]
    );

    // S19: turning OAuth off, or deleting the server, leaves nothing behind.
    store
        .delete_server_oauth(&scope, &manage_servers(), &server.id)
        .await
        .unwrap();
    assert!(
        store
            .server_oauth(&scope, &server.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        db.query_strings("SELECT CAST(COUNT(*) AS TEXT) FROM server_oauth")
            .await,
        ["0"]
    );
}

/// S8: another organization's server OAuth answers not found; OAuth is for remote servers only;
/// bad scopes name the field.
async fn s8_upstream_oauth_stays_in_its_organization_and_on_remote_servers(db: &TestDb) {
    let store = db.open_a().await;
    let (acme, _, alice) = store
        .create_organization("acme", "Acme", "alice@acme.example")
        .await
        .unwrap();
    let (other, _, _) = store
        .create_organization("other", "Other", "olga@other.example")
        .await
        .unwrap();
    let server = store
        .create_server(
            &acme,
            &manage_servers(),
            remote_server("remote", "https://remote.example/mcp"),
        )
        .await
        .unwrap();
    store
        .put_server_oauth(&acme, &manage_servers(), &server.id, member_oauth())
        .await
        .unwrap();
    let alice_account = store::UpstreamAccount::Member(alice.clone());
    store
        .put_upstream_tokens(
            &acme,
            &server.id,
            &alice_account,
            upstream_tokens("access-a", "refresh-a"),
        )
        .await
        .unwrap();
    assert!(matches!(
        store.server_oauth(&other, &server.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .put_server_oauth(&other, &manage_servers(), &server.id, member_oauth())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .upstream_tokens(&other, &server.id, &alice_account)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store
            .put_upstream_tokens(
                &other,
                &server.id,
                &alice_account,
                upstream_tokens("access-b", "refresh-b"),
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .delete_server_oauth(&other, &manage_servers(), &server.id)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .member_upstream_connections(&other, &alice)
            .await
            .unwrap()
            .is_empty()
    );

    let stdio = store
        .create_server(&acme, &manage_servers(), stdio_server("local"))
        .await
        .unwrap();
    assert_invalid(
        store
            .put_server_oauth(&acme, &manage_servers(), &stdio.id, member_oauth())
            .await,
        "server_id",
    );
    assert_invalid(
        store
            .put_server_oauth(
                &acme,
                &manage_servers(),
                &server.id,
                store::OAuthSettings {
                    mode: store::OAuthMode::Organization,
                    scopes: vec!["has space".to_owned()],
                    client: None,
                },
            )
            .await,
        "scopes",
    );
    // Refused input lost nothing: the member's connection is still there.
    assert!(
        store
            .upstream_tokens(&acme, &server.id, &alice_account)
            .await
            .unwrap()
            .is_some()
    );
    // Changing the mode drops connections made for the old one.
    store
        .put_server_oauth(
            &acme,
            &manage_servers(),
            &server.id,
            store::OAuthSettings {
                mode: store::OAuthMode::Organization,
                scopes: Vec::new(),
                client: None,
            },
        )
        .await
        .unwrap();
    assert!(
        store
            .upstream_tokens(&acme, &server.id, &alice_account)
            .await
            .unwrap()
            .is_none()
    );
}

fn audit_event(
    org: &OrgId,
    server: Option<&ServerId>,
    user: &UserId,
    target: &str,
    at_ms: i64,
) -> NewAuditEvent {
    NewAuditEvent {
        org: org.clone(),
        server: server.cloned(),
        user: user.clone(),
        session: "tag1".to_owned(),
        method: AuditMethod::ToolsCall,
        target: target.to_owned(),
        outcome: AuditOutcome::Ok,
        reason: None,
        latency_us: 120,
        request_bytes: 40,
        response_bytes: 80,
        at_ms,
    }
}

fn view_audit() -> auth::Permit<auth::ViewAudit> {
    authorize::<auth::ViewAudit>(Role::Admin).unwrap()
}

/// S6, S8: events are appended for any organization but read only through its scope; an event
/// naming another organization's server, or an organization that is gone, is not written;
/// filters narrow, pages run newest first without gaps or repeats, and bad cursors are named.
async fn s6_audit_events_are_scoped_filtered_and_paged(db: &TestDb) {
    let store = db.open_a().await;
    let (scope_a, _, alice) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let (scope_b, _, bob) = store
        .create_organization("beta", "Beta", "bob@example.com")
        .await
        .unwrap();
    let permit = manage_servers();
    let files = store
        .create_server(&scope_a, &permit, stdio_server("files"))
        .await
        .unwrap()
        .id;
    let other = store
        .create_server(&scope_b, &permit, stdio_server("files"))
        .await
        .unwrap()
        .id;
    let (org_a, org_b) = (scope_a.org_id().clone(), scope_b.org_id().clone());
    let mut events = Vec::new();
    for i in 0..7 {
        let mut event = audit_event(&org_a, Some(&files), &alice, "files__read", 1_000_000 + i);
        if i % 2 == 1 {
            event.outcome = AuditOutcome::Denied;
            event.reason = Some("denied by the member's tool rules".to_owned());
        }
        events.push(event);
    }
    // Two events in the same millisecond still page apart (the id breaks the tie).
    events.push(audit_event(&org_a, None, &alice, "nosuch__tool", 1_000_006));
    events.push(audit_event(
        &org_b,
        Some(&other),
        &bob,
        "files__read",
        1_000_003,
    ));
    // Organization A's event naming B's server, and an event of no organization: skipped.
    events.push(audit_event(
        &org_a,
        Some(&other),
        &alice,
        "files__read",
        1_000_003,
    ));
    events.push(audit_event(
        &OrgId::from_untrusted("no-such-org"),
        None,
        &alice,
        "x",
        1_000_003,
    ));
    assert_eq!(store.append_audit_events(&events).await.unwrap(), 9);

    let everything = AuditFilter::default();
    let all_a = store
        .audit_events(&scope_a, &view_audit(), &everything, None, 100)
        .await
        .unwrap();
    assert_eq!(all_a.events.len(), 8);
    assert!(all_a.next.is_none());
    assert!(all_a.events.iter().all(|event| event.user == alice));
    assert!(
        all_a
            .events
            .windows(2)
            .all(|pair| (pair[0].at_ms, &pair[0].id) > (pair[1].at_ms, &pair[1].id)),
        "newest first"
    );
    let first = &all_a.events[0];
    assert_eq!(first.email.as_deref(), Some("alice@example.com"));
    let named = all_a
        .events
        .iter()
        .find(|event| event.server.is_some())
        .unwrap();
    assert_eq!(named.server_name.as_deref(), Some("files"));
    assert_eq!(named.method, AuditMethod::ToolsCall);
    assert_eq!(
        (named.latency_us, named.request_bytes, named.response_bytes),
        (120, 40, 80)
    );

    let all_b = store
        .audit_events(&scope_b, &view_audit(), &everything, None, 100)
        .await
        .unwrap();
    assert_eq!(all_b.events.len(), 1);
    assert_eq!(all_b.events[0].server.as_ref(), Some(&other));
    // B filtering on A's server or member sees nothing.
    for filter in [
        AuditFilter {
            server: Some(files.clone()),
            ..AuditFilter::default()
        },
        AuditFilter {
            member: Some(alice.clone()),
            ..AuditFilter::default()
        },
    ] {
        let page = store
            .audit_events(&scope_b, &view_audit(), &filter, None, 100)
            .await
            .unwrap();
        assert!(page.events.is_empty(), "{filter:?}");
    }

    let count = |filter: AuditFilter| {
        let store = store.clone();
        let scope = scope_a.clone();
        async move {
            store
                .audit_events(&scope, &view_audit(), &filter, None, 100)
                .await
                .unwrap()
                .events
                .len()
        }
    };
    let denied = AuditFilter {
        outcome: Some(AuditOutcome::Denied),
        ..AuditFilter::default()
    };
    assert_eq!(count(denied).await, 3);
    let by_target = AuditFilter {
        target: Some("nosuch__tool".to_owned()),
        ..AuditFilter::default()
    };
    assert_eq!(count(by_target).await, 1);
    let by_server = AuditFilter {
        server: Some(files.clone()),
        ..AuditFilter::default()
    };
    assert_eq!(count(by_server).await, 7);
    let window = AuditFilter {
        since_ms: Some(1_000_002),
        until_ms: Some(1_000_005),
        ..AuditFilter::default()
    };
    assert_eq!(count(window).await, 3);
    let by_member = AuditFilter {
        member: Some(bob.clone()),
        ..AuditFilter::default()
    };
    assert_eq!(count(by_member).await, 0);

    // Pages of three: every event once, in the same order as one big page.
    let mut paged = Vec::new();
    let mut cursor: Option<AuditCursor> = None;
    loop {
        let page = store
            .audit_events(&scope_a, &view_audit(), &everything, cursor.as_ref(), 3)
            .await
            .unwrap();
        assert!(page.events.len() <= 3);
        paged.extend(page.events.into_iter().map(|event| event.id));
        match page.next {
            // A cursor survives its text form, as the API hands it out.
            Some(next) => cursor = Some(AuditCursor::parse(&next.to_string()).unwrap()),
            None => break,
        }
    }
    let ids: Vec<String> = all_a.events.iter().map(|event| event.id.clone()).collect();
    assert_eq!(paged, ids);
    for bad in ["", "12", "x.abc", "12.not hex!", "12."] {
        assert_invalid(AuditCursor::parse(bad), "cursor");
    }
    assert_invalid(AuditOutcome::parse("fine"), "outcome");

    // The retention sweep removes old events of every organization, and only those.
    assert_eq!(
        store.delete_audit_events_before(1_000_004).await.unwrap(),
        5
    );
    assert_eq!(
        store
            .audit_events(&scope_a, &view_audit(), &everything, None, 100)
            .await
            .unwrap()
            .events
            .len(),
        4
    );
    assert!(
        store
            .audit_events(&scope_b, &view_audit(), &everything, None, 100)
            .await
            .unwrap()
            .events
            .is_empty()
    );
}

/// S19, S20: deleting a server deletes its audit events; deleting an organization deletes all
/// of its events, and nothing of another organization.
async fn s19_s20_audit_events_go_with_their_server_and_organization(db: &TestDb) {
    let store = db.open_a().await;
    let (scope_a, _, alice) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    let (scope_b, _, bob) = store
        .create_organization("beta", "Beta", "bob@example.com")
        .await
        .unwrap();
    let permit = manage_servers();
    let mut servers = Vec::new();
    for (scope, name) in [(&scope_a, "files"), (&scope_a, "mail"), (&scope_b, "files")] {
        servers.push(
            store
                .create_server(scope, &permit, stdio_server(name))
                .await
                .unwrap()
                .id,
        );
    }
    let (org_a, org_b) = (scope_a.org_id(), scope_b.org_id());
    let events = [
        audit_event(org_a, Some(&servers[0]), &alice, "files__read", 1),
        audit_event(org_a, Some(&servers[0]), &alice, "files__write", 2),
        audit_event(org_a, Some(&servers[1]), &alice, "mail__send", 3),
        audit_event(org_a, None, &alice, "nosuch__tool", 4),
        audit_event(org_b, Some(&servers[2]), &bob, "files__read", 5),
    ];
    assert_eq!(store.append_audit_events(&events).await.unwrap(), 5);
    store
        .delete_server(&scope_a, &permit, &servers[0])
        .await
        .unwrap();
    let targets = |scope: store::OrgScope| {
        let store = store.clone();
        async move {
            store
                .audit_events(&scope, &view_audit(), &AuditFilter::default(), None, 100)
                .await
                .unwrap()
                .events
                .into_iter()
                .map(|event| event.target)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        targets(scope_a.clone()).await,
        ["nosuch__tool", "mail__send"]
    );
    // An event of the deleted server that arrives late is not written either.
    assert_eq!(
        store
            .append_audit_events(&[audit_event(
                org_a,
                Some(&servers[0]),
                &alice,
                "files__read",
                6
            )])
            .await
            .unwrap(),
        0
    );
    // No API deletes an organization yet (issue 5); the foreign keys already cascade.
    db.execute("DELETE FROM organizations WHERE slug = 'acme'")
        .await;
    let left = db
        .query_strings(&format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE org_id = '{}'",
            scope_a.org_id()
        ))
        .await;
    assert_eq!(left, ["0"], "audit events outlived their organization");
    assert_eq!(targets(scope_b).await, ["files__read"]);
}
