//! OAuth 2.0 client credentials against a real HTTP provider on 127.0.0.1: discovery that must
//! name the configured issuer, `client_secret_basic` and `client_secret_post`, tokens cached
//! until shortly before they expire, and a clear error for each way a provider goes wrong
//! (wrong issuer, refused client, no answer, HTML where JSON belongs, no access token), none
//! of which shows the secret.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use scimdesk::connectors::oauth::{
    ClientCredentials, ClientCredentialsConfig, OAuthError, TokenEndpoint,
};
use scimdesk::crypto::Secret;
use scimdesk::domain::ClientAuth;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "s3cr3t-with:colon&amp";

/// How the provider double misbehaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Good,
    WrongIssuer,
    HtmlDiscovery,
    InvalidClient,
    NoAccessToken,
    ServerError,
}

#[derive(Default)]
struct Seen {
    /// Tokens issued.
    issued: u32,
    /// How each token request presented the client: `basic id:secret` or `post id:secret`.
    presented: Vec<String>,
}

#[derive(Clone)]
struct Provider {
    issuer: String,
    mode: Mode,
    expires_in: u64,
    seen: Arc<Mutex<Seen>>,
}

/// A small OIDC provider on an ephemeral port: `/.well-known/openid-configuration` and
/// `/token`, answering as `mode` says (a test double of a real identity provider's endpoints).
async fn provider(mode: Mode, expires_in: u64) -> Provider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/realms/hospital", listener.local_addr().unwrap());
    let p = Provider {
        issuer,
        mode,
        expires_in,
        seen: Arc::default(),
    };
    let app = Router::new()
        .route(
            "/realms/hospital/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/realms/hospital/token", post(token))
        .with_state(p.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    p
}

async fn discovery(State(p): State<Provider>) -> Response {
    match p.mode {
        Mode::HtmlDiscovery => (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Sign in to continue</body></html>",
        )
            .into_response(),
        Mode::WrongIssuer => axum::Json(json!({
            "issuer": "https://elsewhere.example/realms/other",
            "token_endpoint": format!("{}/token", p.issuer),
        }))
        .into_response(),
        _ => axum::Json(json!({
            "issuer": p.issuer,
            "token_endpoint": format!("{}/token", p.issuer),
            "grant_types_supported": ["client_credentials"],
        }))
        .into_response(),
    }
}

async fn token(State(p): State<Provider>, headers: HeaderMap, body: String) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("grant_type"), "client_credentials");
    let presented = match headers.get(header::AUTHORIZATION) {
        Some(v) => {
            use base64::Engine as _;
            let b64 = v.to_str().unwrap().strip_prefix("Basic ").unwrap();
            let pair = String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            )
            .unwrap();
            let (id, secret) = pair.split_once(':').unwrap();
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .unwrap()
                    .1
                    .into_owned()
            };
            format!("basic {}:{}", dec(id), dec(secret))
        }
        None => format!("post {}:{}", field("client_id"), field("client_secret")),
    };
    let mut seen = p.seen.lock().unwrap();
    seen.presented.push(presented);
    match p.mode {
        Mode::InvalidClient => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"})),
        )
            .into_response(),
        Mode::NoAccessToken => {
            axum::Json(json!({"token_type": "Bearer", "expires_in": 300})).into_response()
        }
        Mode::ServerError => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
        _ => {
            seen.issued += 1;
            axum::Json(json!({
                "access_token": format!("token-{}", seen.issued),
                "token_type": "Bearer",
                "expires_in": p.expires_in,
            }))
            .into_response()
        }
    }
}

fn client(issuer: &str, auth: ClientAuth) -> ClientCredentials {
    scimdesk::connectors::ensure_tls_provider();
    ClientCredentials::new(
        reqwest::Client::new(),
        ClientCredentialsConfig {
            endpoint: TokenEndpoint::Discover {
                issuer: issuer.to_string(),
            },
            client_id: "scimdesk sync".into(),
            client_secret: Secret::new(SECRET.to_string()),
            scope: None,
            client_auth: auth,
        },
    )
}

#[tokio::test]
async fn discovery_basic_and_post_and_a_cached_token() {
    for (auth, how) in [(ClientAuth::Basic, "basic"), (ClientAuth::Post, "post")] {
        let p = provider(Mode::Good, 300).await;
        let c = client(&p.issuer, auth);
        assert_eq!(c.token().await.unwrap().expose(), "token-1");
        // Cached: no second request while the token is fresh.
        assert_eq!(c.token().await.unwrap().expose(), "token-1");
        let seen = p.seen.lock().unwrap();
        assert_eq!(seen.issued, 1);
        assert_eq!(
            seen.presented,
            vec![format!("{how} scimdesk sync:{SECRET}")]
        );
    }
    // A trailing slash on the configured issuer is the same issuer.
    let p = provider(Mode::Good, 300).await;
    let c = client(&format!("{}/", p.issuer), ClientAuth::Basic);
    assert!(c.token().await.is_ok());
}

#[tokio::test]
async fn a_token_is_renewed_before_it_expires_and_after_it_is_refused() {
    let p = provider(Mode::Good, 1).await;
    let c = client(&p.issuer, ClientAuth::Basic);
    assert_eq!(c.token().await.unwrap().expose(), "token-1");
    // A one-second token is renewed at 80 % of its life.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(c.token().await.unwrap().expose(), "token-2");
    // A target or source that refuses the token (401) makes the next call fetch a new one.
    c.invalidate().await;
    assert_eq!(c.token().await.unwrap().expose(), "token-3");
}

#[tokio::test]
async fn each_failure_says_what_went_wrong_and_never_the_secret() {
    let check = |e: &OAuthError| {
        let text = e.to_string();
        assert!(!text.contains(SECRET), "{text}");
        text
    };

    let p = provider(Mode::WrongIssuer, 300).await;
    let e = client(&p.issuer, ClientAuth::Basic)
        .token()
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::WrongIssuer { .. }), "{e:?}");
    let text = check(&e);
    assert!(
        text.contains("https://elsewhere.example/realms/other"),
        "{text}"
    );
    assert!(!e.is_retryable());
    assert_eq!(
        p.seen.lock().unwrap().presented.len(),
        0,
        "no secret sent to a wrong issuer"
    );

    let p = provider(Mode::InvalidClient, 300).await;
    let e = client(&p.issuer, ClientAuth::Post)
        .token()
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::InvalidClient { .. }), "{e:?}");
    let text = check(&e);
    assert!(
        text.contains("invalid_client") && text.contains("Invalid client credentials"),
        "{text}"
    );
    assert!(!e.is_retryable());

    let p = provider(Mode::HtmlDiscovery, 300).await;
    let e = client(&p.issuer, ClientAuth::Basic)
        .token()
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::NotJson { .. }), "{e:?}");
    let text = check(&e);
    assert!(
        text.contains("text/html") && text.contains("Sign in"),
        "{text}"
    );

    let p = provider(Mode::NoAccessToken, 300).await;
    let e = client(&p.issuer, ClientAuth::Basic)
        .token()
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::NoAccessToken { .. }), "{e:?}");
    check(&e);

    let p = provider(Mode::ServerError, 300).await;
    let e = client(&p.issuer, ClientAuth::Basic)
        .token()
        .await
        .unwrap_err();
    assert!(
        matches!(e, OAuthError::Refused { status: 503, .. }),
        "{e:?}"
    );
    assert!(e.is_retryable(), "a busy provider is asked again later");
    check(&e);

    // Nobody listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = client(&format!("http://{closed}/realms/x"), ClientAuth::Basic)
        .token()
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Unreachable { .. }), "{e:?}");
    assert!(e.is_retryable());
    let text = check(&e);
    assert!(
        text.contains("OIDC discovery") && text.contains(&closed.to_string()),
        "{text}"
    );
}
