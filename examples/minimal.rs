//! The smallest useful perimeter: an axum app behind Basic authentication.
//!
//! `cargo run --example minimal`, then
//! `curl -u demo:PASSWORD http://127.0.0.1:3000/` with the printed password.

use axum::{routing::get, Router};
use tower_perimeter::basic_auth::{AuthenticatedUser, BasicAuthLayer, Users};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let password = format!("{:032x}", rand_u128());
    let users = Users::builder().user("demo", &password)?.build();
    let auth = BasicAuthLayer::builder()
        .realm("minimal")?
        .users(users)
        .build()?;

    let app = Router::new()
        .route(
            "/",
            get(|u: AuthenticatedUser| async move { format!("hello, {}\n", u.name()) }),
        )
        .layer(auth);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000  (user: demo, password: {password})");
    axum::serve(listener, app).await?;
    Ok(())
}

fn rand_u128() -> u128 {
    rand::random()
}
