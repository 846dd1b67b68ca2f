//! The load test's yardstick: the least a durable SCIM create can cost on this machine.
//!
//! A bare axum + sqlx handler that parses the JSON body and, in one PostgreSQL transaction,
//! inserts a user row, an audit row and two queue rows, then answers 201. `scripts/load-test.sh`
//! runs it beside `scimdesk serve` in the same run so the two are compared on equal terms.
//!
//! Usage: `bare_create DATABASE_URL SCHEMA LISTEN_ADDR` (the schema must exist and be empty).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr as _;

async fn create(State(pool): State<PgPool>, body: axum::body::Bytes) -> (StatusCode, String) {
    let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad json".into());
    };
    let user_name = doc["userName"].as_str().unwrap_or_default().to_string();
    let id = uuid::Uuid::now_v7();
    let result: Result<(), sqlx::Error> = async {
        let mut tx = pool.begin().await?;
        sqlx::query("INSERT INTO users (id, user_name, doc) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(&user_name)
            .bind(sqlx::types::Json(&doc))
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO audit (id, subject, details) VALUES ($1, $2, $3)")
            .bind(uuid::Uuid::now_v7())
            .bind(id)
            .bind(sqlx::types::Json(
                serde_json::json!({ "user_name": user_name }),
            ))
            .execute(&mut *tx)
            .await?;
        for target in 0..2 {
            sqlx::query("INSERT INTO queue (id, target, subject) VALUES ($1, $2, $3)")
                .bind(uuid::Uuid::now_v7())
                .bind(target)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => (
            StatusCode::CREATED,
            serde_json::json!({ "id": id, "userName": user_name }).to_string(),
        ),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, schema, listen] = args.as_slice() else {
        return Err("usage: bare_create DATABASE_URL SCHEMA LISTEN_ADDR".into());
    };
    let options = PgConnectOptions::from_str(url)?.options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect_with(options)
        .await?;
    for ddl in [
        "CREATE TABLE users (id UUID PRIMARY KEY, user_name TEXT NOT NULL UNIQUE, doc JSONB NOT NULL)",
        "CREATE TABLE audit (id UUID PRIMARY KEY, subject UUID NOT NULL, details JSONB NOT NULL)",
        "CREATE TABLE queue (id UUID PRIMARY KEY, target INT NOT NULL, subject UUID NOT NULL)",
    ] {
        sqlx::query(AssertSqlSafe(ddl)).execute(&pool).await?;
    }
    let listener = tokio::net::TcpListener::bind(listen.as_str()).await?;
    println!("bare_create listening on {}", listener.local_addr()?);
    axum::serve(
        listener,
        Router::new().route("/Users", post(create)).with_state(pool),
    )
    .await?;
    Ok(())
}
