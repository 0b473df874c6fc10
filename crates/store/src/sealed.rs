//! Every sealed column in the schema, and root secret rotation across all of them (S10, S11).
//!
//! A new sealed column must be listed in [`SEALED_COLUMNS`]; the store test
//! `every_blob_column_is_sealed_or_a_digest` fails when a binary column is neither listed nor known.

use sqlx::{AssertSqlSafe, Row};
use vault::{RecordContext, SealedRecord};

use crate::{Store, StoreError};

/// Where a sealed column lives and how its records' associated data is formed.
#[derive(Debug, Clone, Copy)]
pub struct SealedColumn {
    /// Table name.
    pub table: &'static str,
    /// Column holding vault records.
    pub column: &'static str,
    /// Column whose value is the record's row id in the associated data.
    pub id_column: &'static str,
    /// Column holding the organization id, or `None` for deployment-wide rows.
    pub org_column: Option<&'static str>,
}

/// All sealed columns. Identifiers here are static and trusted; they are the only text ever
/// spliced into SQL in this crate.
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "deployment_meta",
        column: "value",
        id_column: "name",
        org_column: None,
    },
    SealedColumn {
        table: "variables",
        column: "value_sealed",
        id_column: "id",
        org_column: Some("org_id"),
    },
    SealedColumn {
        table: "variables",
        column: "preview_sealed",
        id_column: "id",
        org_column: Some("org_id"),
    },
    SealedColumn {
        table: "server_oauth",
        column: "admin_client_secret_sealed",
        id_column: "server_id",
        org_column: Some("org_id"),
    },
    SealedColumn {
        table: "server_oauth",
        column: "client_secret_sealed",
        id_column: "server_id",
        org_column: Some("org_id"),
    },
    SealedColumn {
        table: "upstream_oauth_tokens",
        column: "access_token_sealed",
        id_column: "id",
        org_column: Some("org_id"),
    },
    SealedColumn {
        table: "upstream_oauth_tokens",
        column: "refresh_token_sealed",
        id_column: "id",
        org_column: Some("org_id"),
    },
    SealedColumn {
        table: "upstream_oauth_pending",
        column: "verifier_sealed",
        id_column: "id",
        org_column: Some("org_id"),
    },
];

/// What a rotation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Records found in sealed columns.
    pub records: u64,
    /// Records that were re-sealed under the current secret.
    pub resealed: u64,
}

impl Store {
    /// Counts the records rotation will visit, for a progress bar.
    pub async fn count_sealed_records(&self) -> Result<u64, StoreError> {
        let mut total = 0u64;
        for sealed in SEALED_COLUMNS {
            let sql = format!(
                "SELECT COUNT(*) AS n FROM {} WHERE {} IS NOT NULL",
                sealed.table, sealed.column
            );
            let n: i64 = sqlx::query(AssertSqlSafe(sql))
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
            total += u64::try_from(n).unwrap_or(0);
        }
        Ok(total)
    }

    /// Re-seals every record not yet under the current root secret. Safe while gateways run with
    /// both secrets: each update only replaces the exact bytes it read.
    pub async fn rotate_sealed_records(
        &self,
        mut progress: impl FnMut(u64),
    ) -> Result<RotationReport, StoreError> {
        let mut report = RotationReport::default();
        for sealed in SEALED_COLUMNS {
            let org_expr = sealed.org_column.unwrap_or("''");
            let select = format!(
                "SELECT {id} AS row_id, {org} AS org_id, {col} AS record FROM {table} WHERE {col} IS NOT NULL",
                id = sealed.id_column,
                org = org_expr,
                col = sealed.column,
                table = sealed.table
            );
            let update = format!(
                "UPDATE {table} SET {col} = $1 WHERE {id} = $2 AND {col} = $3",
                table = sealed.table,
                col = sealed.column,
                id = sealed.id_column
            );
            let rows = sqlx::query(AssertSqlSafe(select))
                .fetch_all(&self.pool)
                .await?;
            for row in rows {
                let row_id: String = row.try_get("row_id")?;
                let org_id: String = row.try_get("org_id")?;
                let old: Vec<u8> = row.try_get("record")?;
                let context = RecordContext {
                    table: sealed.table,
                    column: sealed.column,
                    row_id: &row_id,
                    org_id: &org_id,
                };
                let record = SealedRecord::from_bytes(old.clone());
                if let Some(new) = self.vault.reseal(&context, &record)? {
                    sqlx::query(AssertSqlSafe(update.as_str()))
                        .bind(new.into_bytes())
                        .bind(&row_id)
                        .bind(old)
                        .execute(&self.pool)
                        .await?;
                    report.resealed += 1;
                }
                report.records += 1;
                progress(1);
            }
        }
        Ok(report)
    }
}
