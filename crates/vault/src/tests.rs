//! Vault properties S9, S10, S11: round trip, fresh nonces, tamper and move detection, rotation.

#![allow(
    clippy::disallowed_methods,
    reason = "tests compare opened plaintexts and generated secrets"
)]

use secrecy::ExposeSecret;

use crate::{RecordContext, RootSecret, RootSecretError, SealedRecord, Vault, VaultError};

const SECRET_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="; // 32 x 'A'
const SECRET_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="; // 32 x 'B'

fn root(value: &str) -> RootSecret {
    match RootSecret::from_base64(value) {
        Ok(root) => root,
        Err(error) => unreachable!("test secret refused: {error}"),
    }
}

fn home() -> RecordContext<'static> {
    RecordContext {
        table: "variables",
        column: "value_sealed",
        row_id: "row-1",
        org_id: "org-1",
    }
}

fn check_open(
    vault: &Vault,
    context: &RecordContext<'_>,
    record: &SealedRecord,
    expected: Result<&[u8], VaultError>,
) {
    let opened = vault.open(context, record);
    match (opened, expected) {
        (Ok(plaintext), Ok(want)) => assert_eq!(plaintext.expose_secret(), want),
        (Err(got), Err(want)) => assert_eq!(got, want),
        (Ok(_), Err(want)) => panic!("expected {want:?}, record opened"),
        (Err(got), Ok(_)) => panic!("expected the record to open, got {got}"),
    }
}

#[test]
fn s9_round_trip() {
    let vault = Vault::new(&root(SECRET_A), None);
    let record = vault.seal(&home(), b"hunter2-canary").unwrap();
    check_open(&vault, &home(), &record, Ok(b"hunter2-canary"));
    assert!(!record.as_bytes().windows(7).any(|w| w == b"hunter2"));
}

#[test]
fn s9_round_trip_empty_and_large() {
    let vault = Vault::new(&root(SECRET_A), None);
    let large = vec![7u8; 1 << 20];
    for plaintext in [&b""[..], &large[..]] {
        let record = vault.seal(&home(), plaintext).unwrap();
        check_open(&vault, &home(), &record, Ok(plaintext));
    }
}

#[test]
fn s10_equal_plaintexts_give_different_records() {
    let vault = Vault::new(&root(SECRET_A), None);
    let first = vault.seal(&home(), b"same").unwrap();
    let second = vault.seal(&home(), b"same").unwrap();
    assert_ne!(first.as_bytes(), second.as_bytes());
    // The nonces themselves differ, not only the bytes.
    assert_ne!(first.as_bytes()[9..21], second.as_bytes()[9..21]);
}

#[test]
fn s10_any_flipped_byte_fails() {
    let vault = Vault::new(&root(SECRET_A), None);
    let record = vault.seal(&home(), b"secret value").unwrap();
    for index in 0..record.as_bytes().len() {
        let mut bytes = record.as_bytes().to_vec();
        bytes[index] ^= 0x01;
        let tampered = SealedRecord::from_bytes(bytes);
        assert!(
            vault.open(&home(), &tampered).is_err(),
            "flipping byte {index} was not detected"
        );
    }
}

#[test]
fn s10_record_moved_to_another_row_column_or_organization_fails() {
    let vault = Vault::new(&root(SECRET_A), None);
    let record = vault.seal(&home(), b"secret value").unwrap();
    let moved = [
        RecordContext {
            row_id: "row-2",
            ..home()
        },
        RecordContext {
            column: "other_column",
            ..home()
        },
        RecordContext {
            org_id: "org-2",
            ..home()
        },
        RecordContext {
            table: "other_table",
            ..home()
        },
        // Shifting a character between fields must not produce the same associated data.
        RecordContext {
            row_id: "row-1o",
            org_id: "rg-1",
            ..home()
        },
    ];
    for context in moved {
        check_open(
            &vault,
            &context,
            &record,
            Err(VaultError::Forged(context.to_string())),
        );
    }
}

#[test]
fn s11_a_store_copy_without_the_secret_cannot_be_opened() {
    let record = Vault::new(&root(SECRET_A), None)
        .seal(&home(), b"secret value")
        .unwrap();
    let other = Vault::new(&root(SECRET_B), None);
    check_open(
        &other,
        &home(),
        &record,
        Err(VaultError::UnknownKey(record.key_id().unwrap())),
    );
}

#[test]
fn rotation_opens_previous_records_and_reseals_them() {
    let old = Vault::new(&root(SECRET_A), None);
    let record = old.seal(&home(), b"rotate me").unwrap();

    let rotating = Vault::new(&root(SECRET_B), Some(&root(SECRET_A)));
    assert_eq!(rotating.previous_key_id(), Some(old.current_key_id()));
    check_open(&rotating, &home(), &record, Ok(b"rotate me"));

    let resealed = rotating.reseal(&home(), &record).unwrap().unwrap();
    assert_eq!(resealed.key_id().unwrap(), rotating.current_key_id());
    assert_eq!(
        rotating.reseal(&home(), &resealed).unwrap(),
        None,
        "already current"
    );

    let after = Vault::new(&root(SECRET_B), None);
    check_open(&after, &home(), &resealed, Ok(b"rotate me"));
    check_open(
        &after,
        &home(),
        &record,
        Err(VaultError::UnknownKey(old.current_key_id())),
    );
}

#[test]
fn key_ids_are_stable_and_distinct() {
    assert_eq!(
        Vault::new(&root(SECRET_A), None).current_key_id(),
        Vault::new(&root(SECRET_A), None).current_key_id()
    );
    assert_ne!(
        Vault::new(&root(SECRET_A), None).current_key_id(),
        Vault::new(&root(SECRET_B), None).current_key_id()
    );
}

#[test]
fn malformed_records_are_refused() {
    let vault = Vault::new(&root(SECRET_A), None);
    check_open(
        &vault,
        &home(),
        &SealedRecord::from_bytes(vec![1, 2, 3]),
        Err(VaultError::Malformed("shorter than a header and a tag")),
    );
    let mut bytes = vault.seal(&home(), b"x").unwrap().into_bytes();
    bytes[0] = 9;
    check_open(
        &vault,
        &home(),
        &SealedRecord::from_bytes(bytes),
        Err(VaultError::Malformed("unknown record version")),
    );
}

#[test]
fn s11_root_secret_parsing() {
    let check = |value: &str, expected: Result<(), RootSecretError>| {
        assert_eq!(
            RootSecret::from_base64(value).map(|_| ()),
            expected,
            "value {value:?}"
        );
    };
    check(SECRET_A, Ok(()));
    check("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE", Ok(()));
    check("not base64!!", Err(RootSecretError::NotBase64));
    check("", Err(RootSecretError::TooShort { decoded_len: 0 }));
    check(
        "c2hvcnQ=",
        Err(RootSecretError::TooShort { decoded_len: 5 }),
    );
    let generated = RootSecret::generate_base64();
    check(generated.expose_secret(), Ok(()));
    assert_ne!(
        generated.expose_secret(),
        RootSecret::generate_base64().expose_secret()
    );
}

#[test]
fn debug_output_never_shows_secret_material() {
    let secret = root(SECRET_A);
    assert_eq!(format!("{secret:?}"), "RootSecret([REDACTED])");
    let vault = Vault::new(&secret, None);
    let record = vault.seal(&home(), b"secret value").unwrap();
    assert_eq!(
        format!("{record:?}"),
        format!("SealedRecord({} bytes)", record.as_bytes().len())
    );
    assert!(!format!("{vault:?}").contains("QUFB"));
}
