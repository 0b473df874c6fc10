//! The store test suite, run on SQLite and on PostgreSQL (S8, S9, S10, S11, S12).
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
use auth::{ManageMembers, Role, authorize};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use store::{
    DatabaseLocation, Store, StoreError, TokenOwner, TokenRejection, UserId, VariableKind,
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

    async fn query_strings(&self, store_url_sql: &str) -> Vec<String> {
        sqlx::any::install_default_drivers();
        let url = match self.location() {
            DatabaseLocation::Sqlite { path } => format!("sqlite://{}", path.display()),
            DatabaseLocation::Postgres { url } => url.expose_secret().to_owned(),
        };
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
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
