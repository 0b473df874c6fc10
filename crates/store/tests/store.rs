//! The store test suite, run on SQLite and on PostgreSQL (S7, S8, S9, S10, S11, S12, S20).
//!
//! Every test is an `async fn(&TestDb)` listed once in `both_backends!`, which makes a SQLite and
//! a PostgreSQL test of it. PostgreSQL comes from `MCP_HERO_TEST_POSTGRES_URL` (set by
//! `scripts/test`); without it the PostgreSQL variants skip with a message, unless `CI=true`,
//! where a missing database fails the run.

// Helpers outside #[test] functions may fail loudly too: a failed assumption is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use auth::pat;
use auth::tool_access::{Effect, MemberToolAccess, Subject, ToolPattern};
use auth::{ManageMembers, ManageServers, Role, authorize};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use store::{
    AuditCursor, AuditFilter, AuditMethod, AuditOutcome, DatabaseLocation, Exposure, ImagePhase,
    ImageReport, ImageState, NewAuditEvent, NewServer, OrgId, Package, PackageKind, ServerId,
    ServerTransport, ServerUpdate, Store, StoreError, TokenOwner, TokenRejection, ToolRuleId,
    UserId, VariableKind,
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
    images_follow_their_package_one_generation_at_a_time,
    s6_audit_events_are_scoped_filtered_and_paged,
    s19_s20_audit_events_go_with_their_server_and_organization,
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
    let long = SecretString::from("correct-horse-battery-staple");
    let short = SecretString::from("hunter2");
    let meta = store
        .put_password_variable(&scope_a, "API_KEY", &long)
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
        store
            .put_password_variable(&scope_a, "PIN", &short)
            .await
            .unwrap()
            .preview,
        None
    );
    store
        .put_string_variable(&scope_a, "REGION", "eu-west-1")
        .await
        .unwrap();

    let listed = store.list_variables(&scope_a).await.unwrap();
    let names: Vec<_> = listed
        .iter()
        .map(|v| (v.name.as_str(), v.string_value.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            ("API_KEY", None),
            ("PIN", None),
            ("REGION", Some("eu-west-1"))
        ]
    );
    assert_eq!(
        store
            .reveal_password(&scope_a, "API_KEY")
            .await
            .unwrap()
            .expose_secret(),
        b"correct-horse-battery-staple"
    );

    // Another organization sees none of it, and may use the same names independently.
    assert!(store.list_variables(&scope_b).await.unwrap().is_empty());
    assert!(matches!(
        store.reveal_password(&scope_b, "API_KEY").await,
        Err(StoreError::NotFound("variable"))
    ));
    assert!(matches!(
        store.delete_variable(&scope_b, "API_KEY").await,
        Err(StoreError::NotFound("variable"))
    ));
    store
        .put_password_variable(&scope_b, "API_KEY", &short)
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_password_variable(&scope_a, "API_KEY", &short)
            .await,
        Err(StoreError::Conflict(_))
    ));

    store.delete_variable(&scope_a, "API_KEY").await.unwrap();
    assert!(matches!(
        store.reveal_password(&scope_a, "API_KEY").await,
        Err(StoreError::NotFound("variable"))
    ));
}

async fn s12_password_plaintext_is_not_in_the_database_bytes(db: &TestDb) {
    let canary = format!("canary-{}", uuid::Uuid::new_v4().simple());
    let store = db.open_a().await;
    let (scope, _, _) = store
        .create_organization("acme", "Acme", "alice@example.com")
        .await
        .unwrap();
    store
        .put_password_variable(&scope, "CANARY", &SecretString::from(canary.clone()))
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
        store
            .put_password_variable(&scope, name, &SecretString::from(value))
            .await
            .unwrap();
    }
    store.close().await;

    // Step 1: the new secret is deployed with the old one as previous; old records still open.
    let rotating = db.open(vault(SECRET_B, Some(SECRET_A))).await.unwrap();
    let scope = rotating.operator_scope("acme").await.unwrap();
    assert_eq!(
        rotating
            .reveal_password(&scope, "ONE")
            .await
            .unwrap()
            .expose_secret(),
        b"first-secret-value"
    );
    rotating
        .put_password_variable(&scope, "THREE", &SecretString::from("third-secret-value"))
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
            after
                .reveal_password(&scope, name)
                .await
                .unwrap()
                .expose_secret(),
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
        store
            .put_string_variable(&scope, "lower", "x")
            .await
            .map(|_| ()),
        "name",
    );
    invalid_field(
        store
            .put_string_variable(&scope, "BIG", &"x".repeat(70_000))
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
    // No API deletes an organization yet (issue 5); the foreign keys already cascade.
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
