//! Connection startup: authentication, the parameters clients check, and
//! the registration that lets a cancel request find the connection.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use futures::Sink;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password, random_nonce};
use pgwire::api::auth::{
    AuthSource, LoginInfo, Password, ServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{ClientInfo, ConnectionHandle, METADATA_APPLICATION_NAME, METADATA_USER, PidSecretKeyGenerator};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{Auth, Shared};

/// SCRAM's PBKDF2 rounds, as PostgreSQL's default.
const SCRAM_ITERATIONS: usize = 4096;

/// The ParameterStatus a new connection gets: OmenDB's defaults for the
/// settings PostgreSQL reports, and the client's own name and user.
#[derive(Debug)]
pub(super) struct Parameters;

impl ServerParameterProvider for Parameters {
    fn server_parameters<C: ClientInfo>(&self, client: &C) -> Option<HashMap<String, String>> {
        let settings = omen_sql::Settings::default();
        let mut params: HashMap<String, String> =
            omen_sql::REPORTED_SETTINGS.iter().filter_map(|name| Some(((*name).to_owned(), settings.get(name)?))).collect();
        let metadata = client.metadata();
        params.insert("application_name".into(), metadata.get(METADATA_APPLICATION_NAME).cloned().unwrap_or_default());
        if let Some(user) = metadata.get(METADATA_USER) {
            params.insert("session_authorization".into(), user.clone());
        }
        Some(params)
    }
}

/// The startup handler for one connection under `shared`'s options.
pub(super) fn handler(shared: &Arc<Shared>) -> Startup {
    match &shared.options.auth {
        Auth::Trust => Startup::Trust(Arc::clone(shared)),
        Auth::Password { user, password } => {
            let mut scram = ScramAuth::new(Arc::new(OnePassword { user: user.clone(), password: password.clone() }));
            scram.set_iterations(SCRAM_ITERATIONS);
            let sasl = SASLAuthStartupHandler::new(Arc::new(Parameters))
                .with_scram(scram)
                .with_connection_manager(Arc::clone(&shared.cancels))
                .with_pid_secret_key_generator(Arc::clone(&shared.pids) as Arc<dyn PidSecretKeyGenerator>);
            Startup::Password(Box::new(sasl))
        }
    }
}

/// How a connection authenticates.
pub(super) enum Startup {
    Trust(Arc<Shared>),
    Password(Box<SASLAuthStartupHandler<Parameters>>),
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let shared = match self {
            Startup::Password(sasl) => return sasl.on_startup(client, message).await,
            Startup::Trust(shared) => shared,
        };
        let PgWireFrontendMessage::Startup(startup) = message else {
            return Ok(());
        };
        protocol_negotiation(client, &startup).await?;
        save_startup_parameters_to_metadata(client, &startup);
        if !shared.options.allow_remote_trust && !client.socket_addr().ip().is_loopback() {
            return Err(fatal("28000", "trust authentication is only for loopback clients: configure a password"));
        }
        let (pid, key) = shared.pids.generate(client);
        client.set_pid_and_secret_key(pid, key.clone());
        let (handle, guard) = shared.cancels.register(pid, key);
        client.session_extensions().insert::<Arc<ConnectionHandle>>(handle);
        client.session_extensions().insert(guard);
        finish_authentication(client, &Parameters).await
    }
}

/// The one user and password of [`Auth::Password`].
#[derive(Debug)]
struct OnePassword {
    user: String,
    password: String,
}

#[async_trait]
impl AuthSource for OnePassword {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        if login.user() != Some(self.user.as_str()) {
            // The same answer as a wrong password: no hint which users exist.
            return Err(fatal("28P01", &format!("password authentication failed for user {:?}", login.user().unwrap_or(""))));
        }
        let salt = random_nonce().into_bytes();
        let salted = gen_salted_password(&self.password, &salt, SCRAM_ITERATIONS);
        Ok(Password::new(Some(salt), salted))
    }
}

fn fatal(code: &str, message: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("FATAL".into(), code.into(), message.into())))
}

/// Answers a connection the server will not serve with a FATAL error and
/// closes it (what PostgreSQL does past `max_connections`).
pub(super) async fn refuse(mut socket: TcpStream, code: &'static str, message: &'static str) {
    let error = ErrorInfo::new("FATAL".into(), code.into(), message.into());
    let mut buf = BytesMut::new();
    if PgWireBackendMessage::ErrorResponse(error.into()).encode(&mut buf).is_ok() {
        let _ = socket.write_all(&buf).await;
    }
    let _ = socket.shutdown().await;
}
